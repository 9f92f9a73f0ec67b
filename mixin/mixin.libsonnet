// The session-exporter monitoring mixin: prometheusAlerts, prometheusRules and
// grafanaDashboards, as kube-prometheus and the kubernetes-mixin tooling expect. See README.md.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
