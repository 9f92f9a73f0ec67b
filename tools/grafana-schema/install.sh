#!/usr/bin/env bash
# Installs the pinned npm packages that validate our Grafana dashboards (@grafana/schema,
# ts-json-schema-generator, ajv) into tools/grafana-schema/node_modules, from
# package-lock.json. Needs node >= 18 and npm. CI runs it before pytest; nothing it creates
# is committed (node_modules/ is ignored).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
