# The monitors of deploy/datadog/monitors/*.json as Terraform resources (same names,
# queries, thresholds and options; integration/shipped/test_datadog_queries.py compares them).

resource "datadog_monitor" "error_rate_per_host" {
  name     = "[Traefik] {{resource_name.name}}: error rate above 5%"
  type     = "query alert"
  priority = 2
  query    = "sum(last_10m):sum:trace.${var.span_name}.errors{env:${var.env},service:${var.service}} by {resource_name}.as_count() / sum:trace.${var.span_name}.hits{env:${var.env},service:${var.service}} by {resource_name}.as_count() > 0.05"
  message  = "{{#is_alert}}{{resource_name.name}} answered {{value}} of its requests with an error status (5xx by default, the middleware's errorStatuses) over the last 10 minutes.{{/is_alert}}\n{{#is_warning}}{{resource_name.name}}: error rate {{value}} over the last 10 minutes.{{/is_warning}}\nAPM > Services > ${var.service} > Resources shows the failing requests; the traces join the backend's.${var.notify}"
  tags     = ["source:traefik-datadog-plugin", "env:${var.env}", "service:${var.service}"]

  monitor_thresholds {
    critical = 0.05
    warning  = 0.02
  }

  notify_no_data      = false
  require_full_window = false
  include_tags        = true
  new_group_delay     = 60
}

resource "datadog_monitor" "p99_latency_per_host" {
  name     = "[Traefik] {{resource_name.name}}: p99 latency above 1 s"
  type     = "query alert"
  priority = 3
  query    = "percentile(last_10m):p99:trace.${var.span_name}{env:${var.env},service:${var.service}} by {resource_name} > 1"
  message  = "{{resource_name.name}}: p99 latency {{value}} s over the last 10 minutes (request arrival at Traefik to the last byte of the response).\nAPM > Services > ${var.service} > Resources: compare with the backend's own spans to see where the time goes.${var.notify}"
  tags     = ["source:traefik-datadog-plugin", "env:${var.env}", "service:${var.service}"]

  monitor_thresholds {
    critical = 1
    warning  = 0.5
  }

  notify_no_data      = false
  require_full_window = false
  include_tags        = true
  new_group_delay     = 60
}

resource "datadog_monitor" "relay_dropping_records" {
  name     = "[Traefik] Datadog relay dropping records"
  type     = "query alert"
  priority = 2
  query    = "sum(last_10m):sum:traefik_datadog.relay.records_dropped{*}.as_count() + sum:traefik_datadog.relay.spans_dropped{!reason:rejected}.as_count() > 0"
  message  = "The relay dropped {{value}} records or spans in the last 10 minutes: its input queue was full (records_dropped, reason:queue_full) or the agent stayed away past --max-buffered-spans / --shutdown-timeout (spans_dropped, reason:buffer_full|shutdown|encode). Hits, errors and latency undercount for that time.\nCheck the relay's CPU limit and the agent's health; the relay's stderr prints the same counters every 10 s.${var.notify}"
  tags     = ["source:traefik-datadog-plugin"]

  monitor_thresholds {
    critical = 0
  }

  notify_no_data      = false
  require_full_window = false
  include_tags        = true
}

resource "datadog_monitor" "agent_rejecting_payloads" {
  name     = "[Traefik] Datadog agent rejecting the relay's payloads"
  type     = "query alert"
  priority = 2
  query    = "sum(last_10m):sum:traefik_datadog.relay.spans_dropped{reason:rejected}.as_count() > 0"
  message  = "The trace agent refused {{value}} spans in the last 10 minutes (a 4xx answer, or 408/429/5xx past the retry bounds): they are lost and APM trace metrics undercount.\nLook at the relay's stderr (agent answers) and the agent's trace-agent log; payloads_retried and agent_errors on the dashboard show how long it lasted.${var.notify}"
  tags     = ["source:traefik-datadog-plugin"]

  monitor_thresholds {
    critical = 0
  }

  notify_no_data      = false
  require_full_window = false
  include_tags        = true
}

resource "datadog_monitor" "telemetry_silent_while_traefik_serves" {
  name     = "[Traefik] Requests routed but not recorded (plugin or relay silent)"
  type     = "query alert"
  priority = 1
  query    = "sum(last_10m):sum:traefik_datadog.relay.records_received{*}.as_count() / sum:traefik.router.request.total{*}.as_count() < 0.9"
  message  = "{{#is_alert}}Traefik routed requests but the relay received records for only {{value}} of them over the last 10 minutes.{{/is_alert}}\n{{#is_no_data}}No relay counters for 20 minutes: the relay is not running or cannot reach DogStatsD (or Traefik routed nothing at all).{{/is_no_data}}\nCheck the relay container, the FIFO's shared volume, and Traefik's log for `traefik-datadog` lines (a rejected middleware config records nothing; records in log lines mean the pipe is unusable). Routers without the middleware lower this ratio: filter traefik.router.request.total by router, or put the middleware on the entry point.${var.notify}"
  tags     = ["source:traefik-datadog-plugin"]

  monitor_thresholds {
    critical = 0.9
  }

  notify_no_data      = true
  no_data_timeframe   = 20
  require_full_window = false
  include_tags        = true
}

resource "datadog_monitor" "relay_not_reporting" {
  name     = "[Traefik] Datadog relay not reporting, or the spool filling"
  type     = "query alert"
  priority = 1
  query    = "max(last_5m):max:traefik_datadog.relay.spool_bytes{*} >= 33554432"
  message  = "{{#is_no_data}}The relay sent no counters for 10 minutes: it is down, or cannot reach DogStatsD. The plugin keeps records in the spool beside the FIFO (spoolMaxBytes) until it returns.{{/is_no_data}}\n{{#is_alert}}{{value}} bytes of records wait in the spool beside the FIFO: the relay does not keep up, and its inputs hold back instead of dropping. Once the spool reaches spoolMaxBytes (64 MiB by default) the plugin writes records as ERROR lines in Traefik's log.{{/is_alert}}${var.notify}"
  tags     = ["source:traefik-datadog-plugin"]

  monitor_thresholds {
    critical = 33554432
    warning  = 16777216
  }

  notify_no_data      = true
  no_data_timeframe   = 10
  require_full_window = false
  include_tags        = true
}

resource "datadog_monitor" "plugin_recovered_calls" {
  name     = "[Traefik] Datadog plugin recovered from a trap"
  type     = "query alert"
  priority = 3
  query    = "sum(last_1h):sum:traefik_datadog.relay.plugin_recovered_calls{*}.as_count() > 0"
  message  = "The plugin trapped {{value}} times in the last hour: each trap cost that one request (a 500) and the instance reset itself. Traefik's log has one ERROR line per instance that recovered. A trap is a bug of the plugin or of Traefik's wasm host: report it with those lines.${var.notify}"
  tags     = ["source:traefik-datadog-plugin"]

  monitor_thresholds {
    critical = 0
  }

  notify_no_data      = false
  require_full_window = false
  include_tags        = true
}
