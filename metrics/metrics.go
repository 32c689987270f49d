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
	f := promauto.With(reg)
	if withRuntime {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// Webhook handling is a few milliseconds; the top buckets catch a slow
	// database. Lag and apply latency span milliseconds to hours (catch-up).
	fast := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	lag := []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600}
	m := &Metrics{
		WebhookRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_webhook_requests_total",
			Help: "Webhook requests by outcome (accepted, duplicate, ignored, invalid_signature, bad_request, too_large, unavailable, method_not_allowed).",
		}, []string{"outcome"}),
		WebhookRequestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "subsync_webhook_request_duration_seconds",
			Help:    "Time to answer a webhook request, by outcome.",
			Buckets: fast,
		}, []string{"outcome"}),
		WebhookLag: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "subsync_webhook_lag_seconds",
			Help:    "Time from the event's creation in Stripe to its application, by source (webhook, catchup).",
			Buckets: lag,
		}, []string{"source"}),
		EventsApplied: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_events_applied_total",
			Help: "Inbox events processed, by event type and outcome (applied, stale, retry, dead).",
		}, []string{"type", "outcome"}),
		EventApplyDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "subsync_event_apply_duration_seconds",
			Help:    "Time to apply one inbox event, Stripe refetch included.",
			Buckets: fast,
		}),
		InboxPending: f.NewGauge(prometheus.GaugeOpts{
			Name: "subsync_inbox_pending",
			Help: "Events in the inbox waiting to be applied (pending or failed awaiting retry).",
		}),
		InboxOldestAge: f.NewGauge(prometheus.GaugeOpts{
			Name: "subsync_inbox_oldest_pending_age_seconds",
			Help: "Age of the oldest event waiting in the inbox, 0 when empty.",
		}),
		InboxDead: f.NewGauge(prometheus.GaugeOpts{
			Name: "subsync_inbox_dead",
			Help: "Events that exhausted their retries and need an operator.",
		}),
		CacheInvalidations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_cache_invalidations_total",
			Help: "Cache key deletions attempted, by outcome (success, failure).",
		}, []string{"outcome"}),
		CacheOutboxPending: f.NewGauge(prometheus.GaugeOpts{
			Name: "subsync_cache_outbox_pending",
			Help: "Cache invalidations waiting in the outbox.",
		}),
		CacheOutboxOldestAge: f.NewGauge(prometheus.GaugeOpts{
			Name: "subsync_cache_outbox_oldest_age_seconds",
			Help: "Age of the oldest undelivered cache invalidation, 0 when empty.",
		}),
		DBOperations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_db_operations_total",
			Help: "Database operations, by operation.",
		}, []string{"op"}),
		DBErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_db_errors_total",
			Help: "Database operations that failed, by operation.",
		}, []string{"op"}),
		StripeRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_stripe_requests_total",
			Help: "Stripe API requests, by operation and HTTP status code (\"error\" when no answer came).",
		}, []string{"op", "code"}),
		StripeRequestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "subsync_stripe_request_duration_seconds",
			Help:    "Stripe API request latency, by operation.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		StripeLimiterWait: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "subsync_stripe_limiter_wait_seconds",
			Help:    "Time a Stripe request waited for the rate limiter, by priority.",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"priority"}),
		ReconcileRuns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_reconcile_runs_total",
			Help: "Reconciliation runs, by job and outcome (succeeded, failed, skipped).",
		}, []string{"job_name", "outcome"}),
		ReconcileDrift: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_reconcile_drift_total",
			Help: "Drifted fields found by reconciliation, by job and field.",
		}, []string{"job_name", "field"}),
		ReconcileLastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "subsync_reconcile_last_success_timestamp_seconds",
			Help: "Unix time of the last successful run, by job.",
		}, []string{"job_name"}),
		ReconcileDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "subsync_reconcile_duration_seconds",
			Help:    "Duration of reconciliation runs, by job.",
			Buckets: []float64{.1, .5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"job_name"}),
		ReconcileInterval: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "subsync_reconcile_interval_seconds",
			Help: "Time between two scheduled runs of a job, from its cron schedule (0 when not scheduled).",
		}, []string{"job_name"}),
		ReconcileUnlinked: f.NewGauge(prometheus.GaugeOpts{
			Name: "subsync_reconcile_unlinked_subscriptions",
			Help: "Subscriptions without a user id seen by the last subscription sweep.",
		}),
		EventsCursorAge: f.NewGauge(prometheus.GaugeOpts{
			Name: "subsync_events_cursor_age_seconds",
			Help: "Age of the events catch-up cursor (Stripe keeps events 30 days).",
		}),
		EventsCursorExpired: f.NewCounter(prometheus.CounterOpts{
			Name: "subsync_events_cursor_expired_total",
			Help: "Catch-up runs whose cursor was older than Stripe's event retention (a full sweep ran instead).",
		}),
		PrunedRows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "subsync_pruned_rows_total",
			Help: "Rows deleted by retention (EVENT_RETENTION, RECONCILE_HISTORY_RETENTION), by table.",
		}, []string{"table"}),
		BuildInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "subsync_build_info",
			Help: "Build of the running daemon; always 1.",
		}, []string{"version", "commit", "goversion", "stripe_api_version"}),
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
