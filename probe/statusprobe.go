// Package statusprobe is the exact-status companion of the
// traefik-datadog-plugin wasm middleware. Traefik's wasm host reveals a
// response's status only when the response is buffered; for responses the
// plugin streams (downloads, SSE, learned large routes) this middleware,
// placed after the plugin, watches the status the backend writes and, once
// the response has been served, puts it in the response header map under
// X-Traefik-Datadog-Status. The headers are on the wire by then, so the
// client never sees it; the plugin reads it from the same header map.
package statusprobe

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
)

// Header is the name the plugin reads (tdp_core::buffering::PROBE_HEADER).
const Header = "X-Traefik-Datadog-Status"

// Config has no options.
type Config struct{}

// CreateConfig is called by Traefik.
func CreateConfig() *Config { return &Config{} }

// Probe is the middleware.
type Probe struct{ next http.Handler }

// New is called by Traefik.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &Probe{next: next}, nil
}

type recorder struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	status int
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) WriteHeader(code int) {
	// 1xx (except a 101 upgrade) are informational: the final status follows.
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.w.WriteHeader(code)
}

// Write flushes after each write: Traefik's interpreter hands the next
// handler a wrapper of this type without Flush, so the proxy's own flushes
// (SSE, streaming) would otherwise never reach the client until the end.
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.w.Write(b)
	if err == nil {
		_ = r.rc.Flush()
	}
	return n, err
}

func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = r.rc.Flush()
}

// Hijack is how a WebSocket upgrade leaves HTTP: its status is 101.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.status = http.StatusSwitchingProtocols
	return r.rc.Hijack()
}

func (p *Probe) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rec := &recorder{w: w, rc: http.NewResponseController(w)}
	p.next.ServeHTTP(rec, req)
	// Nothing written: setting the header now would go out with Go's
	// implicit 200 and change the response.
	if rec.status != 0 {
		w.Header().Set(Header, strconv.Itoa(rec.status))
	}
}
