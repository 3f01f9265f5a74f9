package metrics

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestMiddlewareStatus(t *testing.T) {
	for _, c := range []struct {
		name    string
		method  string
		handler http.HandlerFunc
		want    string // the status label
	}{
		{"explicit status", "POST", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusPaymentRequired)
			io.WriteString(w, `{"error":{}}`)
		}, "402"},
		{"write without WriteHeader", "GET", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
		}, "200"},
		{"nothing written", "GET", func(w http.ResponseWriter, r *http.Request) {}, "200"},
		{"WriteHeader after a write is ignored", "GET", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
			w.WriteHeader(http.StatusInternalServerError)
		}, "200"},
		{"flush before WriteHeader", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			w.WriteHeader(http.StatusInternalServerError)
		}, "200"},
		{"informational then final", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}, "201"},
		{"second WriteHeader ignored", "DELETE", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
			w.WriteHeader(http.StatusInternalServerError)
		}, "204"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New(Options{})
			// The path carries an id; the label must be the pattern.
			const route = "POST /api/v1/holds/{id}/capture"
			srv := httptest.NewServer(m.Middleware(route, c.handler))
			defer srv.Close()
			req, _ := http.NewRequest(c.method, srv.URL+"/api/v1/holds/hold_123/capture", nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := statusLabel(resp.StatusCode); got != c.want {
				t.Fatalf("client saw status %s, want %s (the test's own premise)", got, c.want)
			}

			fams := scrape(t, m)
			labels := map[string]string{"route": route, "method": c.method, "status": c.want}
			if got := value(t, fams, "farebox_http_requests_total", labels); got != 1 {
				t.Errorf("http_requests_total%v: got %v, want 1", labels, got)
			}
			if n, _ := hist(t, fams, "farebox_http_request_duration_seconds", labels); n != 1 {
				t.Errorf("http_request_duration_seconds%v: got count %d, want 1", labels, n)
			}
			if got := len(fams["farebox_http_requests_total"].GetMetric()); got != 1 {
				t.Errorf("http_requests_total: got %d series, want 1", got)
			}
		})
	}
}

func TestMiddlewareOddMethod(t *testing.T) {
	// A client-chosen method must not mint a series per spelling.
	m := New(Options{})
	h := m.Middleware("/", http.NotFoundHandler())
	for _, meth := range []string{"BREW", "PROPFIND", "get"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(meth, "/", nil))
	}
	labels := map[string]string{"route": "/", "method": "OTHER", "status": "404"}
	if got := value(t, scrape(t, m), "farebox_http_requests_total", labels); got != 3 {
		t.Errorf("http_requests_total%v: got %v, want 3", labels, got)
	}
}

func TestMiddlewarePanic(t *testing.T) {
	// A handler that panics before writing is counted as a 500, and the
	// panic still reaches net/http.
	m := New(Options{})
	h := m.Middleware("GET /boom", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the handler's panic", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/boom", nil))
	}()
	labels := map[string]string{"route": "GET /boom", "method": "GET", "status": "500"}
	if got := value(t, scrape(t, m), "farebox_http_requests_total", labels); got != 1 {
		t.Errorf("http_requests_total%v: got %v, want 1", labels, got)
	}
}

// TestMiddlewareStreaming runs a stream through a real server: each event
// must reach the client while the handler still runs (the flush passes
// through), http.ResponseController must reach the connection (deadlines),
// trailers must arrive, and the request is timed to the stream's end.
func TestMiddlewareStreaming(t *testing.T) {
	m := New(Options{})
	const route = "POST /v1/chat/completions"
	// The client read an event; buffered, so a client ahead of a broken
	// handler does not block and the test fails instead of hanging.
	got := make(chan struct{}, 2)
	handlerErr := make(chan error, 1)
	h := m.Middleware(route, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlerErr <- func() error {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Trailer", "X-Farebox-Cost")
			rc := http.NewResponseController(w)
			if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				return errors.New("SetWriteDeadline through the wrapper: " + err.Error())
			}
			if err := rc.EnableFullDuplex(); err != nil {
				return errors.New("EnableFullDuplex through the wrapper: " + err.Error())
			}
			io.WriteString(w, "data: 1\n\n")
			if err := rc.Flush(); err != nil {
				return errors.New("ResponseController.Flush through the wrapper: " + err.Error())
			}
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				return errors.New("the client did not get the first event after ResponseController.Flush")
			}
			io.WriteString(w, "data: 2\n\n")
			f, ok := w.(http.Flusher)
			if !ok {
				return errors.New("the wrapper is not an http.Flusher")
			}
			f.Flush()
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				return errors.New("the client did not get the second event after Flush")
			}
			time.Sleep(20 * time.Millisecond) // so the timing is seen to cover the stream
			w.Header().Set("X-Farebox-Cost", "0.42")
			return nil
		}()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := srv.Client().Post(srv.URL+"/v1/chat/completions", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for i, want := range []string{"data: 1\n", "data: 2\n"} {
		line, err := rd.ReadString('\n')
		if err != nil || line != want {
			// The handler's error, when it has one, says why.
			var herr error
			select {
			case herr = <-handlerErr:
			case <-time.After(10 * time.Second):
			}
			t.Fatalf("event %d: got %q, %v; want %q (handler: %v)", i+1, line, err, want, herr)
		}
		rd.ReadString('\n') // the blank line ending the event
		got <- struct{}{}
	}
	io.Copy(io.Discard, rd)
	if err := <-handlerErr; err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Trailer.Get("X-Farebox-Cost"), "0.42"; got != want {
		t.Errorf("trailer X-Farebox-Cost: got %q, want %q", got, want)
	}

	fams := scrape(t, m)
	labels := map[string]string{"route": route, "method": "POST", "status": "200"}
	if got := value(t, fams, "farebox_http_requests_total", labels); got != 1 {
		t.Errorf("http_requests_total%v: got %v, want 1", labels, got)
	}
	if n, sum := hist(t, fams, "farebox_http_request_duration_seconds", labels); n != 1 || sum < 0.02 {
		t.Errorf("http_request_duration_seconds%v: got count %d sum %vs, want 1 and at least the stream's 0.02s", labels, n, sum)
	}
}

func TestRecorderUnwrap(t *testing.T) {
	// ResponseController reaches the writer beneath: the recorder itself
	// has no SetReadDeadline, so only Unwrap can find it.
	inner := &deadlineWriter{ResponseWriter: httptest.NewRecorder()}
	rec := &recorder{ResponseWriter: inner}
	if err := http.NewResponseController(rec).SetReadDeadline(time.Now()); err != nil {
		t.Fatalf("SetReadDeadline through the recorder: got %v, want nil", err)
	}
	if !inner.called {
		t.Error("SetReadDeadline did not reach the writer beneath")
	}
}

type deadlineWriter struct {
	http.ResponseWriter
	called bool
}

func (w *deadlineWriter) SetReadDeadline(time.Time) error { w.called = true; return nil }

func TestRecorderFlushNotSupported(t *testing.T) {
	// A writer beneath that cannot flush: the error reaches the caller and
	// no header is taken as sent, so a later WriteHeader still counts.
	rec := &recorder{ResponseWriter: plainWriter{httptest.NewRecorder()}}
	if err := http.NewResponseController(rec).Flush(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Flush: got %v, want http.ErrNotSupported", err)
	}
	rec.WriteHeader(http.StatusAccepted)
	if rec.status != http.StatusAccepted {
		t.Errorf("status: got %d, want 202", rec.status)
	}
}

// plainWriter hides every optional interface of the writer it holds.
type plainWriter struct{ w http.ResponseWriter }

func (p plainWriter) Header() http.Header         { return p.w.Header() }
func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }

func TestMiddlewareSeriesPerMethodAndStatus(t *testing.T) {
	// One route, several methods and statuses, each seen more than once:
	// every pair keeps its own series.
	m := New(Options{})
	h := m.Middleware("/api/v1/holds/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
	}))
	calls := []struct {
		method string
		code   int
	}{{"GET", 200}, {"GET", 404}, {"POST", 200}, {"GET", 200}, {"POST", 409}, {"GET", 404}, {"GET", 200}}
	for _, c := range calls {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, "/api/v1/holds/h1?code="+strconv.Itoa(c.code), nil))
	}
	fams := scrape(t, m)
	for _, c := range []struct {
		method, status string
		want           float64
	}{{"GET", "200", 3}, {"GET", "404", 2}, {"POST", "200", 1}, {"POST", "409", 1}} {
		labels := map[string]string{"route": "/api/v1/holds/{id}", "method": c.method, "status": c.status}
		if got := value(t, fams, "farebox_http_requests_total", labels); got != c.want {
			t.Errorf("http_requests_total%v: got %v, want %v", labels, got, c.want)
		}
		if n, _ := hist(t, fams, "farebox_http_request_duration_seconds", labels); float64(n) != c.want {
			t.Errorf("http_request_duration_seconds%v: got count %d, want %v", labels, n, c.want)
		}
	}
}
