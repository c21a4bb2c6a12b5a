package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// HTTPServer serves /metrics, /healthz and /readyz.
type HTTPServer struct {
	srv *http.Server
	mux *http.ServeMux
	ln  net.Listener
	log *zap.Logger
}

// NewHTTPServer returns a server for gatherer's metrics and ready's state.
func NewHTTPServer(gatherer prometheus.Gatherer, ready ReadyFunc, log *zap.Logger) *HTTPServer {
	if log == nil {
		log = zap.NewNop()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:      zap.NewStdLog(log),
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape never waits on anything slow, but a stuck client
		// must not hold a connection open for ever.
		Timeout: 10 * time.Second,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Alive: the process runs and serves HTTP. Whether it can answer
		// from a current registry is /readyz's question.
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		text(w, code, reason)
	})
	return &HTTPServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      15 * time.Second,
			IdleTimeout:       60 * time.Second,
		},
		mux: mux,
		log: log,
	}
}

// ServeProfiles adds Go's runtime profiles at /debug/pprof/ (net/http/pprof).
// A CPU profile must end within the server's 15 s write timeout: ask for
// /debug/pprof/profile?seconds=10. Call it before Start.
func (s *HTTPServer) ServeProfiles() {
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, body)
}

// Start binds addr (errors surface here, at startup) and serves in the
// background.
func (s *HTTPServer) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--http %s: %w", addr, err)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics HTTP server stopped", zap.Error(err))
		}
	}()
	s.log.Info("serving /metrics, /healthz and /readyz", zap.String("addr", ln.Addr().String()))
	return nil
}

// Addr is the bound address (useful when Start was given port 0).
func (s *HTTPServer) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops serving, letting requests in progress finish until ctx ends.
func (s *HTTPServer) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
