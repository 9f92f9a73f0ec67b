// The alerting rule groups of prometheus/rules/ (prometheusAlerts, kubernetes-mixin style),
// with the scrape-job selector and the optional runbook URL of _config.
local generated = import '../generated/rules.json';

{
  local config = self._config,

  local withConfig(rule) =
    rule {
      expr: std.strReplace(rule.expr, 'job="session-exporter"', config.sessionExporterSelector),
    } + (
      if config.runbookURLPattern == null then {}
      else { annotations+: { runbook_url: config.runbookURLPattern % std.asciiLower(rule.alert) } }
    ),

  prometheusAlerts+:: {
    groups+: [
      group { rules: [withConfig(rule) for rule in group.rules] }
      for group in generated.groups
      if std.length([rule for rule in group.rules if std.objectHas(rule, 'alert')]) > 0
    ],
  },
}
