package uitest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Session is a person's browser minus the rendering: an HTTP client with
// a cookie jar that does not follow redirects (a test reads where it was
// sent), and that fills in a form's CSRF token from the page it is on.
type Session struct {
	T      testing.TB
	URL    string
	Client *http.Client
}

// Browser is a new session at the site, not signed in.
func (s *Site) Browser() *Session {
	jar, _ := cookiejar.New(nil)
	return &Session{T: s.T, URL: s.URL, Client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// SignedIn is a new session signed in with secret (a key or the admin
// token); a sign-in that does not send it on (303) fails the test.
func (s *Site) SignedIn(secret string) *Session {
	s.T.Helper()
	b := s.Browser()
	if code, _ := b.SignIn(secret); code != http.StatusSeeOther {
		s.T.Fatalf("sign-in: %d", code)
	}
	return b
}

// Do sends a request (a form when form is not nil) and returns the answer
// with its body read.
func (b *Session) Do(method, path string, form url.Values) (*http.Response, string) {
	b.T.Helper()
	var body io.Reader
	contentType := ""
	if form != nil {
		body = strings.NewReader(form.Encode())
		contentType = "application/x-www-form-urlencoded"
	}
	req, _ := http.NewRequest(method, b.URL+path, body)
	res, out := send(b.T, b.Client, req, "", contentType)
	return res, string(out)
}

// Get is GET path: the answer's status and body.
func (b *Session) Get(path string) (int, string) {
	b.T.Helper()
	res, page := b.Do("GET", path, nil)
	return res.StatusCode, page
}

// Page is GET path, which must answer 200.
func (b *Session) Page(path string) string {
	b.T.Helper()
	code, page := b.Get(path)
	if code != 200 {
		b.T.Fatalf("GET %s: %d\n%s", path, code, page)
	}
	return page
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// CSRF is the CSRF token of the page at path, which must answer 200 and
// have one.
func (b *Session) CSRF(path string) string {
	b.T.Helper()
	m := csrfField.FindStringSubmatch(b.Page(path))
	if m == nil {
		b.T.Fatalf("GET %s: no CSRF token in the page", path)
	}
	return m[1]
}

// Post submits a form of the page at from (with that page's CSRF token)
// to path.
func (b *Session) Post(from, path string, form url.Values) (*http.Response, string) {
	b.T.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.CSRF(from))
	return b.Do("POST", path, form)
}

// SignIn signs in with secret through the sign-in form and says where it
// was sent: the answer's status and Location.
func (b *Session) SignIn(secret string) (int, string) {
	b.T.Helper()
	res, _ := b.Do("POST", "/ui/signin", url.Values{"csrf": {b.CSRF("/")}, "secret": {secret}})
	return res.StatusCode, res.Header.Get("Location")
}
