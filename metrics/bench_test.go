package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The cost per call of what runs on the hot path. Each middleware
// benchmark has its baseline, the bare handler, in the same run.

// discardWriter is a ResponseWriter that costs next to nothing, so the
// benchmark measures the middleware, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Flush()                      {}

var benchBody = []byte(`{"ok":true}`)

func benchHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write(benchBody)
	})
}

func BenchmarkMiddleware(b *testing.B) {
	req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", benchHandler()},
		{"wrapped", New(Options{}).Middleware("POST /v1/chat/completions", benchHandler())},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					c.h.ServeHTTP(w, req)
				}
			})
		})
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	m := New(Options{})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.ObserveRequest("gpt-4o", "openai-east", "ok", 250*time.Millisecond, 3*time.Second)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.ObserveRequest("gpt-4o", "openai-east", "ok", 250*time.Millisecond, 3*time.Second)
			}
		})
	})
	b.Run("nil", func(b *testing.B) {
		var m *Metrics
		b.ReportAllocs()
		for b.Loop() {
			m.ObserveRequest("gpt-4o", "openai-east", "ok", 250*time.Millisecond, 3*time.Second)
		}
	})
}

func BenchmarkObserveBatch(b *testing.B) {
	m := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveBatch(512, 3*time.Millisecond, false)
	}
}
