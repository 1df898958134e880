# deploy/datadog/dashboard.json as it is, its trace metrics renamed after var.span_name.
resource "datadog_dashboard_json" "traefik" {
  dashboard = replace(file("${path.module}/../dashboard.json"), "trace.traefik.request", "trace.${var.span_name}")
}
