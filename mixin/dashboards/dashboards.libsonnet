// The Grafana dashboards built by grafana/build_dashboards.py (grafanaDashboards,
// kubernetes-mixin style: file name -> dashboard).
{
  grafanaDashboards+:: {
    'session-exporter-overview.json': import '../generated/dashboards/session-exporter-overview.json',
    'session-exporter-glance.json': import '../generated/dashboards/session-exporter-glance.json',
    'session-exporter-securevideo.json': import '../generated/dashboards/session-exporter-securevideo.json',
    'session-exporter-rescue.json': import '../generated/dashboards/session-exporter-rescue.json',
  },
}
