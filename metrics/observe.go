package metrics

import "time"

// ObserveBatch records one ledger batch: how many ops it carried, how long
// its commit took and whether the commit failed. The engine calls it once
// per batch, not per op, so its cost is spread over the whole batch.
func (m *Metrics) ObserveBatch(ops int, commit time.Duration, failed bool) {
	if m == nil {
		return
	}
	m.batchOps.Observe(float64(ops))
	m.commitSeconds.Observe(commit.Seconds())
	if failed {
		m.batchesFailed.Inc()
	} else {
		m.batchesOK.Inc()
	}
}

// ObserveCredits adds committed credit movements, in micro-credits (the
// ledger's exact unit): granted, consumed and expired. They are summed as
// integers and shown in credits at scrape. A negative figure is ignored: a
// counter only goes up, and a correction is the ledger's business, not a
// metric's.
func (m *Metrics) ObserveCredits(granted, consumed, expired int64) {
	if m == nil {
		return
	}
	if granted > 0 {
		m.granted.Add(granted)
	}
	if consumed > 0 {
		m.consumed.Add(consumed)
	}
	if expired > 0 {
		m.expired.Add(expired)
	}
}

// ObserveRequest records one settled gateway request: its model (the
// catalog's name, not whatever a client sent, which would let a client
// mint series), the deployment that served it ("" when none did), how it
// ended (a gateway Status… constant), its time to first token (0 when no
// token was delivered: not observed) and its whole latency.
func (m *Metrics) ObserveRequest(model, deployment, status string, ttft, latency time.Duration) {
	if m == nil {
		return
	}
	m.gwRequests.WithLabelValues(model, deployment, status).Inc()
	if ttft > 0 {
		m.gwTTFT.WithLabelValues(model, deployment).Observe(ttft.Seconds())
	}
	m.gwDuration.WithLabelValues(model, deployment).Observe(latency.Seconds())
}

// ObserveUpstreamError counts one failed upstream attempt of a deployment;
// kind is a bounded word such as a gateway Status… constant
// ("upstream_timeout", "upstream_rate_limited", …).
func (m *Metrics) ObserveUpstreamError(deployment, kind string) {
	if m == nil {
		return
	}
	m.upstreamErrors.WithLabelValues(deployment, kind).Inc()
}

// ObserveWebhookEvent counts n webhook events of type typ (a bounded
// notify type) recorded for delivery.
func (m *Metrics) ObserveWebhookEvent(typ string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.webhookEvents.WithLabelValues(typ).Add(float64(n))
}

// ObserveWebhookAttempt counts one delivery attempt by its result:
// "delivered", "failed" or "given_up".
func (m *Metrics) ObserveWebhookAttempt(result string) {
	if m == nil {
		return
	}
	m.webhookDeliveries.WithLabelValues(result).Inc()
}

// ObserveTopup counts an automatic top-up's step: "recorded", "requested"
// or "failed".
func (m *Metrics) ObserveTopup(status string) {
	if m == nil {
		return
	}
	m.topups.WithLabelValues(status).Inc()
}

// ObserveSuggestion counts a sponsored suggestion's outcome (a bounded
// word: a sponsored.Outcome… constant).
func (m *Metrics) ObserveSuggestion(outcome string) {
	if m == nil {
		return
	}
	m.suggestions.WithLabelValues(outcome).Inc()
}

// ObserveClick counts a follow of a sponsored suggestion's link by its
// outcome (a sponsored.OutcomeClick… constant).
func (m *Metrics) ObserveClick(outcome string) {
	if m == nil {
		return
	}
	m.clicks.WithLabelValues(outcome).Inc()
}

// ObserveDecision records how long a sponsored decision took.
func (m *Metrics) ObserveDecision(d time.Duration) {
	if m == nil {
		return
	}
	m.decisionTiming.Observe(d.Seconds())
}
