// The recording rule groups of prometheus/rules/ (prometheusRules, kubernetes-mixin style):
// thresholds, cross-vendor series and the service-level KPIs.
local generated = import '../generated/rules.json';

{
  prometheusRules+:: {
    groups+: [
      group
      for group in generated.groups
      if std.length([rule for rule in group.rules if std.objectHas(rule, 'alert')]) == 0
    ],
  },
}
