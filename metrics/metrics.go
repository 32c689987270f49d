// Package metrics defines every Prometheus metric subsyncd exports. The
// registry belongs to the caller (main); nothing is registered globally.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Webhook request outcomes, the values of the outcome label of
// subsync_webhook_requests_total.
const (
	OutcomeAccepted         = "accepted"
	OutcomeDuplicate        = "duplicate"
	OutcomeIgnored          = "ignored"
	OutcomeInvalidSignature = "invalid_signature"
	OutcomeBadRequest       = "bad_request"
	OutcomeTooLarge         = "too_large"
	OutcomeUnavailable      = "unavailable"
	OutcomeMethodNotAllowed = "method_not_allowed"
)

// Metrics holds every metric of the daemon. Build it with New.
type Metrics struct {
	WebhookRequests        *prometheus.CounterVec
	WebhookRequestDuration *prometheus.HistogramVec
	WebhookLag             *prometheus.HistogramVec
	WebhookBatchEvents     prometheus.Histogram
	WebhookBatchDuration   prometheus.Histogram

	EventsApplied      *prometheus.CounterVec
	EventApplyDuration prometheus.Histogram
	InboxPending       prometheus.Gauge
	InboxOldestAge     prometheus.Gauge
	InboxDead          prometheus.Gauge

	CacheInvalidations   *prometheus.CounterVec
	CacheOutboxPending   prometheus.Gauge
	CacheOutboxOldestAge prometheus.Gauge

	DBOperations *prometheus.CounterVec
	DBErrors     *prometheus.CounterVec

	StripeRequests        *prometheus.CounterVec
	StripeRequestDuration *prometheus.HistogramVec
	StripeLimiterWait     *prometheus.HistogramVec

	ReconcileRuns        *prometheus.CounterVec
	ReconcileDrift       *prometheus.CounterVec
	ReconcileLastSuccess *prometheus.GaugeVec
	ReconcileDuration    *prometheus.HistogramVec
	ReconcileInterval    *prometheus.GaugeVec
	ReconcileUnlinked    prometheus.Gauge
	EventsCursorAge      prometheus.Gauge
	EventsCursorExpired  prometheus.Counter

	PrunedRows *prometheus.CounterVec

	BuildInfo *prometheus.GaugeVec
}

// New registers every metric on reg and returns them. withRuntime adds the
// Go and process collectors (main wants them; most tests do not).
func New(reg prometheus.Registerer, withRuntime bool) *Metrics {
	f := factory{promauto.With(reg)}
	if withRuntime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// Webhook handling is a few milliseconds; the top buckets catch a slow
	// database. Lag and apply latency span milliseconds to hours (catch-up).
	fast := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	lag := []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600}
	m := &Metrics{
		WebhookRequests: f.counterVec("subsync_webhook_requests_total",
			"Webhook requests by outcome (accepted, duplicate, ignored, invalid_signature, bad_request, too_large, unavailable, method_not_allowed).", "outcome"),
		WebhookRequestDuration: f.histogramVec("subsync_webhook_request_duration_seconds",
			fast, "Time to answer a webhook request, by outcome.", "outcome"),
		WebhookBatchEvents: f.histogram("subsync_webhook_batch_events",
			[]float64{1, 2, 4, 8, 16, 32, 64}, "Distinct webhook events of one batch, stored together by one transaction; batches that failed are not counted."),
		WebhookBatchDuration: f.histogram("subsync_webhook_batch_duration_seconds",
			fast, "Time to store a batch of webhook events (and, in payload mode, apply those it can), from its first statement to its commit; batches that failed are not counted."),
		WebhookLag: f.histogramVec("subsync_webhook_lag_seconds",
			lag, "Time from the event's creation in Stripe to its application, by source (webhook, catchup).", "source"),
		EventsApplied: f.counterVec("subsync_events_applied_total",
			"Inbox events processed, by event type and outcome (applied, stale, retry, dead).", "type", "outcome"),
		EventApplyDuration: f.histogram("subsync_event_apply_duration_seconds",
			fast, "Time to apply one inbox event, Stripe refetch included."),
		InboxPending: f.gauge("subsync_inbox_pending",
			"Events in the inbox waiting to be applied (pending or failed awaiting retry)."),
		InboxOldestAge: f.gauge("subsync_inbox_oldest_pending_age_seconds",
			"Age of the oldest event waiting in the inbox, 0 when empty."),
		InboxDead: f.gauge("subsync_inbox_dead",
			"Events that exhausted their retries and need an operator."),
		CacheInvalidations: f.counterVec("subsync_cache_invalidations_total",
			"Cache key deletions attempted, by outcome (success, failure).", "outcome"),
		CacheOutboxPending: f.gauge("subsync_cache_outbox_pending",
			"Cache invalidations waiting in the outbox."),
		CacheOutboxOldestAge: f.gauge("subsync_cache_outbox_oldest_age_seconds",
			"Age of the oldest undelivered cache invalidation, 0 when empty."),
		DBOperations: f.counterVec("subsync_db_operations_total",
			"Database operations, by operation.", "op"),
		DBErrors: f.counterVec("subsync_db_errors_total",
			"Database operations that failed, by operation.", "op"),
		StripeRequests: f.counterVec("subsync_stripe_requests_total",
			"Stripe API requests, by operation and HTTP status code (\"error\" when no answer came).", "op", "code"),
		StripeRequestDuration: f.histogramVec("subsync_stripe_request_duration_seconds",
			[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "Stripe API request latency, by operation.", "op"),
		StripeLimiterWait: f.histogramVec("subsync_stripe_limiter_wait_seconds",
			[]float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10}, "Time a Stripe request waited for the rate limiter, by priority.", "priority"),
		ReconcileRuns: f.counterVec("subsync_reconcile_runs_total",
			"Reconciliation runs, by job and outcome (succeeded, failed, skipped).", "job_name", "outcome"),
		ReconcileDrift: f.counterVec("subsync_reconcile_drift_total",
			"Drifted fields found by reconciliation, by job and field.", "job_name", "field"),
		ReconcileLastSuccess: f.gaugeVec("subsync_reconcile_last_success_timestamp_seconds",
			"Unix time of the last successful run, by job.", "job_name"),
		ReconcileDuration: f.histogramVec("subsync_reconcile_duration_seconds",
			[]float64{.1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}, "Duration of reconciliation runs, by job.", "job_name"),
		ReconcileInterval: f.gaugeVec("subsync_reconcile_interval_seconds",
			"Time between two scheduled runs of a job, from its cron schedule (0 when not scheduled).", "job_name"),
		ReconcileUnlinked: f.gauge("subsync_reconcile_unlinked_subscriptions",
			"Subscriptions without a user id seen by the last subscription sweep."),
		EventsCursorAge: f.gauge("subsync_events_cursor_age_seconds",
			"Age of the events catch-up cursor (Stripe keeps events 30 days)."),
		EventsCursorExpired: f.counter("subsync_events_cursor_expired_total",
			"Catch-up runs whose cursor was older than Stripe's event retention (a full sweep ran instead)."),
		PrunedRows: f.counterVec("subsync_pruned_rows_total",
			"Rows deleted by retention (EVENT_RETENTION, RECONCILE_HISTORY_RETENTION), by table.", "table"),
		BuildInfo: f.gaugeVec("subsync_build_info",
			"Build of the running daemon; always 1.", "version", "commit", "goversion", "stripe_api_version"),
	}
	// Create the series of every known label value now, so that the first
	// failure after a start is visible to rate() and increase().
	for _, o := range []string{OutcomeAccepted, OutcomeDuplicate, OutcomeIgnored, OutcomeInvalidSignature,
		OutcomeBadRequest, OutcomeTooLarge, OutcomeUnavailable, OutcomeMethodNotAllowed} {
		m.WebhookRequests.WithLabelValues(o)
	}
	for _, o := range []string{"success", "failure"} {
		m.CacheInvalidations.WithLabelValues(o)
	}
	for _, t := range []string{"stripe_webhook_events", "reconcile_runs", "subscription_drift"} {
		m.PrunedRows.WithLabelValues(t)
	}
	for _, job := range []string{"events", "subscriptions"} {
		for _, o := range []string{"succeeded", "failed", "skipped"} {
			m.ReconcileRuns.WithLabelValues(job, o)
		}
	}
	return m
}

// factory builds the metrics of New on one registry, each from its name,
// help and label names (and buckets for a histogram).
type factory struct{ promauto.Factory }

func (f factory) counter(name, help string) prometheus.Counter {
	return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	return f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return f.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func (f factory) histogram(name string, buckets []float64, help string) prometheus.Histogram {
	return f.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

func (f factory) histogramVec(name string, buckets []float64, help string, labels ...string) *prometheus.HistogramVec {
	return f.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
}
