package ui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"farebox/ui"
)

// TestRequestsShowCache: a request that read or wrote the provider's
// prompt cache (here a Messages request with cache_control, which the
// simulator answers as a cache write) shows its cache reads and writes
// in the recent-requests table, beside its uncached input; a request
// without shows a dash.
func TestRequestsShowCache(t *testing.T) {
	e := newEnv(t)
	body := `{"model": "gpt-4o-mini", "max_tokens": 20, "system": [{"type": "text", "text": "You are a terse assistant for Acme.", "cache_control": {"type": "ephemeral"}}],
		"messages": [{"role": "user", "content": "Hello"}]}`
	req, _ := http.NewRequest("POST", e.URL+"/v1/messages", strings.NewReader(body))
	req.Header.Set("x-api-key", e.acmeKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var m struct {
		Usage struct {
			InputTokens  int64 `json:"input_tokens"`
			CacheWrites  int64 `json:"cache_creation_input_tokens"`
			CacheReads   int64 `json:"cache_read_input_tokens"`
			OutputTokens int64 `json:"output_tokens"`
		} `json:"usage"`
	}
	if res.StatusCode != 200 || json.Unmarshal(b, &m) != nil || m.Usage.CacheWrites == 0 {
		t.Fatalf("messages: %d %s", res.StatusCode, b)
	}

	br := e.Browser()
	if status, _ := br.SignIn(e.acmeKey); status != http.StatusSeeOther {
		t.Fatalf("sign in: %d", status)
	}
	_, page := br.Do("GET", "/ui/account/requests", nil)
	// The rows' cells: time, model, tokens in, cache read / written,
	// tokens out, cost, status, latency.
	var rows [][]string
	for _, tr := range regexp.MustCompile(`(?s)<tr><td>.*?</tr>`).FindAllString(page, -1) {
		var cells []string
		for _, td := range regexp.MustCompile(`<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(tr, -1) {
			cells = append(cells, td[1])
		}
		rows = append(rows, cells)
	}
	if len(rows) < 2 || len(rows[0]) != 8 {
		t.Fatalf("requests table rows %q in %s", rows, page)
	}
	u := m.Usage
	want := []string{ui.Count(u.InputTokens), ui.Count(u.CacheReads) + " / " + ui.Count(u.CacheWrites), ui.Count(u.OutputTokens)}
	if got := rows[0][2:5]; !slices.Equal(got, want) {
		t.Errorf("the newest row's tokens in, cache read / written, out: %q, want %q", got, want)
	}
	if got := rows[1][3]; got != "—" {
		t.Errorf("a chat request without cache use shows %q as its cache, want a dash", got)
	}
}
