// Package metrics owns Farebox's Prometheus metrics: their names, help,
// labels and buckets, the registry they live in and the handler that
// serves it. Every Farebox metric is named farebox_… with its unit in the
// name (_seconds, _total, _credits).
//
// The dependency runs one way: ledger, gateway, routing, api and store may
// import metrics, never the reverse, so that metrics stays a leaf any
// package can call. What metrics needs to know of them it is handed: the
// Observe methods on the hot path (each a few counter and histogram
// updates), and plain functions (LedgerStats, DeploymentStatus,
// GatewayStats, ComputeStats) that a custom collector calls at each scrape, so figures
// that a package already keeps cost nothing until Prometheus asks.
//
// Wiring, in the composition root (a sketch; eng is the ledger engine):
//
//	m := metrics.New(metrics.Options{Log: log})
//	m.Gauges(metrics.Sources{Ledger: func() metrics.LedgerStats {
//		s := eng.Stats()
//		return metrics.LedgerStats{Batches: s.Batches, Ops: s.Ops, Failed: s.Failed,
//			LostHolds: s.Lost, QueuedOps: int64(eng.Queued())}
//	}})
//	mux.Handle("GET /metrics", m.Handler())
//	mux.Handle(pattern, m.Middleware(pattern, h)) // the pattern, never r.URL.Path
//
// A nil *Metrics is a valid no-op for every Observe method, Middleware and
// Gauges, so callers (and their tests) need no "if m != nil".
//
// Adding a metric: define it here, next to its kin, as a field of Metrics
// created and registered in New, and give it an Observe method that is
// nil-safe and takes plain values (strings, ints, durations), so the caller
// need not import Prometheus and metrics need not import the caller. A
// figure the caller already counts is better read at scrape: add a field to
// one of the Stats structs (or a new Sources function) and export it in
// collector.Collect. Register is for collectors built elsewhere (a library's
// own collector); Registry is for tests and for wiring such a library.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures New. The zero value is usable.
type Options struct {
	// Sources are read at each scrape; any of them may be nil, and
	// Gauges may set them later (the engine and the gateway are often
	// built after, and with, the Metrics they report to).
	Sources
	// Log receives the errors of a scrape; discarded when nil.
	Log *slog.Logger
}

// Metrics holds Farebox's metrics and their registry.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	batchOps      prometheus.Histogram
	commitSeconds prometheus.Histogram
	batchesOK     prometheus.Counter
	batchesFailed prometheus.Counter
	// Credits are summed as integer micro-credits and turned into a float
	// of credits only at scrape, so the sum never drifts by float rounding.
	granted, consumed, expired atomic.Int64

	gwRequests     *prometheus.CounterVec
	gwTTFT         *prometheus.HistogramVec
	gwDuration     *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec

	webhookEvents     *prometheus.CounterVec
	webhookDeliveries *prometheus.CounterVec
	topups            *prometheus.CounterVec

	suggestions    *prometheus.CounterVec
	clicks         *prometheus.CounterVec
	decisionTiming prometheus.Histogram

	sourcesMu sync.Mutex
	sources   Sources
}

// Buckets. HTTP requests and time to first token run from a cached answer
// (a millisecond) to a long completion (a minute); a whole gateway request
// may stream for the full request timeout (10 minutes by default), so its
// buckets go on to that.
var (
	httpBuckets    = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	gatewayBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	commitBuckets  = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// A sponsored decision is in-process work of microseconds.
	decisionBuckets = []float64{.000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025}
	batchOpsBuckets = prometheus.ExponentialBuckets(1, 2, 13) // 1 … 4096, the engine's default MaxBatch
)

// New returns Metrics in a registry of its own (never the global default,
// so tests and several servers in one process do not collide), with the Go
// runtime and process collectors beside Farebox's.
func New(opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), log: opts.Log, sources: opts.Sources}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}

	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_http_requests_total",
		Help: "HTTP requests served, by route pattern, method and status code.",
	}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "farebox_http_request_duration_seconds",
		Help:    "Time from a request's arrival to its handler's return (a stream's whole length), by route pattern, method and status code.",
		Buckets: httpBuckets,
	}, []string{"route", "method", "status"})

	m.batchOps = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "farebox_ledger_batch_ops",
		Help:    "Ops in each batch the ledger engine committed or tried to.",
		Buckets: batchOpsBuckets,
	})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "farebox_ledger_commit_duration_seconds",
		Help:    "Time the store took to commit one ledger batch, failed commits included.",
		Buckets: commitBuckets,
	})
	batches := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_ledger_batches_total",
		Help: "Ledger batches by the result of their commit (ok or failed).",
	}, []string{"result"})
	// Both children exist from the start, so a failure rate is 0, not absent.
	m.batchesOK = batches.WithLabelValues("ok")
	m.batchesFailed = batches.WithLabelValues("failed")
	credits := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return microToCredits(v.Load()) })
	}

	m.gwRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_gateway_requests_total",
		Help: "Gateway requests settled, by model, deployment and how they ended (the usage row's status).",
	}, []string{"model", "deployment", "status"})
	m.gwTTFT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "farebox_gateway_ttft_seconds",
		Help:    "Time from a gateway request's arrival to the first token it relayed, by model and deployment.",
		Buckets: httpBuckets,
	}, []string{"model", "deployment"})
	m.gwDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "farebox_gateway_request_duration_seconds",
		Help:    "Time from a gateway request's arrival to its settlement, by model and deployment.",
		Buckets: gatewayBuckets,
	}, []string{"model", "deployment"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_upstream_errors_total",
		Help: "Failed upstream attempts, by deployment and kind of failure.",
	}, []string{"deployment", "kind"})

	m.webhookEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_webhook_events_total",
		Help: "Webhook events recorded for delivery, by type (an event derived again is not counted twice in one process, but may be after a restart).",
	}, []string{"type"})
	m.webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_webhook_attempts_total",
		Help: "Webhook delivery attempts, by result: delivered, failed (retried later) or given_up (after its retries).",
	}, []string{"result"})
	m.topups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_topups_total",
		Help: "Automatic top-ups by what happened: recorded (a crossing), requested (the provider took the payment), failed.",
	}, []string{"status"})

	m.suggestions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_sponsored_suggestions_total",
		Help: "Sponsored suggestions by outcome: placed (held for a response), charged (shown), dropped (not delivered), shown_uncharged, or why none was placed (not_decision, no_campaign, capped, budget_spent, no_credit, opted_out, unavailable).",
	}, []string{"outcome"})
	m.clicks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "farebox_sponsored_clicks_total",
		Help: "Follows of sponsored suggestions' links by outcome: charged, repeated (charged before), refused (budget or credit), failed, invalid.",
	}, []string{"outcome"})
	m.decisionTiming = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "farebox_sponsored_decision_duration_seconds",
		Help:    "Time to classify a request's last user message and match it to the campaigns.",
		Buckets: decisionBuckets,
	})

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration,
		m.batchOps, m.commitSeconds, batches,
		credits("farebox_credits_granted_total", "Credits granted (a display figure: the ledger counts micro-credits exactly).", &m.granted),
		credits("farebox_credits_consumed_total", "Credits consumed (a display figure: the ledger counts micro-credits exactly).", &m.consumed),
		credits("farebox_credits_expired_total", "Credits expired, i.e. breakage (a display figure: the ledger counts micro-credits exactly).", &m.expired),
		m.gwRequests, m.gwTTFT, m.gwDuration, m.upstreamErrors,
		m.webhookEvents, m.webhookDeliveries, m.topups,
		m.suggestions, m.clicks, m.decisionTiming,
		&collector{m: m},
	)
	return m
}

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format. A metric that fails to collect is logged and left out, so one
// bad source does not blank the whole scrape. On a nil *Metrics it
// answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrintln{m.log},
		ErrorHandling: promhttp.ContinueOnError,
		// Counts those errors as promhttp_metric_handler_errors_total.
		Registry: m.reg,
	})
}

// Registry is the registry every metric lives in, for tests and for
// registering a collector built elsewhere. Nil on a nil *Metrics.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Register adds collectors built outside this package; a name already
// taken is an error. A no-op on a nil *Metrics.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	if m == nil {
		return nil
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// microToCredits turns micro-credits into credits for display. The only
// float on a money figure in Farebox, and it never flows back.
func microToCredits(micro int64) float64 { return float64(micro) / 1e6 }

// slogPrintln adapts slog to promhttp's Logger.
type slogPrintln struct{ log *slog.Logger }

func (l slogPrintln) Println(v ...any) {
	l.log.Error("metrics scrape", "err", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
