module github.com/traefik-datadog-plugin/statusprobe

go 1.22
