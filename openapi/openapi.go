// Package openapi reads an OpenAPI 3.1 document and checks HTTP messages
// against it, so that tests can hold a server to its published contract:
// Load compiles every schema of every operation (with
// github.com/santhosh-tekuri/jsonschema, JSON Schema 2020-12), Match finds
// the operation of a concrete method and path, and ValidateResponse and
// ValidateRequest check a body against the operation's schema for its
// status and content type, resolving $refs to the document's components.
//
// A document must be self-contained: $refs are local ("#/components/…").
// Formats are asserted (date-time, date, int32, int64, …), since a
// contract whose "date-time" is only a comment checks nothing.
//
// One extension is understood: a media type object of text/event-stream
// may carry "x-farebox-sse-data", a schema that the JSON of each "data:"
// line of the stream must match ("data: [DONE]" aside). OpenAPI 3.1 has no
// way to describe the events of a stream, and a stream is where a gateway's
// additions (usage.cost, usage.balance, errors after the first byte) live.
package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// SSEDataKey is the media type extension naming the schema of each data
// event of a text/event-stream.
const SSEDataKey = "x-farebox-sse-data"

// base is the URL the document is known by inside the compiler; it is never
// fetched.
const base = "https://openapi.invalid/openapi.json"

// Doc is a loaded document. It is safe for concurrent use.
type Doc struct {
	ops []*Operation
}

// Operation is one method on one path template.
type Operation struct {
	Method  string // upper case: GET, POST, …
	Path    string // the template, e.g. /api/v1/customers/{id}
	ID      string // operationId, "" when it has none
	Summary string

	segs      []string // of Path; "{name}" segments are parameters
	request   *body    // nil: it takes no body
	responses map[string]*response
}

// String is the operation as "GET /api/v1/customers/{id}".
func (op *Operation) String() string { return op.Method + " " + op.Path }

// Statuses lists the response keys the operation documents ("200", "4XX",
// "default", …), sorted.
func (op *Operation) Statuses() []string {
	out := make([]string, 0, len(op.responses))
	for k := range op.responses {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type body struct {
	required bool
	media    map[string]*media
}

type response struct {
	media map[string]*media // empty: no body
}

type media struct {
	schema *jsonschema.Schema // nil: any body
	sse    *jsonschema.Schema // text/event-stream: each data event's
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Load reads and checks a document: OpenAPI 3.1, every path parameter
// declared, operationIds unique, every $ref resolved and every schema
// compiled. An error names what is wrong and where.
func Load(b []byte) (*Doc, error) {
	root, err := decodeJSON(b)
	if err != nil {
		return nil, fmt.Errorf("openapi: the document is not JSON: %w", err)
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("openapi: the document is not a JSON object")
	}
	if v, _ := top["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("openapi: version %q: want 3.1.x", v)
	}
	switch d, _ := top["jsonSchemaDialect"].(string); d {
	case "", "https://json-schema.org/draft/2020-12/schema", "https://spec.openapis.org/oas/3.1/dialect/base":
	default:
		return nil, fmt.Errorf("openapi: jsonSchemaDialect %q: want JSON Schema 2020-12", d)
	}
	c, err := newCompiler(root)
	if err != nil {
		return nil, err
	}
	l := &loader{root: top, c: c, compiled: map[string]*jsonschema.Schema{}}
	paths, ok := top["paths"].(map[string]any)
	if !ok {
		return nil, errors.New("openapi: the document has no paths object")
	}
	d := &Doc{}
	ids := map[string]string{}
	for _, path := range sortedKeys(paths) {
		itemPtr := "#/paths/" + escape(path)
		item, itemPtr, err := l.resolve(paths[path], itemPtr)
		if err != nil {
			return nil, err
		}
		segs, err := template(path)
		if err != nil {
			return nil, err
		}
		shared, err := l.pathParams(item["parameters"], itemPtr+"/parameters")
		if err != nil {
			return nil, err
		}
		for _, m := range methods {
			raw, ok := item[m]
			if !ok {
				continue
			}
			o, ok := raw.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("openapi: %s is not an object", itemPtr+"/"+m)
			}
			op := &Operation{Method: strings.ToUpper(m), Path: path, segs: segs, responses: map[string]*response{}}
			op.ID, _ = o["operationId"].(string)
			op.Summary, _ = o["summary"].(string)
			if op.ID != "" {
				if other, dup := ids[op.ID]; dup {
					return nil, fmt.Errorf("openapi: operationId %q of %s is also %s's", op.ID, op, other)
				}
				ids[op.ID] = op.String()
			}
			if err := l.operation(op, o, itemPtr+"/"+m, shared); err != nil {
				return nil, err
			}
			d.ops = append(d.ops, op)
		}
	}
	return d, nil
}

// newCompiler is a compiler of the schemas in the document root, known by
// base: JSON Schema 2020-12, formats asserted.
func newCompiler(root any) (*jsonschema.Compiler, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "int32", Validate: intFormat(32)})
	c.RegisterFormat(&jsonschema.Format{Name: "int64", Validate: intFormat(64)})
	if err := c.AddResource(base, root); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return c, nil
}

// loader compiles the parts of one document.
type loader struct {
	root     map[string]any
	c        *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema // by pointer
}

// operation reads op's parameters, request body and responses from o, at
// ptr in the document.
func (l *loader) operation(op *Operation, o map[string]any, ptr string, shared map[string]bool) error {
	own, err := l.pathParams(o["parameters"], ptr+"/parameters")
	if err != nil {
		return err
	}
	declared := map[string]bool{}
	for n := range shared {
		declared[n] = true
	}
	for n := range own {
		declared[n] = true
	}
	inPath := map[string]bool{}
	for _, s := range op.segs {
		if name, ok := param(s); ok {
			inPath[name] = true
			if !declared[name] {
				return fmt.Errorf("openapi: %s: path parameter %q is not declared", op, name)
			}
		}
	}
	for n := range declared {
		if !inPath[n] {
			return fmt.Errorf("openapi: %s: parameter %q is declared in path but not in the template", op, n)
		}
	}
	if raw, ok := o["requestBody"]; ok {
		rb, rbPtr, err := l.resolve(raw, ptr+"/requestBody")
		if err != nil {
			return err
		}
		op.request = &body{}
		op.request.required, _ = rb["required"].(bool)
		if op.request.media, err = l.content(rb["content"], rbPtr+"/content"); err != nil {
			return fmt.Errorf("openapi: %s request body: %w", op, err)
		}
		if len(op.request.media) == 0 {
			return fmt.Errorf("openapi: %s: a request body without content", op)
		}
	}
	rs, ok := o["responses"].(map[string]any)
	if !ok || len(rs) == 0 {
		return fmt.Errorf("openapi: %s has no responses", op)
	}
	for _, status := range sortedKeys(rs) {
		if !validStatusKey(status) {
			return fmt.Errorf("openapi: %s: response key %q is not a status, a range such as 4XX, or default", op, status)
		}
		r, rPtr, err := l.resolve(rs[status], ptr+"/responses/"+escape(status))
		if err != nil {
			return err
		}
		resp := &response{}
		if resp.media, err = l.content(r["content"], rPtr+"/content"); err != nil {
			return fmt.Errorf("openapi: %s response %s: %w", op, status, err)
		}
		op.responses[status] = resp
	}
	return nil
}

// pathParams resolves a parameter list and returns the names of its path
// parameters.
func (l *loader) pathParams(raw any, ptr string) (map[string]bool, error) {
	names := map[string]bool{}
	if raw == nil {
		return names, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("openapi: %s is not an array", ptr)
	}
	for i, p := range list {
		pp, pPtr, err := l.resolve(p, ptr+"/"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		if s, ok := pp["schema"]; ok && s != nil {
			if _, err := l.compile(pPtr + "/schema"); err != nil {
				return nil, err
			}
		}
		if pp["in"] == "path" {
			name, _ := pp["name"].(string)
			if req, _ := pp["required"].(bool); !req {
				return nil, fmt.Errorf("openapi: %s: path parameter %q must be required", pPtr, name)
			}
			names[name] = true
		}
	}
	return names, nil
}

// content compiles the schemas of a content map at ptr.
func (l *loader) content(raw any, ptr string) (map[string]*media, error) {
	out := map[string]*media{}
	if raw == nil {
		return out, nil
	}
	c, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", ptr)
	}
	for _, mt := range sortedKeys(c) {
		m, ok := c[mt].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is not an object", ptr+"/"+escape(mt))
		}
		key, err := mediaKey(mt)
		if err != nil {
			return nil, fmt.Errorf("media type %q: %w", mt, err)
		}
		md := &media{}
		mPtr := ptr + "/" + escape(mt)
		if _, ok := m["schema"]; ok {
			if md.schema, err = l.compile(mPtr + "/schema"); err != nil {
				return nil, err
			}
		}
		if _, ok := m[SSEDataKey]; ok {
			if key != "text/event-stream" {
				return nil, fmt.Errorf("%s belongs to text/event-stream, not %s", SSEDataKey, mt)
			}
			if md.sse, err = l.compile(mPtr + "/" + SSEDataKey); err != nil {
				return nil, err
			}
		}
		out[key] = md
	}
	return out, nil
}

// compile compiles the schema at ptr, once.
func (l *loader) compile(ptr string) (*jsonschema.Schema, error) {
	if s, ok := l.compiled[ptr]; ok {
		return s, nil
	}
	s, err := l.c.Compile(base + ptr)
	if err != nil {
		return nil, fmt.Errorf("openapi: the schema at %s does not compile: %w", unescapeURL(ptr), err)
	}
	l.compiled[ptr] = s
	return s, nil
}

// resolve follows the $ref of a response, request body, parameter or path
// item (local refs only) and returns the object with its own pointer, so
// that the schemas inside it compile where they are written.
func (l *loader) resolve(v any, ptr string) (map[string]any, string, error) {
	for range 16 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "", fmt.Errorf("openapi: %s is not an object", unescapeURL(ptr))
		}
		r, ok := m["$ref"].(string)
		if !ok {
			return m, ptr, nil
		}
		if !strings.HasPrefix(r, "#/") {
			return nil, "", fmt.Errorf("openapi: %s: $ref %q is not local to the document", unescapeURL(ptr), r)
		}
		target, err := lookup(l.root, r[1:])
		if err != nil {
			return nil, "", fmt.Errorf("openapi: %s: $ref %q: %w", unescapeURL(ptr), r, err)
		}
		v, ptr = target, r
	}
	return nil, "", fmt.Errorf("openapi: %s: $refs loop", unescapeURL(ptr))
}

// lookup finds the value at a JSON pointer (RFC 6901) in doc.
func lookup(doc any, ptr string) (any, error) {
	if ptr == "" {
		return doc, nil
	}
	if ptr[0] != '/' {
		return nil, fmt.Errorf("%q is not a JSON pointer", ptr)
	}
	v := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok, err := url.PathUnescape(tok)
		if err != nil {
			return nil, err
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[tok]; !ok {
				return nil, fmt.Errorf("nothing at %q", tok)
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("no item %q", tok)
			}
			v = x[i]
		default:
			return nil, fmt.Errorf("nothing at %q", tok)
		}
	}
	return v, nil
}

// Operations lists the document's operations, by path, then in OpenAPI's
// order of methods (get, put, post, delete, …).
func (d *Doc) Operations() []*Operation {
	return slices.Clone(d.ops)
}

// Match finds the operation of method on a concrete path (a query or
// fragment is ignored) and the values of its path parameters, unescaped.
// A literal segment takes precedence over a parameter, as OpenAPI says.
func (d *Doc) Match(method, path string) (*Operation, map[string]string, bool) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if u, err := url.PathUnescape(s); err == nil {
			segs[i] = u
		}
	}
	method = strings.ToUpper(method)
	var best *Operation
	for _, op := range d.ops {
		if op.Method != method || len(op.segs) != len(segs) || !op.matches(segs) {
			continue
		}
		if best == nil || op.moreLiteral(best) {
			best = op
		}
	}
	if best == nil {
		return nil, nil, false
	}
	params := map[string]string{}
	for i, s := range best.segs {
		if name, ok := param(s); ok {
			params[name] = segs[i]
		}
	}
	return best, params, true
}

func (op *Operation) matches(segs []string) bool {
	for i, s := range op.segs {
		if _, ok := param(s); ok {
			if segs[i] == "" {
				return false
			}
		} else if s != segs[i] {
			return false
		}
	}
	return true
}

// moreLiteral reports whether op has a literal segment where other, of the
// same length, first has a parameter.
func (op *Operation) moreLiteral(other *Operation) bool {
	for i := range op.segs {
		_, a := param(op.segs[i])
		_, b := param(other.segs[i])
		if a != b {
			return b
		}
	}
	return false
}

// ValidateResponse checks a response of status and content type to method
// on path against the operation's document: the status must be documented
// (exactly, as a range such as 4XX, or by default), the content type must
// be one of its media types, and the body must match that media type's
// schema. Any mismatch is a *ValidationError.
func (d *Doc) ValidateResponse(method, path string, status int, contentType string, body []byte) error {
	op, _, ok := d.Match(method, path)
	if !ok {
		return fmt.Errorf("openapi: no operation matches %s %s", strings.ToUpper(method), path)
	}
	verr := &ValidationError{Operation: op.String(), Status: status, ContentType: contentType}
	r := op.responses[strconv.Itoa(status)]
	if r == nil {
		r = op.responses[strconv.Itoa(status/100)+"XX"]
	}
	if r == nil {
		r = op.responses["default"]
	}
	if r == nil {
		return verr.with(Problem{Message: fmt.Sprintf("status %d is not documented (documented: %s)", status, strings.Join(op.Statuses(), ", "))})
	}
	return verr.check(r.media, contentType, body)
}

// ValidateRequest checks a request body of content type to method on path
// against the operation's request body: present when it is required (an
// empty body is no body), of one of its media types, matching its schema.
// Any mismatch is a *ValidationError.
func (d *Doc) ValidateRequest(method, path, contentType string, body []byte) error {
	op, _, ok := d.Match(method, path)
	if !ok {
		return fmt.Errorf("openapi: no operation matches %s %s", strings.ToUpper(method), path)
	}
	verr := &ValidationError{Operation: op.String(), ContentType: contentType}
	empty := len(bytes.TrimSpace(body)) == 0
	switch {
	case op.request == nil && empty:
		return nil
	case op.request == nil:
		return verr.with(Problem{Message: "the operation takes no request body"})
	case empty && !op.request.required:
		return nil
	}
	return verr.check(op.request.media, contentType, body)
}

// check validates body against the media type of contentType in content.
func (e *ValidationError) check(content map[string]*media, contentType string, body []byte) error {
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return e.with(Problem{Message: "the response has no body, but one came"})
		}
		return nil
	}
	key, err := mediaKey(contentType)
	if err != nil {
		return e.with(Problem{Message: fmt.Sprintf("Content-Type %q: %v", contentType, err)})
	}
	m := content[key]
	if m == nil {
		m = content[key[:strings.IndexByte(key, '/')]+"/*"]
	}
	if m == nil {
		m = content["*/*"]
	}
	if m == nil {
		return e.with(Problem{Message: fmt.Sprintf("Content-Type %s is not documented (documented: %s)", key, strings.Join(sortedKeys(content), ", "))})
	}
	switch {
	case isJSON(key):
		v, err := decodeJSON(body)
		if err != nil {
			return e.with(Problem{Message: "the body is not one JSON value: " + err.Error()})
		}
		if m.schema != nil {
			e.add(m.schema.Validate(v))
		}
	case key == "text/event-stream" && m.sse != nil:
		if m.schema != nil {
			e.add(m.schema.Validate(string(body)))
		}
		if len(e.Problems) == 0 {
			e.checkEvents(m.sse, body)
		}
	case m.schema != nil:
		e.add(m.schema.Validate(string(body)))
	}
	if len(e.Problems) > 0 {
		return e
	}
	return nil
}

// checkEvents validates the JSON of each data event of a stream.
func (e *ValidationError) checkEvents(s *jsonschema.Schema, body []byte) {
	for i, data := range sseData(body) {
		if data == "[DONE]" {
			continue
		}
		v, err := decodeJSON([]byte(data))
		if err != nil {
			e.Event = i + 1
			e.with(Problem{Message: "the event's data is not JSON: " + err.Error()})
			return
		}
		if e.add(s.Validate(v)); len(e.Problems) > 0 {
			e.Event = i + 1
			return
		}
	}
}

// sseData returns the data of each event of a text/event-stream: the
// values of its "data" fields joined by newlines, as a browser's
// EventSource does. Comments and events without data are skipped.
func sseData(body []byte) []string {
	var out []string
	var data []string
	flush := func() {
		if data != nil {
			out = append(out, strings.Join(data, "\n"))
			data = nil
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n") {
		if line == "" {
			flush()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		if field == "data" {
			data = append(data, strings.TrimPrefix(value, " "))
		}
	}
	flush()
	return out
}

// ValidationError is a message that does not match its operation's
// document.
type ValidationError struct {
	Operation   string // e.g. "GET /api/v1/customers/{id}"
	Status      int    // of a response; 0 for a request
	ContentType string
	// Event is, for a stream, the 1-based number of the data event that
	// failed; 0 otherwise.
	Event    int
	Problems []Problem
}

// Problem is one way a body fails its schema.
type Problem struct {
	// Pointer is the JSON pointer (RFC 6901) of the offending value in the
	// body (of the event, for a stream); "" is the whole body.
	Pointer string
	// Schema is the failing keyword, as a pointer into the document, e.g.
	// #/components/schemas/Plan/required.
	Schema  string
	Message string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("openapi: ")
	b.WriteString(e.Operation)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": response %d", e.Status)
	} else {
		b.WriteString(": request")
	}
	if e.ContentType != "" {
		b.WriteString(" " + e.ContentType)
	}
	if e.Event > 0 {
		fmt.Fprintf(&b, ", event %d", e.Event)
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if p.Pointer != "" || p.Schema != "" {
			fmt.Fprintf(&b, "at %q: ", p.Pointer)
		}
		b.WriteString(p.Message)
		if p.Schema != "" {
			fmt.Fprintf(&b, " (%s)", p.Schema)
		}
	}
	return b.String()
}

func (e *ValidationError) with(p Problem) *ValidationError {
	e.Problems = append(e.Problems, p)
	return e
}

var printer = message.NewPrinter(language.English)

// add records the leaves of a validation error: the keywords that failed,
// each at its place in the body.
func (e *ValidationError) add(err error) {
	if err == nil {
		return
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		e.with(Problem{Message: err.Error()})
		return
	}
	var walk func(*jsonschema.ValidationError)
	walk = func(v *jsonschema.ValidationError) {
		if len(v.Causes) > 0 {
			for _, c := range v.Causes {
				walk(c)
			}
			return
		}
		p := Problem{Pointer: pointer(v.InstanceLocation), Message: v.ErrorKind.LocalizedString(printer)}
		_, frag, _ := strings.Cut(v.SchemaURL, "#")
		p.Schema = "#" + unescapeURL(frag)
		if kw := v.ErrorKind.KeywordPath(); len(kw) > 0 {
			p.Schema += pointer(kw)
		}
		if !slices.Contains(e.Problems, p) {
			e.Problems = append(e.Problems, p)
		}
	}
	walk(ve)
}

// pointer is the JSON pointer of tokens.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// escape is the JSON pointer token of s.
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func unescapeURL(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// decodeJSON decodes exactly one JSON value, numbers kept exact (as
// json.Number), so that an amount's decimals are checked as written.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the value")
	}
	return v, nil
}

// mediaKey is a media type (or a range such as text/*) without its
// parameters, in lower case.
func mediaKey(ct string) (string, error) {
	if ct == "" {
		return "", errors.New("no media type")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", err
	}
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" || sub == "" || strings.Contains(sub, "/") || typ == "*" && sub != "*" {
		return "", fmt.Errorf("%q is not a media type such as application/json", mt)
	}
	return mt, nil
}

func isJSON(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// template splits a path template into segments, refusing a parameter
// that is not a whole segment (which Match does not support).
func template(path string) ([]string, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("openapi: path %q does not start with /", path)
	}
	segs := strings.Split(path, "/")
	for _, s := range segs {
		if _, ok := param(s); !ok && strings.ContainsAny(s, "{}") {
			return nil, fmt.Errorf("openapi: path %q: a parameter must be a whole segment", path)
		}
	}
	return segs, nil
}

// param returns the name of a "{name}" segment.
func param(seg string) (string, bool) {
	if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

func validStatusKey(k string) bool {
	if k == "default" {
		return true
	}
	if len(k) != 3 || k[0] < '1' || k[0] > '5' {
		return false
	}
	if k[1:] == "XX" {
		return true
	}
	n, err := strconv.Atoi(k)
	return err == nil && n >= 100 && n <= 599
}

// intFormat asserts that an integer fits in bits (OpenAPI's int32 and
// int64 formats).
func intFormat(bits uint) func(any) error {
	lo := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), bits-1))
	hi := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), bits-1), big.NewInt(1))
	return func(v any) error {
		var s string
		switch x := v.(type) {
		case json.Number:
			s = x.String()
		case int, int32, int64, float64:
			s = fmt.Sprint(x)
		default:
			return nil // formats apply to their own type only
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok || !r.IsInt() {
			return nil // not an integer: the type keyword says so
		}
		if n := r.Num(); n.Cmp(lo) < 0 || n.Cmp(hi) > 0 {
			return fmt.Errorf("%s is out of the int%d range", s, bits)
		}
		return nil
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
