package ui

import (
	"fmt"
	"html"
	"html/template"
	"slices"
	"strings"
)

// Charts are drawn here, on the server, as SVG: exact (every hover title
// and axis label is the figure itself, formatted like the tables), light,
// and readable without JavaScript. Values are integers in micro-units;
// floating point is used for pixel positions only, never for a figure.

// Series is one named row of values, one per label.
type Series struct {
	Name   string
	Values []int64
	// Bars draws the series as bars behind the lines (Lines only), red
	// where negative.
	Bars bool
	// Color, when set, is the series' colour instead of the palette's.
	Color string
}

func (s Series) color(i int) string {
	if s.Color != "" {
		return s.Color
	}
	return palette[i%len(palette)]
}

// Chart is what StackedBars and Lines draw: Labels along the x axis
// (Titles, when set, name each label in full for hover titles), Series
// over them, each value formatted by Format (credits, dollars).
type Chart struct {
	Title  string // the SVG's accessible name
	Labels []string
	Titles []string
	Series []Series
	Format func(int64) string
}

// size is one drawing of a chart: wide for a desktop, narrow for a phone
// (the stylesheet shows one of the two), so text stays legible at both.
type size struct {
	w, h    float64
	padL    float64 // room for the y labels
	class   string
	xLabels int // about how many x labels fit
}

var sizes = []size{{720, 260, 76, "wide", 10}, {360, 250, 62, "narrow", 6}}

const padR, padT, padB, legendH = 12, 12, 26, 22

// palette: distinguishable, and dark enough for white text beside them.
var palette = []string{"#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"}

// niceCeil rounds v up to 1, 2 or 5 × a power of ten (v > 0).
func niceCeil(v int64) int64 {
	if v <= 0 {
		return 1
	}
	p := int64(1)
	for p <= v/10 {
		p *= 10
	}
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// axis picks the y range [lo, hi] covering min..max with 4 steps.
func axis(min, max int64) (lo, hi, step int64) {
	if max < 0 {
		max = 0
	}
	if min > 0 {
		min = 0
	}
	span := max - min
	if span == 0 {
		span = 1
	}
	step = niceCeil((span + 3) / 4)
	lo = -((-min + step - 1) / step) * step
	hi = lo + 4*step
	for hi < max {
		hi += step
	}
	return lo, hi, step
}

type plot struct {
	sz     size
	b      strings.Builder
	lo, hi int64
	x0, y0 float64
	w, h   float64
	n      int
	format func(int64) string
	labels []string
	titles []string
}

func newPlot(c Chart, sz size, lo, hi, step int64) *plot {
	p := &plot{sz: sz, lo: lo, hi: hi, x0: sz.padL, y0: padT, w: sz.w - sz.padL - padR, h: sz.h - padT - padB - legendH, n: len(c.Labels), format: c.Format, labels: c.Labels, titles: c.Titles}
	if p.titles == nil {
		p.titles = c.Labels
	}
	fmt.Fprintf(&p.b, `<svg class="chart %s" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`, sz.class, sz.w, sz.h, html.EscapeString(c.Title))
	fmt.Fprintf(&p.b, `<title>%s</title>`, html.EscapeString(c.Title))
	// Grid and y labels.
	for v := lo; v <= hi; v += step {
		y := p.y(v)
		cls := "grid"
		if v == 0 {
			cls = "axis"
		}
		fmt.Fprintf(&p.b, `<line class="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, cls, p.x0, y, p.x0+p.w, y)
		fmt.Fprintf(&p.b, `<text class="ylab" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, p.x0-6, y+4, html.EscapeString(c.Format(v)))
	}
	// X labels: as many as fit.
	every := max(1, (p.n+sz.xLabels-1)/sz.xLabels)
	for i, l := range c.Labels {
		if (p.n-1-i)%every != 0 { // counted from the last, which is always labelled
			continue
		}
		fmt.Fprintf(&p.b, `<text class="xlab" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, p.cx(i), p.y0+p.h+16, html.EscapeString(l))
	}
	return p
}

func (p *plot) y(v int64) float64 {
	return p.y0 + p.h - float64(v-p.lo)/float64(p.hi-p.lo)*p.h
}

func (p *plot) slot() float64 { return p.w / float64(max(p.n, 1)) }

func (p *plot) cx(i int) float64 { return p.x0 + p.slot()*(float64(i)+0.5) }

func (p *plot) legend(series []Series, kind string) {
	x := p.x0
	y := p.sz.h - 8
	for i, s := range series {
		color := s.color(i)
		if s.Bars || kind == "bar" {
			fmt.Fprintf(&p.b, `<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s"/>`, x, y-9, color)
		} else {
			fmt.Fprintf(&p.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`, x, y-4, x+14, y-4, color)
		}
		fmt.Fprintf(&p.b, `<text class="legend" x="%.1f" y="%.1f">%s</text>`, x+18, y, html.EscapeString(s.Name))
		x += 26 + 7*float64(len([]rune(s.Name)))
	}
}

func (p *plot) done() string {
	p.b.WriteString(`</svg>`)
	return p.b.String()
}

// both draws a chart at every size.
func both(c Chart, draw func(Chart, size) string) template.HTML {
	var b strings.Builder
	for _, sz := range sizes {
		b.WriteString(draw(c, sz))
	}
	return template.HTML(b.String()) // every text in it was escaped
}

// StackedBars draws one bar per label, its series stacked (values ≥ 0).
func StackedBars(c Chart) template.HTML { return both(c, stackedBars) }

// Lines draws each series as a line with a point per label (values may
// be negative: a loss).
func Lines(c Chart) template.HTML { return both(c, lines) }

func stackedBars(c Chart, sz size) string {
	var top int64
	for i := range c.Labels {
		var sum int64
		for _, s := range c.Series {
			sum += s.Values[i]
		}
		top = max(top, sum)
	}
	lo, hi, step := axis(0, top)
	p := newPlot(c, sz, lo, hi, step)
	bw := p.slot() * 0.7
	for i := range c.Labels {
		var base, total int64
		for _, s := range c.Series {
			total += s.Values[i]
		}
		for si, s := range c.Series {
			v := s.Values[i]
			if v <= 0 {
				continue
			}
			y1, y2 := p.y(base+v), p.y(base)
			fmt.Fprintf(&p.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s · %s: %s (total %s)</title></rect>`,
				p.cx(i)-bw/2, y1, bw, max(y2-y1, 0.5), s.color(si),
				html.EscapeString(p.titles[i]), html.EscapeString(s.Name), html.EscapeString(c.Format(v)), html.EscapeString(c.Format(total)))
			base += v
		}
	}
	bars := slices.Clone(c.Series)
	for i := range bars {
		bars[i].Bars = true
	}
	p.legend(bars, "bar")
	return p.done()
}

func lines(c Chart, sz size) string {
	var lo, hi int64
	for _, s := range c.Series {
		for _, v := range s.Values {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	lo, hi, step := axis(lo, hi)
	p := newPlot(c, sz, lo, hi, step)
	bw := p.slot() * 0.6
	for si, s := range c.Series {
		if !s.Bars {
			continue
		}
		for i, v := range s.Values {
			if v == 0 {
				continue
			}
			color := s.color(si)
			if v < 0 {
				color = "#dc2626"
			}
			y1, y2 := p.y(max(v, 0)), p.y(min(v, 0))
			fmt.Fprintf(&p.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" opacity="0.45"><title>%s · %s: %s</title></rect>`,
				p.cx(i)-bw/2, y1, bw, max(y2-y1, 0.5), color, html.EscapeString(p.titles[i]), html.EscapeString(s.Name), html.EscapeString(c.Format(v)))
		}
	}
	for si, s := range c.Series {
		if s.Bars {
			continue
		}
		color := s.color(si)
		var pts []string
		for i, v := range s.Values {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.cx(i), p.y(v)))
		}
		fmt.Fprintf(&p.b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color, strings.Join(pts, " "))
		for i, v := range s.Values {
			fmt.Fprintf(&p.b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s · %s: %s</title></circle>`,
				p.cx(i), p.y(v), color, html.EscapeString(p.titles[i]), html.EscapeString(s.Name), html.EscapeString(c.Format(v)))
		}
	}
	p.legend(c.Series, "line")
	return p.done()
}
