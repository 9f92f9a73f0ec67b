// Settings of the session-exporter mixin, kubernetes-mixin style: override them with
//   (import 'session-exporter-mixin/mixin.libsonnet') + { _config+:: { ... } }
// The defaults give exactly the rules of prometheus/rules/ and the dashboards of
// grafana/dashboards/ (tests/test_mixin.py checks it).
{
  _config+:: {
    // The selector of the exporter's scrape job, used by SessionExporterDown. With the
    // ServiceMonitor of deploy/kubernetes the job is the Service's name, session-exporter.
    sessionExporterSelector: 'job="session-exporter"',

    // Set to e.g. 'https://example.com/session-exporter/RUNBOOK.md#%s' to give every alert
    // a runbook_url annotation (%s is the alert name in lower case, as Markdown anchors are).
    runbookURLPattern: null,

    // The thresholds (defaults and per-account overrides) are recording rules in the
    // group session-exporter-thresholds: replace that group, or add a group of overrides
    // after it, to tune them (prometheus/RUNBOOK.md, "Tuning thresholds").
  },
}
