package metrics

import (
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads m as Prometheus does: through its handler, in the text
// format, so names, labels and values are checked as exposed.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d, want 200; body %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// sample finds the series of family name whose labels are exactly labels.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s absent; have %v", name, slices.Sorted(maps.Keys(fams)))
	}
	var seen []string
	for _, mt := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range mt.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if maps.Equal(got, labels) {
			return mt
		}
		seen = append(seen, mt.String())
	}
	t.Fatalf("%s%v absent; series: %v", name, labels, seen)
	return nil
}

// value is the value of a counter, gauge or untyped series.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	mt := sample(t, fams, name, labels)
	switch {
	case mt.Counter != nil:
		return mt.Counter.GetValue()
	case mt.Gauge != nil:
		return mt.Gauge.GetValue()
	case mt.Untyped != nil:
		return mt.Untyped.GetValue()
	}
	t.Fatalf("%s%v is not a counter or gauge: %v", name, labels, mt)
	return 0
}

// hist is a histogram series' count and sum.
func hist(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) (uint64, float64) {
	t.Helper()
	h := sample(t, fams, name, labels).GetHistogram()
	if h == nil {
		t.Fatalf("%s%v is not a histogram", name, labels)
	}
	return h.GetSampleCount(), h.GetSampleSum()
}

func checkType(t *testing.T, fams map[string]*dto.MetricFamily, name string, want dto.MetricType) {
	t.Helper()
	if mf, ok := fams[name]; !ok {
		t.Errorf("metric %s absent", name)
	} else if got := mf.GetType(); got != want {
		t.Errorf("%s: type %v, want %v", name, got, want)
	}
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

func TestNewRegistersRuntimeCollectors(t *testing.T) {
	fams := scrape(t, New(Options{}))
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_start_time_seconds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("metric %s absent; have %v", name, slices.Sorted(maps.Keys(fams)))
		}
	}
}

func TestOwnRegistry(t *testing.T) {
	// Two in one process must not collide, which they would in the global
	// default registry.
	a, b := New(Options{}), New(Options{})
	a.ObserveBatch(3, time.Millisecond, false)
	if got := value(t, scrape(t, b), "farebox_ledger_batches_total", map[string]string{"result": "ok"}); got != 0 {
		t.Errorf("b's batches after a's observe: got %v, want 0", got)
	}
}

// TestNamesAndHelp observes everything, then checks every family but the
// runtime's is farebox_…, has help, and is one of the documented names.
func TestNamesAndHelp(t *testing.T) {
	m := New(Options{Sources: Sources{
		Ledger:      func() LedgerStats { return LedgerStats{} },
		Deployments: func() []DeploymentStatus { return []DeploymentStatus{{Name: "d"}} },
		Gateway:     func() GatewayStats { return GatewayStats{} },
	}})
	m.ObserveBatch(1, time.Millisecond, false)
	m.ObserveCredits(1, 1, 1)
	m.ObserveRequest("gpt-4o", "d", "ok", time.Millisecond, time.Second)
	m.ObserveUpstreamError("d", "upstream_timeout")
	m.ObserveWebhookEvent("balance.low", 2)
	m.ObserveWebhookAttempt("delivered")
	m.ObserveTopup("recorded")
	m.ObserveSuggestion("charged")
	m.ObserveClick("charged")
	m.ObserveDecision(5 * time.Microsecond)
	m.Middleware("GET /x", http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))

	want := map[string]dto.MetricType{
		"farebox_http_requests_total":                 dto.MetricType_COUNTER,
		"farebox_http_request_duration_seconds":       dto.MetricType_HISTOGRAM,
		"farebox_ledger_batch_ops":                    dto.MetricType_HISTOGRAM,
		"farebox_ledger_commit_duration_seconds":      dto.MetricType_HISTOGRAM,
		"farebox_ledger_batches_total":                dto.MetricType_COUNTER,
		"farebox_credits_granted_total":               dto.MetricType_COUNTER,
		"farebox_credits_consumed_total":              dto.MetricType_COUNTER,
		"farebox_credits_expired_total":               dto.MetricType_COUNTER,
		"farebox_gateway_requests_total":              dto.MetricType_COUNTER,
		"farebox_gateway_ttft_seconds":                dto.MetricType_HISTOGRAM,
		"farebox_gateway_request_duration_seconds":    dto.MetricType_HISTOGRAM,
		"farebox_upstream_errors_total":               dto.MetricType_COUNTER,
		"farebox_ledger_queue_depth":                  dto.MetricType_GAUGE,
		"farebox_ledger_holds_open":                   dto.MetricType_GAUGE,
		"farebox_ledger_lost_holds_total":             dto.MetricType_COUNTER,
		"farebox_ledger_engine_batches_total":         dto.MetricType_COUNTER,
		"farebox_ledger_engine_failed_batches_total":  dto.MetricType_COUNTER,
		"farebox_ledger_engine_ops_total":             dto.MetricType_COUNTER,
		"farebox_deployment_healthy":                  dto.MetricType_GAUGE,
		"farebox_deployment_served_total":             dto.MetricType_COUNTER,
		"farebox_deployment_failed_total":             dto.MetricType_COUNTER,
		"farebox_deployment_ttft_ewma_seconds":        dto.MetricType_GAUGE,
		"farebox_gateway_overcaptures_total":          dto.MetricType_COUNTER,
		"farebox_gateway_overcapture_credits_total":   dto.MetricType_COUNTER,
		"farebox_gateway_spooled_total":               dto.MetricType_COUNTER,
		"farebox_gateway_unsettled_total":             dto.MetricType_COUNTER,
		"farebox_webhook_events_total":                dto.MetricType_COUNTER,
		"farebox_webhook_attempts_total":              dto.MetricType_COUNTER,
		"farebox_topups_total":                        dto.MetricType_COUNTER,
		"farebox_sponsored_suggestions_total":         dto.MetricType_COUNTER,
		"farebox_sponsored_clicks_total":              dto.MetricType_COUNTER,
		"farebox_sponsored_decision_duration_seconds": dto.MetricType_HISTOGRAM,
	}
	fams := scrape(t, m)
	for name, typ := range want {
		checkType(t, fams, name, typ)
	}
	for name, mf := range fams {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_") {
			continue
		}
		if _, ok := want[name]; !ok {
			t.Errorf("metric %s is exposed but not in this test's list", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("metric %s has no help", name)
		}
	}
}

// TestObserveNotify: webhook events, attempts and top-ups count by label.
func TestObserveNotify(t *testing.T) {
	m := New(Options{})
	m.ObserveWebhookEvent("balance.low", 2)
	m.ObserveWebhookEvent("balance.low", 0)
	m.ObserveWebhookAttempt("failed")
	m.ObserveWebhookAttempt("failed")
	m.ObserveTopup("requested")
	fams := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"farebox_webhook_events_total", map[string]string{"type": "balance.low"}, 2},
		{"farebox_webhook_attempts_total", map[string]string{"result": "failed"}, 2},
		{"farebox_topups_total", map[string]string{"status": "requested"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	var nilM *Metrics
	nilM.ObserveWebhookEvent("x", 1)
	nilM.ObserveWebhookAttempt("x")
	nilM.ObserveTopup("x")
}

func TestObserveBatch(t *testing.T) {
	m := New(Options{})
	m.ObserveBatch(10, 2*time.Millisecond, false)
	m.ObserveBatch(30, 4*time.Millisecond, false)
	m.ObserveBatch(5, 100*time.Millisecond, true)
	fams := scrape(t, m)

	for _, c := range []struct {
		result string
		want   float64
	}{{"ok", 2}, {"failed", 1}} {
		if got := value(t, fams, "farebox_ledger_batches_total", map[string]string{"result": c.result}); got != c.want {
			t.Errorf("batches_total{result=%q}: got %v, want %v", c.result, got, c.want)
		}
	}
	if n, sum := hist(t, fams, "farebox_ledger_batch_ops", map[string]string{}); n != 3 || sum != 45 {
		t.Errorf("batch_ops: got count %d sum %v, want 3 and 45", n, sum)
	}
	if n, sum := hist(t, fams, "farebox_ledger_commit_duration_seconds", map[string]string{}); n != 3 || !near(sum, 0.106) {
		t.Errorf("commit_duration_seconds: got count %d sum %v, want 3 and 0.106", n, sum)
	}
}

func TestObserveCredits(t *testing.T) {
	m := New(Options{})
	m.ObserveCredits(1_500_000, 1, 0)       // 1.5 credits granted, one micro-credit consumed
	m.ObserveCredits(2_000_000, 0, 250_000) // +2 granted, 0.25 expired
	m.ObserveCredits(-7, -7, -7)            // a counter never goes down
	fams := scrape(t, m)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"farebox_credits_granted_total", 3.5},
		{"farebox_credits_consumed_total", 0.000001},
		{"farebox_credits_expired_total", 0.25},
	} {
		if got := value(t, fams, c.name, map[string]string{}); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestObserveCreditsSumsExactly(t *testing.T) {
	// A million observations of 0.1 credit sum to exactly 100000 credits,
	// which a float counter adding 0.1 each time would not.
	m := New(Options{})
	for range 1_000_000 {
		m.ObserveCredits(100_000, 0, 0)
	}
	if got := value(t, scrape(t, m), "farebox_credits_granted_total", map[string]string{}); got != 100_000 {
		t.Errorf("granted: got %v, want exactly 100000", got)
	}
}

func TestObserveRequest(t *testing.T) {
	m := New(Options{})
	m.ObserveRequest("gpt-4o", "openai-east", "ok", 200*time.Millisecond, 2*time.Second)
	m.ObserveRequest("gpt-4o", "openai-east", "ok", 300*time.Millisecond, 3*time.Second)
	// Nothing delivered: no time to first token to observe.
	m.ObserveRequest("gpt-4o", "openai-east", "upstream_timeout", 0, 10*time.Second)
	m.ObserveRequest("gpt-4o", "", "client_cancelled", 0, time.Second)
	fams := scrape(t, m)

	for _, c := range []struct {
		deployment, status string
		want               float64
	}{{"openai-east", "ok", 2}, {"openai-east", "upstream_timeout", 1}, {"", "client_cancelled", 1}} {
		labels := map[string]string{"model": "gpt-4o", "deployment": c.deployment, "status": c.status}
		if got := value(t, fams, "farebox_gateway_requests_total", labels); got != c.want {
			t.Errorf("gateway_requests_total%v: got %v, want %v", labels, got, c.want)
		}
	}
	east := map[string]string{"model": "gpt-4o", "deployment": "openai-east"}
	if n, sum := hist(t, fams, "farebox_gateway_ttft_seconds", east); n != 2 || !near(sum, 0.5) {
		t.Errorf("ttft_seconds%v: got count %d sum %v, want 2 and 0.5", east, n, sum)
	}
	if n, sum := hist(t, fams, "farebox_gateway_request_duration_seconds", east); n != 3 || !near(sum, 15) {
		t.Errorf("request_duration_seconds%v: got count %d sum %v, want 3 and 15", east, n, sum)
	}
}

func TestObserveUpstreamError(t *testing.T) {
	m := New(Options{})
	m.ObserveUpstreamError("openai-east", "upstream_timeout")
	m.ObserveUpstreamError("openai-east", "upstream_timeout")
	m.ObserveUpstreamError("openai-east", "upstream_rate_limited")
	fams := scrape(t, m)
	for _, c := range []struct {
		kind string
		want float64
	}{{"upstream_timeout", 2}, {"upstream_rate_limited", 1}} {
		labels := map[string]string{"deployment": "openai-east", "kind": c.kind}
		if got := value(t, fams, "farebox_upstream_errors_total", labels); got != c.want {
			t.Errorf("upstream_errors_total%v: got %v, want %v", labels, got, c.want)
		}
	}
}

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *Metrics
	m.ObserveBatch(1, time.Millisecond, true)
	m.ObserveCredits(1, 2, 3)
	m.ObserveRequest("gpt-4o", "d", "ok", time.Millisecond, time.Second)
	m.ObserveUpstreamError("d", "upstream_timeout")
	m.Gauges(Sources{Ledger: func() LedgerStats { t.Error("a nil Metrics called its source"); return LedgerStats{} }})
	if err := m.Register(); err != nil {
		t.Errorf("Register on nil: got %v, want nil", err)
	}
	if r := m.Registry(); r != nil {
		t.Errorf("Registry on nil: got %v, want nil", r)
	}

	called := false
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true; w.WriteHeader(http.StatusTeapot) })
	rec := httptest.NewRecorder()
	m.Middleware("GET /x", next).ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if !called || rec.Code != http.StatusTeapot {
		t.Errorf("nil Middleware: called %v status %d, want the handler itself (true, 418)", called, rec.Code)
	}
	rec = httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Handler: status %d, want 404", rec.Code)
	}
}

func TestObserveSponsored(t *testing.T) {
	m := New(Options{})
	for _, o := range []string{"placed", "charged", "charged", "not_decision"} {
		m.ObserveSuggestion(o)
	}
	m.ObserveClick("repeated")
	m.ObserveDecision(20 * time.Microsecond)
	fams := scrape(t, m)
	if got := value(t, fams, "farebox_sponsored_suggestions_total", map[string]string{"outcome": "charged"}); got != 2 {
		t.Errorf("charged suggestions %v, want 2", got)
	}
	if got := value(t, fams, "farebox_sponsored_clicks_total", map[string]string{"outcome": "repeated"}); got != 1 {
		t.Errorf("repeated clicks %v, want 1", got)
	}
	if n, sum := hist(t, fams, "farebox_sponsored_decision_duration_seconds", map[string]string{}); n != 1 || sum != 20e-6 {
		t.Errorf("decision histogram %d, %v; want 1 of 20µs", n, sum)
	}
	var nilM *Metrics
	nilM.ObserveSuggestion("x")
	nilM.ObserveClick("x")
	nilM.ObserveDecision(time.Second)
}
