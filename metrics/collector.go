package metrics

import "github.com/prometheus/client_golang/prometheus"

// Sources are functions read at each scrape, for figures their owners
// already keep: they cost nothing between scrapes. Each may be nil (its
// metrics are then absent) and must be safe to call from any goroutine,
// since scrapes may run at once.
type Sources struct {
	Ledger      func() LedgerStats
	Deployments func() []DeploymentStatus
	Gateway     func() GatewayStats
	Compute     func() ComputeStats
}

// LedgerStats is what the ledger engine counts, in plain types so the
// caller fills it from ledger.Stats and Engine.Queued without metrics
// importing ledger.
type LedgerStats struct {
	// Batches, Ops and Failed are the engine's own counts since it started
	// (ledger.Stats): they are exported apart from ObserveBatch's figures
	// (farebox_ledger_engine_…), so a difference shows a missed wiring.
	Batches, Ops, Failed int64
	// LostHolds are holds answered before their commit whose commit then
	// failed (ledger.Stats.Lost).
	LostHolds int64
	// QueuedOps wait in the engine's queues for a batch (Engine.Queued).
	QueuedOps int64
	// HoldsOpen are holds neither captured, released nor expired.
	HoldsOpen int64
}

// DeploymentStatus is one deployment as the router sees it
// (routing.Status), in plain types.
type DeploymentStatus struct {
	Name, Model, Provider string
	Healthy               bool
	Served, Failed        int64 // requests since start
	// TTFTEWMASeconds is the moving average of its time to first token,
	// in seconds (routing.Status keeps milliseconds: divide by 1000).
	TTFTEWMASeconds float64
}

// GatewayStats is what the gateway counts that an operator must know of
// (gateway.Stats), in plain types.
type GatewayStats struct {
	// OverCaptures are requests that cost more than their hold;
	// OverCaptureCredits, in micro-credits, is what they cost beyond it.
	OverCaptures, OverCaptureCredits int64
	// Spooled settlements were left to the spool; Unsettled could not
	// even be spooled.
	Spooled, Unsettled int64
}

// ComputeStats is what the lease service counts since it started
// (compute.Stats), in plain types.
type ComputeStats struct {
	// Admitted leases, and Refused bookings (no GPUs at some instant of
	// their window); Preempted spot leases cut for a firm lease or a pool.
	Admitted, Refused, Preempted int64
	// Reloads are pools' capacity read from the store (at first use, and
	// after another replica changed them); StepErrors lease ops the
	// billing job could not apply (tried again next tick).
	Reloads, StepErrors int64
}

// Gauges sets the scrape-time sources; the nil fields of s leave what was
// set before, so each part of the composition root may hand its own. A
// no-op on a nil *Metrics.
func (m *Metrics) Gauges(s Sources) {
	if m == nil {
		return
	}
	m.sourcesMu.Lock()
	defer m.sourcesMu.Unlock()
	if s.Ledger != nil {
		m.sources.Ledger = s.Ledger
	}
	if s.Deployments != nil {
		m.sources.Deployments = s.Deployments
	}
	if s.Gateway != nil {
		m.sources.Gateway = s.Gateway
	}
	if s.Compute != nil {
		m.sources.Compute = s.Compute
	}
}

var (
	deploymentLabels = []string{"deployment", "model", "provider"}

	descQueueDepth    = prometheus.NewDesc("farebox_ledger_queue_depth", "Ledger ops waiting in the engine's queues for a batch.", nil, nil)
	descHoldsOpen     = prometheus.NewDesc("farebox_ledger_holds_open", "Holds neither captured, released nor expired.", nil, nil)
	descLostHolds     = prometheus.NewDesc("farebox_ledger_lost_holds_total", "Holds answered before their commit whose commit then failed (their requests were cancelled).", nil, nil)
	descEngineBatches = prometheus.NewDesc("farebox_ledger_engine_batches_total", "Batches the ledger engine has run since it started, by its own count.", nil, nil)
	descEngineFailed  = prometheus.NewDesc("farebox_ledger_engine_failed_batches_total", "Batches whose commit failed since the engine started, by its own count.", nil, nil)
	descEngineOps     = prometheus.NewDesc("farebox_ledger_engine_ops_total", "Ops the ledger engine has run since it started, by its own count.", nil, nil)

	descHealthy  = prometheus.NewDesc("farebox_deployment_healthy", "1 when the router would send a deployment requests, 0 while it is skipped after failures.", deploymentLabels, nil)
	descServed   = prometheus.NewDesc("farebox_deployment_served_total", "Requests a deployment served since start.", deploymentLabels, nil)
	descFailed   = prometheus.NewDesc("farebox_deployment_failed_total", "Requests a deployment failed since start.", deploymentLabels, nil)
	descTTFTEWMA = prometheus.NewDesc("farebox_deployment_ttft_ewma_seconds", "Moving average of a deployment's time to first token, as the router ranks it.", deploymentLabels, nil)

	descOverCaptures      = prometheus.NewDesc("farebox_gateway_overcaptures_total", "Gateway requests that cost more than their hold (a hole in the worst-case estimate).", nil, nil)
	descOverCaptureCredit = prometheus.NewDesc("farebox_gateway_overcapture_credits_total", "Credits those requests cost beyond their holds (a display figure).", nil, nil)
	descSpooled           = prometheus.NewDesc("farebox_gateway_spooled_total", "Gateway settlements left to the spool because the ledger could not take them.", nil, nil)
	descUnsettled         = prometheus.NewDesc("farebox_gateway_unsettled_total", "Gateway settlements that could not even be spooled.", nil, nil)

	descLeasesAdmitted  = prometheus.NewDesc("farebox_leases_admitted_total", "Leases admitted (their first hold taken) since start.", nil, nil)
	descLeasesRefused   = prometheus.NewDesc("farebox_leases_refused_total", "Lease bookings refused for lack of GPUs at some instant of their window since start.", nil, nil)
	descLeasesPreempted = prometheus.NewDesc("farebox_leases_preempted_total", "Spot leases pre-empted for a reserved or on-demand lease or a pool's change since start.", nil, nil)
	descPoolReloads     = prometheus.NewDesc("farebox_pool_capacity_reloads_total", "Pools' capacity read from the store: at first use, and after another replica changed them.", nil, nil)
	descLeaseStepErrors = prometheus.NewDesc("farebox_lease_step_errors_total", "Lease ops (starts, holds, captures, ends) the billing job could not apply, to be tried again.", nil, nil)
)

// collector turns the Sources into metrics at each scrape.
type collector struct{ m *Metrics }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descQueueDepth, descHoldsOpen, descLostHolds, descEngineBatches, descEngineFailed, descEngineOps,
		descHealthy, descServed, descFailed, descTTFTEWMA,
		descOverCaptures, descOverCaptureCredit, descSpooled, descUnsettled,
		descLeasesAdmitted, descLeasesRefused, descLeasesPreempted, descPoolReloads, descLeaseStepErrors,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.m.sourcesMu.Lock()
	s := c.m.sources
	c.m.sourcesMu.Unlock() // the sources run unlocked: they may take their own locks

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if s.Ledger != nil {
		l := s.Ledger()
		gauge(descQueueDepth, float64(l.QueuedOps))
		gauge(descHoldsOpen, float64(l.HoldsOpen))
		counter(descLostHolds, float64(l.LostHolds))
		counter(descEngineBatches, float64(l.Batches))
		counter(descEngineFailed, float64(l.Failed))
		counter(descEngineOps, float64(l.Ops))
	}
	if s.Deployments != nil {
		// A deployment listed twice would fail the whole scrape (a series
		// collected twice); the router's names are unique, but a source's
		// mistake should cost its duplicate, not every metric.
		seen := map[string]bool{}
		for _, d := range s.Deployments() {
			if seen[d.Name] {
				continue
			}
			seen[d.Name] = true
			healthy := 0.0
			if d.Healthy {
				healthy = 1
			}
			gauge(descHealthy, healthy, d.Name, d.Model, d.Provider)
			counter(descServed, float64(d.Served), d.Name, d.Model, d.Provider)
			counter(descFailed, float64(d.Failed), d.Name, d.Model, d.Provider)
			gauge(descTTFTEWMA, d.TTFTEWMASeconds, d.Name, d.Model, d.Provider)
		}
	}
	if s.Gateway != nil {
		g := s.Gateway()
		counter(descOverCaptures, float64(g.OverCaptures))
		counter(descOverCaptureCredit, microToCredits(g.OverCaptureCredits))
		counter(descSpooled, float64(g.Spooled))
		counter(descUnsettled, float64(g.Unsettled))
	}
	if s.Compute != nil {
		c := s.Compute()
		counter(descLeasesAdmitted, float64(c.Admitted))
		counter(descLeasesRefused, float64(c.Refused))
		counter(descLeasesPreempted, float64(c.Preempted))
		counter(descPoolReloads, float64(c.Reloads))
		counter(descLeaseStepErrors, float64(c.StepErrors))
	}
}
