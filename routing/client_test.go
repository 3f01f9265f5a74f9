package routing

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDefaultClientNoRedirects: the upstream client never follows a
// redirect, which would re-send the request's body, and (to the same
// host) its Authorization, wherever the upstream points (security review,
// finding 17). The 3xx comes back like any other non-2xx answer.
func TestDefaultClientNoRedirects(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"followed": true}`))
	}))
	defer target.Close()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/v1/chat/completions", status)
		}))
		req, _ := http.NewRequest("POST", redirector.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
		req.Header.Set("Authorization", "Bearer sk-provider-key")
		resp, err := DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d: %v", status, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		redirector.Close()
		if resp.StatusCode != status {
			t.Errorf("an upstream answering %d: got %d, want the %d itself", status, resp.StatusCode, status)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target was called %d times, want never", n)
	}
}
