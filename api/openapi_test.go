package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"farebox/openapi"
)

// theDoc is the embedded document, loaded once.
var theDoc = sync.OnceValues(func() (*openapi.Doc, error) { return openapi.Load(OpenAPI) })

// checkDocumented validates a response the API answered against the
// document; every harness call does, so every test of this package checks
// the document too.
func checkDocumented(t *testing.T, method, path string, status int, hdr http.Header, body []byte) {
	t.Helper()
	doc, err := theDoc()
	if err != nil {
		t.Fatalf("the OpenAPI document: %v", err)
	}
	if method == http.MethodHead || status == http.StatusMethodNotAllowed {
		return // 405 and HEAD are the router's, described in prose
	}
	if op, _, ok := doc.Match(method, path); !ok || op == nil {
		return // no route: the 404 of no operation
	}
	if err := doc.ValidateResponse(method, path, status, hdr.Get("Content-Type"), body); err != nil {
		t.Errorf("the response does not match the document: %v\nbody: %s", err, body)
	}
}

// TestOpenAPIParity: the document's operations are exactly the router's
// routes, and the server serves the document.
func TestOpenAPIParity(t *testing.T) {
	doc, err := theDoc()
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, op := range doc.Operations() {
		ops = append(ops, op.String())
	}
	routes := Routes()
	slices.Sort(ops)
	slices.Sort(routes)
	if !slices.Equal(ops, routes) {
		for _, r := range routes {
			if !slices.Contains(ops, r) {
				t.Errorf("route %s is not in the document", r)
			}
		}
		for _, o := range ops {
			if !slices.Contains(routes, o) {
				t.Errorf("the document has %s, which is not a route", o)
			}
		}
	}
	h := newHarness(t)
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 || rec.Body.String() != string(OpenAPI) {
		t.Errorf("GET /openapi.json: %d, %d bytes; want the document", rec.Code, rec.Body.Len())
	}
}
