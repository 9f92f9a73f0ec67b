// Validates Grafana dashboard JSON files against Grafana's own dashboard schema.
//
// The JSON Schema is generated here, offline, from the TypeScript types of the pinned
// `@grafana/schema` npm package (see package.json) with `ts-json-schema-generator`;
// nothing generated is committed. Besides the dashboard model (`Dashboard`), each panel's
// `options` and `fieldConfig.defaults.custom` are checked against the `Options` and
// `FieldConfig` types of its panel plugin (raw/composable/<plugin>/panelcfg), which the
// dashboard model leaves open as `Record<string, unknown>`.
//
// usage: node validate.mjs [--schema-out DIR] DASHBOARD.json...
// prints one JSON report on stdout; exit status 1 when any file is invalid.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { createGenerator } from 'ts-json-schema-generator';
import Ajv from 'ajv';

const require = createRequire(import.meta.url);
const schemaRoot = path.join(
  path.dirname(require.resolve('@grafana/schema/package.json')), 'dist', 'types', 'raw');
const schemaVersion = require('@grafana/schema/package.json').version;

// Panel plugin id (the panel's `type`) -> its directory under raw/composable.
const PLUGIN_DIRS = {
  timeseries: 'timeseries', stat: 'stat', table: 'table', bargauge: 'bargauge',
  gauge: 'gauge', heatmap: 'heatmap', 'state-timeline': 'statetimeline',
  'status-history': 'statushistory', piechart: 'piechart', text: 'text',
  barchart: 'barchart', histogram: 'histogram',
};

function generate(file, type) {
  const generator = createGenerator({
    path: file,
    type,
    skipTypeCheck: true,
    expose: 'export',
    topRef: true,
    additionalProperties: false,
  });
  return generator.createSchema(type);
}

function compile(ajv, schema) {
  return ajv.compile(schema);
}

const args = process.argv.slice(2);
let schemaOut = null;
if (args[0] === '--schema-out') {
  schemaOut = args[1];
  args.splice(0, 2);
}
if (args.length === 0) {
  console.error('usage: node validate.mjs [--schema-out DIR] DASHBOARD.json...');
  process.exit(2);
}

const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true });
const dashboardSchema = generate(path.join(schemaRoot, 'dashboard', 'x', 'types.gen.d.ts'),
  'Dashboard');
const validateDashboard = compile(ajv, dashboardSchema);
const schemas = { Dashboard: dashboardSchema };
const pluginValidators = {};

function pluginValidator(plugin, type) {
  const key = `${plugin}.${type}`;
  if (!(key in pluginValidators)) {
    const dir = PLUGIN_DIRS[plugin];
    const file = dir && path.join(schemaRoot, 'composable', dir, 'panelcfg', 'x', 'types.gen.d.ts');
    let validator = null;
    if (file && fs.existsSync(file)) {
      try {
        const schema = generate(file, type);
        schemas[key] = schema;
        validator = compile(new Ajv({ allErrors: true, strict: false, allowUnionTypes: true }),
          schema);
      } catch (err) {
        if (!String(err).includes('No root type')) throw err;
      }
    }
    pluginValidators[key] = validator;
  }
  return pluginValidators[key];
}

function* panelsOf(dashboard) {
  for (const panel of dashboard.panels ?? []) {
    yield panel;
    for (const inner of panel.panels ?? []) yield inner;
  }
}

const report = { grafana_schema_version: schemaVersion, files: {} };
let failed = false;
for (const file of args) {
  const errors = [];
  let dashboard;
  try {
    dashboard = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    errors.push(`cannot read: ${err.message}`);
  }
  if (dashboard !== undefined) {
    if (!validateDashboard(dashboard)) {
      for (const e of validateDashboard.errors) errors.push(`dashboard${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
    }
    const checkedPlugins = new Set();
    for (const panel of panelsOf(dashboard)) {
      if (panel.type === 'row') continue;
      if (!(panel.type in PLUGIN_DIRS)) {
        errors.push(`panel ${panel.id} "${panel.title}": panel type ${panel.type} has no schema here`);
        continue;
      }
      checkedPlugins.add(panel.type);
      const options = pluginValidator(panel.type, 'Options');
      if (options && !options(panel.options ?? {})) {
        for (const e of options.errors) errors.push(`panel ${panel.id} "${panel.title}" options${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
      }
      const custom = pluginValidator(panel.type, 'FieldConfig');
      const value = panel.fieldConfig?.defaults?.custom;
      if (custom && value !== undefined && !custom(value)) {
        for (const e of custom.errors) errors.push(`panel ${panel.id} "${panel.title}" fieldConfig.defaults.custom${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
      }
    }
  }
  report.files[file] = { valid: errors.length === 0, errors };
  failed ||= errors.length > 0;
}
if (schemaOut) {
  fs.mkdirSync(schemaOut, { recursive: true });
  for (const [name, schema] of Object.entries(schemas)) {
    fs.writeFileSync(path.join(schemaOut, `${name}.schema.json`), JSON.stringify(schema, null, 2));
  }
}
console.log(JSON.stringify(report, null, 2));
process.exit(failed ? 1 : 0);
