package ui

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	fb "farebox"
)

// The navigation is a registry: every page of the dashboard, the built-in
// ones included, is a Page registered with (*UI).Register before Handler
// is called. A feature adds its pages from the composition root (package
// app), e.g. the leasing pools:
//
//	dash.Register(ui.Page{Side: ui.Operator, Path: "pools", Title: "Pools", Order: 40,
//		Handle: func(r *ui.Request) (*ui.View, error) {
//			pools, err := compute.Pools(r.Context())
//			…
//			return &ui.View{Title: "Pools", Sections: []ui.Section{ui.Table{…}}}, nil
//		}})
//
// A page needs no template of its own: its View's Sections (Cards, Table,
// Form, Note, Links, Chart, Secret) are drawn by the ui package, styled
// like the rest, and every Form, and every button in a table, carries the
// session's CSRF token. A POST page may send the browser to another
// origin (a payment provider's page) with an absolute Redirect: it gets a
// page that goes on there by itself, since the dashboard's form-action
// 'self' stops a form's redirect to another origin. The ui package checks
// the session and its side, and the CSRF token of every POST, before a
// page's Handle runs.

// Side is the half of the dashboard a page belongs to.
type Side string

const (
	// Customer pages live under /ui/account, for a customer signed in with
	// one of its keys; they only ever show that customer's data.
	Customer Side = "account"
	// Operator pages live under /ui/admin, for the admin token.
	Operator Side = "admin"
)

// Page is one route of the dashboard, and with a Title an entry of its
// side's navigation.
type Page struct {
	Side Side
	// Path is under the side's root: "" is /ui/admin itself, "pools" is
	// /ui/admin/pools; it may hold wildcards ("customers/{id}"), read
	// with r.PathValue.
	Path string
	// Method is GET (the default) or POST.
	Method string
	// Title names the page in the navigation; "" keeps it out (a form's
	// POST, a page reached by a link).
	Title string
	// Order places it in the navigation: lower first, then by title. The
	// built-in pages use 10, 20, 30…
	Order  int
	Handle func(*Request) (*View, error)
	// Visible, when set, says whether the page exists for a session (an
	// advertiser's pages for advertisers' accounts only): a page hidden
	// from it is left out of its navigation and answers it 404. A page
	// without it is every session's of its side.
	Visible func(ctx context.Context, s fb.Session) bool
}

// visibleTo reports whether the page is there for session s.
func (p Page) visibleTo(ctx context.Context, s fb.Session) bool {
	return p.Visible == nil || p.Visible(ctx, s)
}

func (p Page) method() string {
	if p.Method == "" {
		return http.MethodGet
	}
	return p.Method
}

// URL is the page's path, /ui/<side>[/<path>].
func (p Page) URL() string {
	if p.Path == "" {
		return "/ui/" + string(p.Side)
	}
	return "/ui/" + string(p.Side) + "/" + p.Path
}

// Request is what a page's Handle gets: the HTTP request, the session it
// came with (its customer, on a customer page), and the clock's now.
type Request struct {
	*http.Request
	W       http.ResponseWriter
	Session fb.Session
	Now     time.Time
	csrf    string
}

// View is what a page answers: a built-in template with its data, or
// Sections; or, after a POST, a Redirect (303) with a Flash message shown
// on the next page.
type View struct {
	Title    string
	Template string
	Data     any
	Sections []Section
	Redirect string
	Flash    string
	Status   int
}

// Section is one block of a page drawn from data: Cards, Table, Form,
// Note, Links, Chart or Secret.
type Section interface{ section() }

// Card is one figure: a label, its value and a note under it. Figure,
// when set, names it in the page (data-figure), for tests and scripts.
type Card struct{ Label, Value, Note, Figure string }

// Cards is a row of figures.
type Cards []Card

// Cell is one table cell. Sort, when set, is the exact value sorting
// uses (micro-units), so a sort by a column of amounts is numeric; Href
// makes the cell a link; Action makes it a button labelled Text that
// posts to Action (a registered POST page) with the CSRF token, Danger
// colouring it as a destructive one.
type Cell struct {
	Text   string
	Sort   string
	Href   string
	Action string
	Danger bool
}

// Table is a titled table; a Num column is right-aligned. Its columns
// sort when their header is clicked (a little JavaScript; the server's
// order otherwise).
type Table struct {
	Title string
	// Name, when set, names the table in the page (data-table).
	Name    string
	Columns []Column
	Rows    [][]Cell
	Empty   string // shown when there are no rows
	// Stack draws each row, on a narrow screen (a phone), as its cells
	// one under another, each after its column's label, instead of a row
	// wider than the screen to scroll sideways: for a table of many
	// columns or of long texts. A wide screen shows the table as usual.
	Stack bool
}

// Column is a table header; a Wrap column's long values (ids, errors)
// break over lines rather than widen the table. Key, when set, names the
// column's cells in the page (data-col).
type Column struct {
	Label string
	Num   bool
	Wrap  bool
	Key   string
}

// Form is a POST form to Action (a registered POST page); the CSRF token
// is added by the ui package. A form without fields is its button alone.
// With Method "get" it is a filter of the page it is on instead (a date
// range): its fields go into the URL, and it carries no token.
type Form struct {
	Title  string
	Action string
	Method string
	Fields []Field
	Submit string
	Danger bool // the button undoes something (turns off, removes)
}

// Field is one input: Type text (the default), number, date, password,
// select (one of Options) or checkboxes (any of Options, those in Checked
// ticked; posted as one value each under Name).
type Field struct {
	Name, Label, Type, Value, Placeholder string
	Options                               []string
	Checked                               []string
	Required                              bool
}

// Note is a paragraph of text.
type Note string

// Links is a row of links: a page's filters or its next page. The
// Current one is marked (aria-current) and not a link.
type Links struct {
	Label string // the row's accessible name
	Items []Link
}

// Link is one of Links.
type Link struct {
	Text, Href string
	Current    bool
}

// Secret is a value shown this once (a signing secret, a key), set apart
// and easy to copy, with a Note saying so.
type Secret struct {
	Title, Note, Value string
}

// Chart is an SVG drawn by StackedBars or Lines.
type ChartSection struct {
	Title string
	SVG   template.HTML
}

func (Cards) section()        {}
func (Table) section()        {}
func (Form) section()         {}
func (Note) section()         {}
func (Links) section()        {}
func (ChartSection) section() {}
func (Secret) section()       {}

// navItem is an entry of the navigation as a template draws it.
type navItem struct {
	Title, URL string
	Active     bool
}

// Register adds a page. It fails on a page without a side or handler, or
// on a method and path taken, and after Handler was called.
func (u *UI) Register(p Page) error {
	if p.Side != Customer && p.Side != Operator {
		return fmt.Errorf("ui: page %q: side must be ui.Customer or ui.Operator", p.Path)
	}
	if p.Handle == nil {
		return fmt.Errorf("ui: page %q has no Handle", p.URL())
	}
	if m := p.method(); m != http.MethodGet && m != http.MethodPost {
		return fmt.Errorf("ui: page %q: method %s; want GET or POST", p.URL(), m)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.built {
		return fmt.Errorf("ui: page %q registered after the handler was built", p.URL())
	}
	for _, q := range u.pages {
		if q.method() == p.method() && q.URL() == p.URL() {
			return fmt.Errorf("ui: %s %s is registered twice", p.method(), p.URL())
		}
	}
	u.pages = append(u.pages, p)
	return nil
}

// Pages lists the registered pages of a side, in navigation order.
func (u *UI) Pages(side Side) []Page {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []Page
	for _, p := range u.pages {
		if p.Side == side {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b Page) int {
		if a.Order != b.Order {
			return a.Order - b.Order
		}
		if a.Title < b.Title {
			return -1
		}
		if a.Title > b.Title {
			return 1
		}
		return 0
	})
	return out
}

// nav is the navigation of a side, as session s sees it, with the page
// at url active.
func (u *UI) nav(ctx context.Context, s fb.Session, side Side, active string) []navItem {
	var out []navItem
	for _, p := range u.Pages(side) {
		if p.Title == "" || p.method() != http.MethodGet || !p.visibleTo(ctx, s) {
			continue
		}
		out = append(out, navItem{Title: p.Title, URL: p.URL(), Active: p.URL() == active})
	}
	return out
}

// sectionView is a Section as the "section" template draws it.
type sectionView struct {
	Kind   string
	Cards  Cards
	Table  *Table
	Form   *Form
	Note   Note
	Links  *Links
	Chart  *ChartSection
	Secret *Secret
	CSRF   string
}

func sectionOf(s Section, csrf string) sectionView {
	v := sectionView{CSRF: csrf}
	switch s := s.(type) {
	case Cards:
		v.Kind, v.Cards = "cards", s
	case Table:
		v.Kind, v.Table = "table", &s
	case Form:
		v.Kind, v.Form = "form", &s
	case Note:
		v.Kind, v.Note = "note", s
	case Links:
		v.Kind, v.Links = "links", &s
	case ChartSection:
		v.Kind, v.Chart = "chart", &s
	case Secret:
		v.Kind, v.Secret = "secret", &s
	}
	return v
}
