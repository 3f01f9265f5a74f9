package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Middleware counts and times the requests next serves, as
// farebox_http_requests_total and farebox_http_request_duration_seconds
// labelled {route, method, status}. route is the route's pattern, such as
// "POST /v1/chat/completions", never the request's path: a path carries ids
// and whatever a client types, and every distinct label value is a series
// kept forever. For the same reason a method outside the standard ones is
// counted as "OTHER".
//
// The duration runs to next's return, so a stream is timed to its end. The
// status is the one written: 200 when next wrote or flushed without
// WriteHeader, or wrote nothing at all (net/http answers 200 then), and 500
// when next panicked before writing (the client then gets no answer).
// Flush, http.ResponseController (through Unwrap) and trailers work through
// the wrapper. On a nil *Metrics, Middleware returns next. A route that is
// not valid UTF-8 panics here, at wiring, not on a request.
func (m *Metrics) Middleware(route string, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	rm := &routeMetrics{
		requests:  m.httpRequests.MustCurryWith(prometheus.Labels{"route": route}),
		durations: m.httpDuration.MustCurryWith(prometheus.Labels{"route": route}),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		returned := false
		// Deferred, so a panicking handler is still counted; not recovered,
		// so net/http still sees the panic with its stack.
		defer func() {
			status := rec.status
			if status == 0 {
				status = http.StatusOK
				if !returned {
					status = http.StatusInternalServerError
				}
			}
			s := rm.series(r.Method, status)
			s.requests.Inc()
			s.duration.Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
		returned = true
	})
}

// routeMetrics keeps one route's series by method and status. Looking a
// series up by its label values hashes and validates them (the route
// pattern included) on every call, most of the middleware's cost; a route
// sees few methods and statuses, so each pair's series is looked up once.
type routeMetrics struct {
	requests  *prometheus.CounterVec
	durations prometheus.ObserverVec
	byKey     sync.Map // uint64(method index)<<32 | status → *routeSeries
}

type routeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (rm *routeMetrics) series(method string, status int) *routeSeries {
	mi := methodIndex(method)
	key := uint64(mi)<<32 | uint64(uint32(status))
	if s, ok := rm.byKey.Load(key); ok {
		return s.(*routeSeries)
	}
	mlabel, slabel := methods[mi], statusLabel(status)
	s, _ := rm.byKey.LoadOrStore(key, &routeSeries{
		requests: rm.requests.WithLabelValues(mlabel, slabel),
		duration: rm.durations.WithLabelValues(mlabel, slabel),
	})
	return s.(*routeSeries)
}

// recorder notes the status a handler writes and passes the rest through.
// Only what callers reach by type assertion needs a method here (Flush,
// FlushError); everything else http.ResponseController finds through
// Unwrap (deadlines, full duplex, hijacking). Trailers need nothing: they
// travel in Header().
type recorder struct {
	http.ResponseWriter
	status int // 0 until the final header is written
}

func (w *recorder) WriteHeader(code int) {
	// A 1xx other than 101 is informational: the final header is still to
	// come. After the final one, net/http ignores (and logs) another.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK // what net/http sends for a write without WriteHeader
	}
	return w.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController.Flush calls first, so its
// error (a client gone) reaches the handler.
func (w *recorder) FlushError() error {
	err := http.NewResponseController(w.ResponseWriter).Flush()
	// A flush sends the header (200 unless written), unless the writer
	// beneath cannot flush at all.
	if w.status == 0 && !errors.Is(err, http.ErrNotSupported) {
		w.status = http.StatusOK
	}
	return err
}

// Flush is http.Flusher, for handlers that assert it.
func (w *recorder) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the writer beneath.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// methods are the method label's values: the standard methods, and OTHER
// for whatever else a client sends.
var methods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "OTHER",
}

func methodIndex(m string) int {
	for i, s := range methods[:len(methods)-1] {
		if m == s {
			return i
		}
	}
	return len(methods) - 1
}

// statusLabels spares the common codes an allocation per request.
var statusLabels = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}
