package main

import (
	"context"
	"time"
)

// pruneEvery is how often serve prunes what retention lets go.
const pruneEvery = 10 * time.Minute

// runRetention prunes, now and every pruneEvery until ctx ends, the
// applied and ignored events older than EVENT_RETENTION and the reconcile
// runs (with their drift rows) older than RECONCILE_HISTORY_RETENTION. Every
// replica prunes; the statements skip rows another is deleting.
func (a *app) runRetention(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		a.prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *app) prune(ctx context.Context) {
	events, err := a.db.PruneEvents(ctx, a.cfg.EventRetention)
	a.metrics.PrunedRows.WithLabelValues("stripe_webhook_events").Add(float64(events))
	if err != nil && ctx.Err() == nil {
		a.log.Warn("prune events", "deleted", events, "err", err.Error())
	}
	drift, runs, err := a.db.PruneHistory(ctx, a.cfg.HistoryRetention)
	a.metrics.PrunedRows.WithLabelValues("subscription_drift").Add(float64(drift))
	a.metrics.PrunedRows.WithLabelValues("reconcile_runs").Add(float64(runs))
	if err != nil && ctx.Err() == nil {
		a.log.Warn("prune reconcile history", "deleted_runs", runs, "deleted_drift", drift, "err", err.Error())
	}
	if events+drift+runs > 0 {
		a.log.Info("pruned", "events", events, "reconcile_runs", runs, "subscription_drift", drift)
	}
}
