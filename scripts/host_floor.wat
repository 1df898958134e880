;; The least any guest doing the plugin's job can cost Traefik: exactly the host calls the
;; plugin makes for a buffered `pipe` request with the default configuration
;; (docs/host-calls.md), with fixed values, and no work of its own. `scripts/bench.py` and
;; `scripts/host_cost.py` run it as the variant "host-call floor"; what the plugin costs above
;; it is the guest's own work.
(module
  (import "http_handler" "get_source_addr" (func $source_addr (param i32 i32) (result i32)))
  (import "http_handler" "get_uri" (func $uri (param i32 i32) (result i32)))
  (import "http_handler" "get_header_names" (func $names (param i32 i32 i32) (result i64)))
  (import "http_handler" "get_header_values" (func $values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "get_method" (func $method (param i32 i32) (result i32)))
  (import "http_handler" "enable_features" (func $enable (param i32) (result i32)))
  (import "http_handler" "set_header_value" (func $set (param i32 i32 i32 i32 i32)))
  (import "http_handler" "get_status_code" (func $status (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; The FIFO, opened on the first response: -1 until then (and if it cannot be).
  (global $fd (mut i32) (i32.const -1))

  ;; Names read, in Go's spelling as the plugin asks for them.
  (data (i32.const 0) "Host")
  (data (i32.const 16) "X-Forwarded-Proto")
  (data (i32.const 48) "User-Agent")
  (data (i32.const 64) "Accept")
  (data (i32.const 80) "Content-Length")
  ;; Injected headers and values of the plugin's lengths.
  (data (i32.const 128) "X-Datadog-Trace-Id")
  (data (i32.const 160) "1234567890123456789")
  (data (i32.const 192) "X-Datadog-Parent-Id")
  (data (i32.const 224) "9876543210987654321")
  (data (i32.const 256) "X-Datadog-Sampling-Priority")
  (data (i32.const 288) "1")
  (data (i32.const 320) "X-Datadog-Tags")
  (data (i32.const 352) "_dd.p.tid=66d8a5d200000000,_dd.p.dm=-0")
  (data (i32.const 416) "Traceparent")
  (data (i32.const 448) "00-66d8a5d2000000001122334455667788-8899aabbccddeeff-01")
  (data (i32.const 512) "Tracestate")
  (data (i32.const 576) "dd=s:1;p:8899aabbccddeeff;t.dm:-0;t.tid:66d8a5d200000000")
  ;; The FIFO beside the mount's root (the first preopened directory, fd 3), and a frame of
  ;; the plugin's usual size (200 bytes) with its iovec at 1024.
  (data (i32.const 640) "traefik-datadog.fifo")
  (data (i32.const 1024) "\c0\02\00\00\c8\00\00\00")

  (func (export "handle_request") (result i64)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 1048)))
    (drop (call $source_addr (i32.const 8192) (i32.const 4096)))
    (drop (call $uri (i32.const 8192) (i32.const 4096)))
    (drop (call $names (i32.const 0) (i32.const 8192) (i32.const 4096)))
    (drop (call $values (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 8192) (i32.const 4096)))
    (drop (call $values (i32.const 0) (i32.const 16) (i32.const 17) (i32.const 8192) (i32.const 4096)))
    (drop (call $method (i32.const 8192) (i32.const 4096)))
    (drop (call $values (i32.const 0) (i32.const 48) (i32.const 10) (i32.const 8192) (i32.const 4096)))
    (drop (call $values (i32.const 0) (i32.const 64) (i32.const 6) (i32.const 8192) (i32.const 4096)))
    (drop (call $enable (i32.const 2)))
    (call $set (i32.const 0) (i32.const 128) (i32.const 18) (i32.const 160) (i32.const 19))
    (call $set (i32.const 0) (i32.const 192) (i32.const 19) (i32.const 224) (i32.const 19))
    (call $set (i32.const 0) (i32.const 256) (i32.const 27) (i32.const 288) (i32.const 1))
    (call $set (i32.const 0) (i32.const 320) (i32.const 14) (i32.const 352) (i32.const 38))
    (call $set (i32.const 0) (i32.const 416) (i32.const 11) (i32.const 448) (i32.const 55))
    (call $set (i32.const 0) (i32.const 512) (i32.const 10) (i32.const 576) (i32.const 56))
    ;; Continue to the next handler, request context 0.
    (i64.const 1))

  (func (export "handle_response") (param i32 i32)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 1048)))
    (drop (call $status))
    (drop (call $values (i32.const 1) (i32.const 80) (i32.const 14) (i32.const 8192) (i32.const 4096)))
    (if (i32.lt_s (global.get $fd) (i32.const 0))
      (then
        ;; Write rights (1 << 6), non-blocking (fdflags 1 << 2), as the plugin opens it.
        (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 640) (i32.const 20)
                       (i32.const 0) (i64.const 64) (i64.const 0) (i32.const 4) (i32.const 1056)))
          (then (global.set $fd (i32.load (i32.const 1056)))))))
    (if (i32.ge_s (global.get $fd) (i32.const 0))
      (then (drop (call $write (global.get $fd) (i32.const 1024) (i32.const 1) (i32.const 1040))))))
)
