// Package httpguard bounds what HTTP clients can make the server hold,
// credentials or not: how long a request body may take to arrive, how many
// connections are open at once, and how many bytes of request bodies are
// in flight at once. The limits live in Limits; Listener caps connections
// and Guard is the middleware for the rest. The http.Server's own limits
// (header size and time, idle keep-alive) are set from the same Limits by
// the caller.
package httpguard

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	fb "farebox"
)

// Limits are the server's limits; a zero field takes its default.
type Limits struct {
	// HeaderTimeout bounds the wait for a request's headers (the
	// http.Server's ReadHeaderTimeout). 10 s when 0.
	HeaderTimeout time.Duration
	// BodyTimeout bounds the wait for a request's body, from the handler's
	// start to the body's end: 408 past it, or the connection is closed.
	// 30 s when 0.
	BodyTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. 120 s
	// when 0.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 past it). 64 KiB when 0.
	MaxHeaderBytes int
	// MaxConns caps the open connections; more wait to be accepted. 4,096
	// when 0.
	MaxConns int
	// BodyBudget bounds the request bodies in flight, all requests
	// together, in bytes: past it a request is refused with 503 before its
	// body is read. 256 MiB when 0.
	BodyBudget int64
}

// Defaults of Limits.
const (
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultBodyTimeout    = 30 * time.Second
	DefaultIdleTimeout    = 120 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxConns       = 4096
	DefaultBodyBudget     = 256 << 20
)

// WithDefaults returns l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.HeaderTimeout == 0 {
		l.HeaderTimeout = DefaultHeaderTimeout
	}
	if l.BodyTimeout == 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.BodyBudget == 0 {
		l.BodyBudget = DefaultBodyBudget
	}
	return l
}

// Validate refuses negative limits (zero means the default).
func (l Limits) Validate() error {
	switch {
	case l.HeaderTimeout < 0:
		return errors.New("header_timeout must not be negative")
	case l.BodyTimeout < 0:
		return errors.New("body_timeout must not be negative")
	case l.IdleTimeout < 0:
		return errors.New("idle_timeout must not be negative")
	case l.MaxHeaderBytes < 0:
		return errors.New("max_header_bytes must not be negative")
	case l.MaxConns < 0:
		return errors.New("max_conns must not be negative")
	case l.BodyBudget < 0:
		return errors.New("body_budget must not be negative")
	}
	return nil
}

// String describes the limits, for the log.
func (l Limits) String() string {
	l = l.WithDefaults()
	return fmt.Sprintf("body_timeout=%s idle_timeout=%s header_timeout=%s max_header_bytes=%d max_conns=%d body_budget=%d",
		l.BodyTimeout, l.IdleTimeout, l.HeaderTimeout, l.MaxHeaderBytes, l.MaxConns, l.BodyBudget)
}

// Server returns an http.Server serving h within l's header, idle and
// header-size limits. There is deliberately no ReadTimeout: it would stay
// armed after the body is read, and net/http's background read would then
// cancel the request's context in the middle of a long streamed response.
// Guard bounds the body instead, and only while it is being read.
func (l Limits) Server(h http.Handler) *http.Server {
	l = l.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// Guard is the middleware that bounds request bodies: the time they take
// to arrive and the bytes in flight over all requests.
type Guard struct {
	limits Limits
	// onError writes an error response (the API's error table).
	onError func(http.ResponseWriter, *http.Request, error)
	now     func() time.Time

	mu   sync.Mutex
	used int64 // bytes of the budget reserved by requests in flight
}

// New returns a Guard within l (defaults filled in); onError writes its
// refusals, which are *farebox.Error values.
func New(l Limits, onError func(http.ResponseWriter, *http.Request, error)) *Guard {
	return &Guard{limits: l.WithDefaults(), onError: onError, now: time.Now}
}

// InFlight reports the bytes of the budget reserved now.
func (g *Guard) InFlight() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}

func (g *Guard) reserve(n int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n > g.limits.BodyBudget-g.used {
		return false
	}
	g.used += n
	return true
}

func (g *Guard) release(n int64) {
	if n == 0 {
		return
	}
	g.mu.Lock()
	g.used -= n
	g.mu.Unlock()
}

// Handler bounds the request bodies next reads. A request's declared
// Content-Length is reserved from the budget before next runs, and a body
// of unknown length is counted as it is read; both are released when next
// returns. The body's read deadline is set before next runs and cleared
// once the body has been read to its end, so the deadline never outlives
// the body (see Limits.Server).
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > g.limits.BodyBudget {
			// It could never be served, whatever else is in flight.
			g.refuse(w, r, fb.Errorf(fb.ETooLarge, "the request body is %d bytes; this server accepts at most %d", r.ContentLength, g.limits.BodyBudget))
			return
		}
		if r.ContentLength > 0 && !g.reserve(r.ContentLength) {
			w.Header().Set("Retry-After", "1")
			g.refuse(w, r, busy())
			return
		}
		b := &body{ReadCloser: r.Body, g: g, rc: http.NewResponseController(w), timeout: g.limits.BodyTimeout}
		if r.ContentLength > 0 {
			b.reserved = r.ContentLength
		} else {
			b.counting = true
		}
		defer func() { g.release(b.done()) }()
		// Not supported by every ResponseWriter (a test recorder); the
		// body is then unbounded in time, as before.
		b.armed = b.rc.SetReadDeadline(g.now().Add(b.timeout)) == nil
		r.Body = b
		next.ServeHTTP(w, r)
	})
}

func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, err error) {
	// The body is not read: close the connection rather than let net/http
	// wait for it to keep the connection alive.
	w.Header().Set("Connection", "close")
	g.onError(w, r, err)
}

func busy() error {
	return fb.Errorf(fb.EUnavailable, "the server is receiving too many request bodies at once; retry shortly").WithCode("server_busy")
}

// body is a request body within the guard's limits.
type body struct {
	io.ReadCloser
	g       *Guard
	rc      *http.ResponseController
	timeout time.Duration

	mu       sync.Mutex
	armed    bool  // the read deadline is set
	counting bool  // unknown length: reserve bytes as they arrive
	reserved int64 // bytes of the budget this request holds
	finished bool  // the handler returned
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.counting && n > 0 && !b.finished {
		if !b.g.reserve(int64(n)) {
			return 0, busy()
		}
		b.reserved += int64(n)
	}
	switch {
	case err == io.EOF:
		if b.armed {
			// The whole body is in: the handler may run (and stream) as
			// long as it needs to.
			b.rc.SetReadDeadline(time.Time{})
			b.armed = false
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, fb.Errorf(fb.ERequestTimeout, "the request body did not arrive within %s", b.timeout)
	}
	return n, err
}

// done ends the request: it returns what it reserved, for release, and
// stops counting reads a handler may still make from another goroutine.
func (b *body) done() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished = true
	n := b.reserved
	b.reserved = 0
	return n
}
