package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://fb:s3cret@db:5432/farebox", "postgres://fb:xxxxx@db:5432/farebox"},
		{"postgres://fb@db/farebox?sslmode=require&password=s3cret", "postgres://fb@db/farebox?sslmode=require&password=xxxxx"},
		{"postgres://fb@db/farebox?sslpassword=s3cret", "postgres://fb@db/farebox?sslpassword=xxxxx"},
		{"postgres://fb:s3%63ret@db/farebox", "postgres://fb:xxxxx@db/farebox"},
		{"mysql://fb:s3cret@db/farebox", "mysql://fb:xxxxx@db/farebox"},
		{"postgres://fb:s3cret?x@db/farebox", "postgres://fb:xxxxx@db/farebox"},
		{"postgres://db/farebox", "postgres://db/farebox"},
		{"postgres://fb@db/farebox", "postgres://fb@db/farebox"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestOpenHidesPassword: Open's errors never show the URL's password,
// neither in their text nor in an error they wrap (security review,
// finding 16).
func TestOpenHidesPassword(t *testing.T) {
	for _, u := range []string{
		"postgres://fb:s3cretpw@127.0.0.1:1/farebox?sslmode=disable&connect_timeout=2",
		"postgres://fb:s3cretpw@127.0.0.1:notaport/farebox",
		"postgres://fb:s3cret%zzpw@127.0.0.1:1/farebox",
		"postgres://fb:s3cret/pw@127.0.0.1:bad/farebox",
		"postgres://fb@127.0.0.1:1/farebox?sslmode=bogus&password=s3cretpw",
		"postgres://fb@127.0.0.1:1/farebox?sslpassword=s3cretpw&connect_timeout=x",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := Open(ctx, u, Options{})
		cancel()
		if err == nil {
			t.Fatalf("Open(%s): no error", u)
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.Contains(e.Error(), "s3cret") {
				t.Errorf("Open(%s): the password is shown: %v", u, e)
			}
		}
	}
	// Whatever quotes the URL whole (as net/url's errors do) is masked.
	u := "postgres://fb:s3cret\"pw@[::1/farebox"
	_, perr := url.Parse(u)
	if got := hide(perr, u).Error(); strings.Contains(got, "s3cret") {
		t.Errorf("net/url's error of %s: the password is shown: %s", u, got)
	}
}
