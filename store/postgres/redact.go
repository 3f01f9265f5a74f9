package postgres

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Redact returns the database URL u with its passwords (the userinfo's,
// and password or sslpassword in the query) masked, for errors and logs.
// It works on any scheme and on a URL that does not parse, where it may
// mask more than the password.
func Redact(u string) string {
	return mask(u, secrets(u))
}

// hidden is an error whose text has had the URL's passwords masked. It
// does not unwrap: the error it replaces (pgx's parse errors wrap net/url's,
// which quote the URL whole) must not be reachable to print either.
type hidden struct{ msg string }

func (e *hidden) Error() string { return e.msg }

// hide masks the passwords of the URL u in err's text.
func hide(err error, u string) error {
	if err == nil {
		return nil
	}
	return &hidden{msg: mask(err.Error(), secrets(u))}
}

func mask(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "xxxxx")
	}
	return s
}

// secrets lists the password values in u as they may appear in a message:
// raw, percent-decoded and Go-quoted (net/url quotes a URL with %q), the
// longest first so that none is left half masked.
func secrets(u string) []string {
	seen := map[string]bool{}
	add := func(v string, unescape func(string) (string, error)) {
		forms := []string{v}
		if d, err := unescape(v); err == nil {
			forms = append(forms, d)
		}
		for _, f := range forms {
			q := strconv.Quote(f)
			for _, f := range []string{f, q[1 : len(q)-1]} {
				if f != "" {
					seen[f] = true
				}
			}
		}
	}
	rest := u
	if _, after, ok := strings.Cut(rest, "://"); ok {
		rest = after
	}
	// The userinfo ends at an '@'; in a URL that does not parse, which one
	// is ambiguous, so both the first and the last count.
	for _, at := range []int{strings.IndexByte(rest, '@'), strings.LastIndexByte(rest, '@')} {
		if at < 0 {
			continue
		}
		if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
			add(pw, url.PathUnescape)
		}
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if d, err := url.QueryUnescape(k); err == nil {
				k = d
			}
			if k == "password" || k == "sslpassword" {
				add(v, url.QueryUnescape)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
