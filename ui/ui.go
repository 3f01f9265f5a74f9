// Package ui is Farebox's web dashboard, served by `farebox serve` itself:
// the sign-in at /, the customer's pages under /ui/account and the
// operator's under /ui/admin. Pages are rendered on the server with
// html/template from the same services the API answers from (the ledger's
// balance, the economics read of the daily sums, the forecast, plans and
// keys), so every figure equals the API's by construction; charts are SVG
// drawn here; templates, CSS and the little JavaScript (table sorting) are
// embedded, nothing is fetched from elsewhere, and every page works
// without JavaScript.
//
// Sessions are rows of the store named by a signed, HttpOnly,
// SameSite=Strict cookie (Secure over TLS); signing out ends the row, so a
// copied cookie dies too. Every POST form carries a CSRF token derived
// from the session, every response a strict Content-Security-Policy, and
// the key or token signed in with is never put in a URL, a log line or a
// page. The navigation is a registry (see Page): other features add their
// pages to it.
package ui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	fb "farebox"
	"farebox/economics"
	"farebox/gateway"
	"farebox/httpx"
	"farebox/ids"
	"farebox/ledger"
	"farebox/plans"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Deps are the services the pages read and act through, built by the
// composition root.
type Deps struct {
	Store     fb.Store
	Engine    *ledger.Engine
	Plans     *plans.Service
	Gateway   *gateway.Gateway
	Economics economics.Config
	// AdminToken signs the operator in; the sessions' signing key is
	// derived from it, so every replica given the same token accepts the
	// same cookies.
	AdminToken string
	Clock      fb.Clock
	NewID      func(prefix string) string
	Log        *slog.Logger
	// TopUp is the operator's instructions on the customer's top-up
	// panel, until payments offer a checkout.
	TopUp string

	// CanVerify offers the "verify the ledger" button (the embedded
	// store: one process, a journal read in one snapshot).
	CanVerify bool
	// SessionTTL is how long a sign-in lasts; 12 hours when 0.
	SessionTTL time.Duration
}

// UI is the dashboard: its page registry and handler.
type UI struct {
	d     Deps
	key   []byte
	pages []Page
	tmpl  map[string]*template.Template
	// buy and topUpPage are the checkout the top-up panel offers (see
	// OfferCheckout), "" when it shows the operator's instructions.
	buy, topUpPage string

	mu    sync.Mutex
	built bool

	verifying sync.Mutex // held while a verification runs
}

// New builds the dashboard with its built-in pages registered.
func New(d Deps) (*UI, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.NewID == nil {
		d.NewID = ids.New
	}
	if d.SessionTTL <= 0 {
		d.SessionTTL = 12 * time.Hour
	}
	u := &UI{d: d}
	if d.AdminToken != "" {
		m := hmac.New(sha256.New, []byte(d.AdminToken))
		m.Write([]byte("farebox dashboard sessions v1"))
		u.key = m.Sum(nil)
	} else {
		u.key = []byte(ids.Secret(43)) // no operator: sessions of this process only
	}
	if err := u.parse(); err != nil {
		return nil, err
	}
	for _, p := range append(u.accountPages(), u.adminPages()...) {
		if err := u.Register(p); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// parse builds one template set per page template, each with the layout.
func (u *UI) parse() error {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	u.tmpl = map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return err
		}
		u.tmpl[name] = t
	}
	return nil
}

// OfferCheckout makes the customer's top-up panel offer a checkout in
// place of the operator's instructions: buy is a registered customer POST
// page that opens one for the form's "credits"; page, when not "", a
// registered customer page of top-ups the panel links to. It fails on a
// page that is not registered, and after Handler was called.
func (u *UI) OfferCheckout(buy, page string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.built {
		return errors.New("ui: OfferCheckout after the handler was built")
	}
	for _, want := range []struct{ method, url string }{{http.MethodPost, buy}, {http.MethodGet, page}} {
		found := want.url == "" && want.method == http.MethodGet
		for _, p := range u.pages {
			found = found || (p.Side == Customer && p.method() == want.method && p.URL() == want.url)
		}
		if !found {
			return fmt.Errorf("ui: the top-up panel's %s %s is not a registered customer page", want.method, want.url)
		}
	}
	u.buy, u.topUpPage = buy, page
	return nil
}

// Run deletes expired sessions every interval until ctx ends.
func (u *UI) Run(ctx context.Context, every time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.d.Clock.After(every):
		}
		if _, err := u.d.Store.DeleteSessions(ctx, u.d.Clock.Now()); err != nil && ctx.Err() == nil {
			u.d.Log.Warn("deleting expired dashboard sessions failed", "err", err)
		}
	}
}

// Handler serves /, /ui/… and the assets. Pages registered later are not
// served.
func (u *UI) Handler() http.Handler {
	u.mu.Lock()
	u.built = true
	pages := append([]Page(nil), u.pages...)
	u.mu.Unlock()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", u.signinPage)
	mux.HandleFunc("POST /ui/signin", u.signin)
	mux.HandleFunc("POST /ui/signout", u.signout)
	assets, _ := fs.Sub(assetFS, "assets")
	files := http.FileServerFS(assets)
	mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})))
	for _, p := range pages {
		mux.Handle(p.method()+" "+p.URL(), u.serve(p))
	}
	// Anything else under a side: a customer is refused every operator
	// URL (403) before learning whether it exists.
	mux.HandleFunc("/ui/admin/", u.unknown(Operator))
	mux.HandleFunc("/ui/admin", u.unknown(Operator))
	mux.HandleFunc("/ui/account/", u.unknown(Customer))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, nil, fb.Errorf(fb.ENotFound, "there is no page %s", r.URL.Path))
	})
	return headers(mux)
}

// csp allows the page's own CSS and script only: no inline script or
// style, nothing from elsewhere, no framing, forms posting here only.
const csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets what every dashboard response carries.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (u *UI) now() time.Time { return u.d.Clock.Now().UTC() }

// Cookies.
const (
	sessionCookie = "farebox_session"
	signinCookie  = "farebox_signin" // the sign-in form's CSRF token, before a session exists
	flashCookie   = "farebox_flash"
)

func (u *UI) sign(v string) string {
	m := hmac.New(sha256.New, u.key)
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOf is a session's CSRF token: bound to it, unknowable without the
// key.
func (u *UI) csrfOf(sessionID string) string { return u.sign("csrf\x00" + sessionID)[:32] }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// session is the live session the request's cookie names, if any. A
// customer's session also needs its key unrevoked.
func (u *UI) session(r *http.Request) (fb.Session, bool, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return fb.Session{}, false, nil
	}
	id, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !equal(sig, u.sign("session\x00"+id)) {
		return fb.Session{}, false, nil
	}
	s, err := u.d.Store.Session(r.Context(), id)
	if fb.ErrorType(err) == fb.ENotFound {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if !s.Live(u.now()) {
		return s, false, nil
	}
	if !s.Operator() {
		ks, err := u.d.Store.Keys(r.Context(), s.Customer)
		if err != nil {
			return s, false, err
		}
		live := false
		for _, k := range ks {
			live = live || (k.ID == s.KeyID && k.RevokedAt.IsZero())
		}
		if !live {
			return s, false, nil
		}
	}
	return s, true, nil
}

// serve runs a page: the session and its side first, then the CSRF token
// of a POST, then the page.
func (u *UI) serve(p Page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok, err := u.session(r)
		if err != nil {
			u.fail(w, r, nil, err)
			return
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
			u.fail(w, r, nil, fb.Errorf(fb.EUnauthorized, "sign in first"))
			return
		}
		switch {
		case p.Side == Operator && !s.Operator():
			u.fail(w, r, &s, fb.Errorf(fb.EForbidden, "this page is for the operator"))
			return
		case p.Side == Customer && s.Operator():
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/admin", http.StatusSeeOther)
				return
			}
			u.fail(w, r, &s, fb.Errorf(fb.EForbidden, "this form is for customers"))
			return
		}
		if !p.visibleTo(r.Context(), s) {
			u.fail(w, r, &s, fb.Errorf(fb.ENotFound, "there is no page %s", r.URL.Path))
			return
		}
		req := &Request{Request: r, W: w, Session: s, Now: u.now(), csrf: u.csrfOf(s.ID)}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				u.fail(w, r, &s, fb.Invalid("form", "the form could not be read"))
				return
			}
			if !equal(r.PostFormValue("csrf"), req.csrf) {
				u.fail(w, r, &s, fb.Errorf(fb.EForbidden, "the form's CSRF token is missing or wrong: reload the page and try again"))
				return
			}
		}
		v, err := p.Handle(req)
		if err != nil {
			u.fail(w, r, &s, err)
			return
		}
		u.render(w, req, p.Side, v)
	})
}

// unknown answers a URL under a side that no page has.
func (u *UI) unknown(side Side) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok, err := u.session(r)
		switch {
		case err != nil:
			u.fail(w, r, nil, err)
		case side == Operator && ok && !s.Operator():
			u.fail(w, r, &s, fb.Errorf(fb.EForbidden, "this page is for the operator"))
		case !ok && r.Method == http.MethodGet:
			http.Redirect(w, r, "/", http.StatusSeeOther)
		case !ok:
			u.fail(w, r, nil, fb.Errorf(fb.EUnauthorized, "sign in first"))
		default:
			u.fail(w, r, &s, fb.Errorf(fb.ENotFound, "there is no page %s", r.URL.Path))
		}
	}
}

// page is what the layout draws around a view.
type page struct {
	Title    string
	Side     Side
	Nav      []navItem
	CSRF     string
	Customer string
	Flash    string
	Error    string
	Status   int
	Now      time.Time
	View     *View
	Data     any
	// Refresh, when set, sends the browser on to that URL at once.
	Refresh string
}

// externalOrigin is the origin of an absolute http(s) URL, "" for a
// path of this site or anything else: a View's Redirect there leaves the
// dashboard.
func externalOrigin(to string) string {
	p, err := url.Parse(to)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ""
	}
	for _, c := range p.Host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return ""
		}
	}
	return p.Scheme + "://" + p.Host
}

func (u *UI) render(w http.ResponseWriter, r *Request, side Side, v *View) {
	if v.Redirect != "" {
		if origin := externalOrigin(v.Redirect); origin != "" {
			// Another origin's page (a payment provider's): the page's
			// form-action 'self' also stops a form's redirect there, so
			// the answer is a page that goes on by itself (a refresh,
			// which needs no script) with a link to follow otherwise.
			title := v.Title
			if title == "" {
				title = "Leaving Farebox"
			}
			u.write(w, r.Request, "leaving", page{Title: title, Side: side, CSRF: r.csrf, Customer: r.Session.Customer, Now: r.Now,
				View: v, Data: strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://"), Refresh: v.Redirect})
			return
		}
		if v.Flash != "" {
			u.setCookie(w, r.Request, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(v.Flash)), 60)
		}
		http.Redirect(w, r.Request, v.Redirect, http.StatusSeeOther)
		return
	}
	pg := page{Title: v.Title, Side: side, Nav: u.nav(r.Context(), r.Session, side, activeURL(u.Pages(side), r.URL.Path)), CSRF: r.csrf,
		Customer: r.Session.Customer, Flash: v.Flash, Now: r.Now, View: v, Data: v.Data, Status: v.Status}
	if c, err := r.Cookie(flashCookie); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && pg.Flash == "" {
			pg.Flash = string(b)
		}
		u.setCookie(w, r.Request, flashCookie, "", -1)
	}
	name := v.Template
	if name == "" {
		name = "sections"
	}
	u.write(w, r.Request, name, pg)
}

func (u *UI) write(w http.ResponseWriter, r *http.Request, name string, pg page) {
	t := u.tmpl[name]
	if t == nil {
		u.d.Log.Error("dashboard template missing", "template", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", pg); err != nil {
		u.d.Log.Error("dashboard template failed", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if pg.Status != 0 {
		w.WriteHeader(pg.Status)
	}
	w.Write([]byte(b.String()))
}

// activeURL is the page of the navigation a path is under: the longest
// page URL it starts with at a segment boundary.
func activeURL(pages []Page, path string) string {
	best := ""
	for _, p := range pages {
		url := p.URL()
		if p.Title == "" || len(url) <= len(best) {
			continue
		}
		if path == url || strings.HasPrefix(path, url+"/") {
			best = url
		}
	}
	return best
}

// fail renders an error page with the error's status; a 500's cause is
// logged, never shown.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *fb.Session, err error) {
	status := httpx.Status(err)
	msg := httpx.ClientError(err).Message
	if status == http.StatusInternalServerError {
		u.d.Log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
	}
	pg := page{Title: http.StatusText(status), Status: status, Error: msg, Now: u.now()}
	if s != nil {
		pg.Side = Customer
		if s.Operator() {
			pg.Side = Operator
		}
		pg.Customer = s.Customer
		pg.CSRF = u.csrfOf(s.ID)
		pg.Nav = u.nav(r.Context(), *s, pg.Side, "")
	}
	u.write(w, r, "error", pg)
}

// The sign-in.

func (u *UI) signinPage(w http.ResponseWriter, r *http.Request) {
	if s, ok, err := u.session(r); err == nil && ok {
		to := "/ui/account"
		if s.Operator() {
			to = "/ui/admin"
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	tok := ids.Secret(32)
	u.setCookie(w, r, signinCookie, tok, 3600)
	u.write(w, r, "signin", page{Title: "Sign in", CSRF: tok, Now: u.now()})
}

func (u *UI) signinFailed(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := ids.Secret(32)
	u.setCookie(w, r, signinCookie, tok, 3600)
	u.write(w, r, "signin", page{Title: "Sign in", CSRF: tok, Error: msg, Status: status, Now: u.now()})
}

// signin is POST /ui/signin: the admin token opens an operator session, a
// live customer key a session of its customer.
func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		u.signinFailed(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c, err := r.Cookie(signinCookie)
	if err != nil || !equal(r.PostFormValue("csrf"), c.Value) {
		u.signinFailed(w, r, http.StatusForbidden, "The form expired: try again.")
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("secret"))
	s := fb.Session{ID: ids.Secret(32), CreatedAt: u.now(), ExpiresAt: u.now().Add(u.d.SessionTTL)}
	switch {
	case secret == "":
		u.signinFailed(w, r, http.StatusBadRequest, "Enter an API key or the admin token.")
		return
	case u.d.AdminToken != "" && equal(secret, u.d.AdminToken):
	default:
		k, err := u.d.Gateway.AuthenticateKey(r.Context(), secret)
		if fb.ErrorType(err) == fb.EInvalidAPIKey {
			u.signinFailed(w, r, http.StatusUnauthorized, "That is neither a live API key nor the admin token.")
			return
		}
		if err != nil {
			u.fail(w, r, nil, err)
			return
		}
		s.Customer, s.KeyID = k.Customer, k.ID
	}
	if err := u.d.Store.CreateSession(r.Context(), s); err != nil {
		u.fail(w, r, nil, err)
		return
	}
	u.setCookie(w, r, signinCookie, "", -1)
	u.setCookie(w, r, sessionCookie, s.ID+"."+u.sign("session\x00"+s.ID), int(u.d.SessionTTL/time.Second))
	to := "/ui/account"
	if s.Operator() {
		to = "/ui/admin"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// signout is POST /ui/signout: the session ends in the store, the cookie
// is cleared.
func (u *UI) signout(w http.ResponseWriter, r *http.Request) {
	s, ok, err := u.session(r)
	if err != nil {
		u.fail(w, r, nil, err)
		return
	}
	if ok {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil || !equal(r.PostFormValue("csrf"), u.csrfOf(s.ID)) {
			u.fail(w, r, &s, fb.Errorf(fb.EForbidden, "the form's CSRF token is missing or wrong: reload the page and try again"))
			return
		}
		if err := u.d.Store.EndSession(r.Context(), s.ID, u.now()); err != nil {
			u.fail(w, r, &s, err)
			return
		}
	}
	u.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var errNoCustomer = errors.New("ui: a customer page without a customer")

func mustCustomer(r *Request) (string, error) {
	if r.Session.Customer == "" {
		return "", errNoCustomer
	}
	return r.Session.Customer, nil
}
