variable "env" {
  description = "The middleware's `env` (the env tag of spans and metrics)."
  type        = string
  default     = "prod"
}

variable "service" {
  description = "The middleware's `service`."
  type        = string
  default     = "edge"
}

variable "span_name" {
  description = "The middleware's `spanName`: trace metrics are trace.<span_name>.*. `nginx.request` keeps ingress-nginx's names."
  type        = string
  default     = "traefik.request"
}

variable "notify" {
  description = "Appended to every monitor message, e.g. \"\\n@slack-platform-alerts @pagerduty-edge\"."
  type        = string
  default     = ""
}
