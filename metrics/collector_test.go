package metrics

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCollectorReadsSourcesAtScrape(t *testing.T) {
	var ledgerCalls, deploymentCalls, gatewayCalls atomic.Int64
	var queued atomic.Int64
	m := New(Options{Sources: Sources{
		Ledger: func() LedgerStats {
			ledgerCalls.Add(1)
			return LedgerStats{Batches: 7, Ops: 300, Failed: 1, LostHolds: 2, QueuedOps: queued.Load(), HoldsOpen: 12}
		},
		Deployments: func() []DeploymentStatus {
			deploymentCalls.Add(1)
			return []DeploymentStatus{
				{Name: "openai-east", Model: "gpt-4o", Provider: "openai", Healthy: true, Served: 40, Failed: 3, TTFTEWMASeconds: 0.25},
				{Name: "own-gpu", Model: "llama-3", Provider: "self", Healthy: false, Served: 5, Failed: 9, TTFTEWMASeconds: 1.5},
			}
		},
		Gateway: func() GatewayStats {
			gatewayCalls.Add(1)
			return GatewayStats{OverCaptures: 2, OverCaptureCredits: 1_250_000, Spooled: 4, Unsettled: 1}
		},
		Compute: func() ComputeStats {
			return ComputeStats{Admitted: 30, Refused: 4, Preempted: 2, Reloads: 1, StepErrors: 3}
		},
	}})
	// Nothing is read until a scrape asks.
	m.ObserveBatch(1, 0, false)
	if got := ledgerCalls.Load() + deploymentCalls.Load() + gatewayCalls.Load(); got != 0 {
		t.Fatalf("sources called %d times before any scrape, want 0", got)
	}

	queued.Store(5)
	fams := scrape(t, m)
	none := map[string]string{}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"farebox_ledger_queue_depth", 5},
		{"farebox_ledger_holds_open", 12},
		{"farebox_ledger_lost_holds_total", 2},
		{"farebox_ledger_engine_batches_total", 7},
		{"farebox_ledger_engine_failed_batches_total", 1},
		{"farebox_ledger_engine_ops_total", 300},
		{"farebox_gateway_overcaptures_total", 2},
		{"farebox_gateway_overcapture_credits_total", 1.25},
		{"farebox_gateway_spooled_total", 4},
		{"farebox_gateway_unsettled_total", 1},
		{"farebox_leases_admitted_total", 30},
		{"farebox_leases_refused_total", 4},
		{"farebox_leases_preempted_total", 2},
		{"farebox_pool_capacity_reloads_total", 1},
		{"farebox_lease_step_errors_total", 3},
	} {
		if got := value(t, fams, c.name, none); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	east := map[string]string{"deployment": "openai-east", "model": "gpt-4o", "provider": "openai"}
	gpu := map[string]string{"deployment": "own-gpu", "model": "llama-3", "provider": "self"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"farebox_deployment_healthy", east, 1},
		{"farebox_deployment_healthy", gpu, 0},
		{"farebox_deployment_served_total", east, 40},
		{"farebox_deployment_served_total", gpu, 5},
		{"farebox_deployment_failed_total", east, 3},
		{"farebox_deployment_failed_total", gpu, 9},
		{"farebox_deployment_ttft_ewma_seconds", east, 0.25},
		{"farebox_deployment_ttft_ewma_seconds", gpu, 1.5},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// A second scrape calls each source again and sees what changed.
	queued.Store(9)
	if got := value(t, scrape(t, m), "farebox_ledger_queue_depth", none); got != 9 {
		t.Errorf("queue_depth on the second scrape: got %v, want 9", got)
	}
	for name, n := range map[string]int64{"Ledger": ledgerCalls.Load(), "Deployments": deploymentCalls.Load(), "Gateway": gatewayCalls.Load()} {
		if n != 2 {
			t.Errorf("%s source: called %d times in 2 scrapes, want 2", name, n)
		}
	}
}

func TestCollectorWithoutSources(t *testing.T) {
	// A source not given: its metrics are absent, the rest still served.
	fams := scrape(t, New(Options{}))
	for _, name := range []string{"farebox_ledger_queue_depth", "farebox_deployment_healthy", "farebox_gateway_spooled_total"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s exposed without its source", name)
		}
	}
	if _, ok := fams["farebox_ledger_batches_total"]; !ok {
		t.Error("farebox_ledger_batches_total absent without sources, want it served")
	}
}

func TestGaugesSetLater(t *testing.T) {
	m := New(Options{Sources: Sources{Ledger: func() LedgerStats { return LedgerStats{QueuedOps: 1} }}})
	// The gateway is built after the Metrics; its nil Ledger keeps the first.
	m.Gauges(Sources{Gateway: func() GatewayStats { return GatewayStats{Spooled: 3} }})
	fams := scrape(t, m)
	if got := value(t, fams, "farebox_ledger_queue_depth", map[string]string{}); got != 1 {
		t.Errorf("queue_depth: got %v, want 1 (the source given to New)", got)
	}
	if got := value(t, fams, "farebox_gateway_spooled_total", map[string]string{}); got != 3 {
		t.Errorf("spooled_total: got %v, want 3 (the source given to Gauges)", got)
	}
	m.Gauges(Sources{Ledger: func() LedgerStats { return LedgerStats{QueuedOps: 2} }})
	if got := value(t, scrape(t, m), "farebox_ledger_queue_depth", map[string]string{}); got != 2 {
		t.Errorf("queue_depth after a new Ledger source: got %v, want 2", got)
	}
}

func TestCollectorDuplicateDeployment(t *testing.T) {
	// A deployment listed twice costs its duplicate, not the scrape.
	m := New(Options{Sources: Sources{Deployments: func() []DeploymentStatus {
		return []DeploymentStatus{{Name: "d", Model: "m", Served: 1}, {Name: "d", Model: "m", Served: 2}}
	}}})
	fams := scrape(t, m)
	labels := map[string]string{"deployment": "d", "model": "m", "provider": ""}
	if got := value(t, fams, "farebox_deployment_served_total", labels); got != 1 {
		t.Errorf("served_total%v: got %v, want 1 (the first listing)", labels, got)
	}
}

func TestRegister(t *testing.T) {
	// A later issue's own collector joins the same registry and scrape.
	m := New(Options{})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "farebox_webhooks_sent_total", Help: "Webhooks sent."})
	if err := m.Register(c); err != nil {
		t.Fatalf("Register: %v", err)
	}
	c.Add(3)
	if got := value(t, scrape(t, m), "farebox_webhooks_sent_total", map[string]string{}); got != 3 {
		t.Errorf("webhooks_sent_total: got %v, want 3", got)
	}
	// A name already taken is refused, not silently shadowed.
	dup := prometheus.NewCounter(prometheus.CounterOpts{Name: "farebox_ledger_batches_total", Help: "again"})
	if err := m.Register(dup); err == nil {
		t.Error("Register of a taken name: got nil, want an error")
	}
}

func TestConcurrentUse(t *testing.T) {
	// Observes, scrapes and Gauges at once; -race checks the locking.
	m := New(Options{})
	h := m.Middleware("GET /x", http.NotFoundHandler())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				m.ObserveBatch(i, time.Millisecond, i%2 == 0)
				m.ObserveCredits(1, 1, 1)
				m.ObserveRequest("gpt-4o", "d", "ok", time.Millisecond, time.Second)
				m.ObserveUpstreamError("d", "upstream_timeout")
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 20 {
				m.Gauges(Sources{Ledger: func() LedgerStats { return LedgerStats{QueuedOps: 1} }})
				m.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
			}
		})
	}
	wg.Wait()
	if got := value(t, scrape(t, m), "farebox_gateway_requests_total", map[string]string{"model": "gpt-4o", "deployment": "d", "status": "ok"}); got != 8*200 {
		t.Errorf("gateway_requests_total: got %v, want %d", got, 8*200)
	}
}
