package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// RunOnce claims one batch and applies it; it returns how many events it
// claimed. A batch has BatchTimeout to finish; once ctx ends it has drain
// more at most (default ApplierConfig.Drain), so that a claimed batch is
// finished rather than thrown away at shutdown. A batch given up rolls back
// and its events are due again at once, untried.
func (a *Applier) RunOnce(ctx context.Context, drain time.Duration) (int, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.BatchTimeout)
	defer cancel()
	// When ctx ends, the batch under way gets drain more; a timer firing
	// after RunOnce returned cancels a context already cancelled.
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(cmp.Or(drain, a.cfg.Drain), cancel) })
	defer stop()
	b, evs, err := a.store.ClaimBatch(bctx, a.cfg.BatchSize)
	if err != nil || b == nil {
		return 0, err
	}
	return len(evs), a.apply(bctx, b, evs, false)
}

// Drain processes due events until none is left, for the CLI and tests.
func (a *Applier) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := a.RunOnce(ctx, 0)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// outcome is how one group of a batch ended.
type outcome struct {
	folded Folded
	label  string // applied or stale, for a group written
	err    error  // the group was not written
	// deferred: the batch ran out of time before the group was computed;
	// its events are left pending, untried, for the next batch.
	deferred bool
	// skipped are the events of a payload-mode group whose object could not
	// be read: each is ignored on its own, the others are applied.
	skipped map[string]error
}

// apply applies a claimed batch in its transaction: lock the batch's
// subscriptions, compute every group's rows (fetching concurrently in
// refetch mode), fold them into the stored rows, write everything in one
// statement and commit. When Postgres refuses the write (a value it cannot
// store, say), the batch rolls back and each group is applied again in a
// batch of its own, so one bad event does not hold its neighbours back;
// alone says this is such a batch, whose refusal is recorded as the
// events' failure.
func (a *Applier) apply(ctx context.Context, b Batch, evs []ClaimedEvent, alone bool) error {
	start := a.cfg.Clock()
	groups := groupBySubscription(evs)
	stored, err := b.Lock(ctx, lockIDs(groups))
	if err != nil {
		b.Rollback()
		return err
	}
	outs := a.computeAll(ctx, groups, stored)
	var w BatchWrite
	for i, g := range groups {
		o := outs[i]
		if o.deferred {
			continue // left pending and untried: its rows are unlocked at commit
		}
		if o.err == nil && o.folded.Row != nil {
			w.Rows = append(w.Rows, *o.folded.Row)
		}
		w.Changes = append(w.Changes, o.folded.Changes...)
		w.Events = append(w.Events, a.results(g, o)...)
	}
	if err := b.Write(ctx, w); err != nil {
		b.Rollback()
		switch {
		case errors.Is(err, ErrUnavailable) || ctx.Err() != nil:
			return err
		case !alone:
			a.log.Warn("batch refused, applying its subscriptions one by one", "events", len(evs), "err", err.Error())
			return a.isolate(ctx, groups)
		default:
			return a.recordFailure(ctx, evs, err)
		}
	}
	if err := b.Commit(); err != nil {
		return err
	}
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.EventApplyDuration.Observe(a.cfg.Clock().Sub(start).Seconds())
	}
	deferred := 0
	for i, g := range groups {
		if outs[i].deferred {
			deferred += len(g.evs)
			continue
		}
		a.report(g, outs[i])
	}
	if deferred > 0 {
		a.log.Warn("batch ran out of time; events left for the next one", "events", deferred)
	}
	return nil
}

// computeAll computes every group's outcome against the stored rows; the
// groups that fetch from Stripe run concurrently, up to Fetches at once (the
// Stripe client's limiter paces them).
func (a *Applier) computeAll(ctx context.Context, groups []group, stored map[string]Subscription) []outcome {
	// The fetches get three quarters of the batch's time; the groups they
	// could not finish are left for the next batch, and the rest is written.
	budget := time.Duration(float64(a.cfg.BatchTimeout) * 0.75)
	fctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	outs := make([]outcome, len(groups))
	sem := make(chan struct{}, a.cfg.Fetches)
	var wg sync.WaitGroup
	for i, g := range groups {
		var cur *Subscription
		if s, ok := stored[g.subID]; ok {
			cur = &s
		}
		if !a.refetches(g) {
			outs[i] = a.compute(ctx, g, cur)
			continue
		}
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-fctx.Done():
				outs[i] = outcome{deferred: true}
				return
			}
			defer func() { <-sem }()
			o := a.compute(fctx, g, cur)
			if o.err != nil && fctx.Err() != nil && ctx.Err() == nil {
				o = outcome{deferred: true} // out of time, not failed
			}
			outs[i] = o
		})
	}
	wg.Wait()
	return outs
}

// compute is one group's outcome: its desired rows folded into cur.
func (a *Applier) compute(ctx context.Context, g group, cur *Subscription) outcome {
	if g.bad != nil {
		return outcome{err: permanent{g.bad}}
	}
	if g.subID == "" {
		return outcome{err: permanent{errors.New("event has no subscription")}}
	}
	rows, skipped, err := a.desiredRows(ctx, g, cur != nil && cur.UserID != nil)
	if err != nil {
		return outcome{err: err}
	}
	o := outcome{folded: Fold(cur, rows), label: "stale", skipped: skipped}
	for _, r := range o.folded.Results {
		if !r.Stale {
			o.label = "applied"
		}
	}
	return o
}

// errOf is how ev fared in its group: the group's error, or its own when
// it was skipped.
func (o outcome) errOf(ev ClaimedEvent) error {
	if err := o.skipped[ev.ID]; err != nil {
		return err
	}
	return o.err
}

// results are the inbox results of a group's events.
func (a *Applier) results(g group, o outcome) []EventResult {
	out := make([]EventResult, 0, len(g.evs))
	var p permanent
	for _, ev := range g.evs {
		r := EventResult{ID: ev.ID, Status: StatusApplied, SubscriptionID: g.subID}
		err := o.errOf(ev)
		switch {
		case err == nil:
		case errors.As(err, &p):
			r.Status, r.Error = StatusIgnored, err.Error()
		case ev.Attempts+1 >= a.cfg.MaxAttempts:
			r.Status, r.Error = StatusDead, err.Error()
		default:
			r.Status, r.Error = StatusFailed, err.Error()
			r.RetryAt = a.cfg.Clock().Add(a.backoff(ev.Attempts + 1))
		}
		out = append(out, r)
	}
	return out
}

// isolate applies each group in a batch of its own.
func (a *Applier) isolate(ctx context.Context, groups []group) error {
	var errs []error
	for _, g := range groups {
		b, evs, err := a.store.ClaimEventIDs(ctx, eventIDs(g.evs))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b == nil {
			continue // finished or held elsewhere meanwhile
		}
		errs = append(errs, a.apply(ctx, b, evs, true))
	}
	return errors.Join(errs...)
}

// recordFailure records that Postgres refused what evs caused: each event
// counts an attempt and is retried after its backoff, or is dead.
func (a *Applier) recordFailure(ctx context.Context, evs []ClaimedEvent, cause error) error {
	b, evs, err := a.store.ClaimEventIDs(ctx, eventIDs(evs))
	if err != nil || b == nil {
		return err
	}
	g := group{evs: evs}
	if len(evs) > 0 {
		g.subID = evs[0].SubscriptionID.String
	}
	o := outcome{err: fmt.Errorf("write refused: %w", cause)}
	if err := b.Write(ctx, BatchWrite{Events: a.results(g, o)}); err != nil {
		b.Rollback()
		return err
	}
	if err := b.Commit(); err != nil {
		return err
	}
	a.report(g, o)
	return nil
}

func eventIDs(evs []ClaimedEvent) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}

// report counts and logs a committed group's events.
func (a *Applier) report(g group, o outcome) {
	var p permanent
	for _, ev := range g.evs {
		err := o.errOf(ev)
		switch {
		case err == nil:
			a.observe(ev, o.label)
			a.log.Debug("event applied", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID, "outcome", o.label)
		case errors.As(err, &p):
			a.log.Warn("event ignored", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID, "reason", err.Error())
			a.observe(ev, "ignored")
		case ev.Attempts+1 >= a.cfg.MaxAttempts:
			a.log.Error("event dead after retries", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID,
				"attempts", ev.Attempts+1, "err", err.Error())
			a.observe(ev, "dead")
		default:
			a.log.Warn("event apply failed, will retry", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID,
				"attempts", ev.Attempts+1, "err", err.Error())
			if a.cfg.Metrics != nil {
				a.cfg.Metrics.EventsApplied.WithLabelValues(ev.Type, "retry").Inc()
			}
		}
	}
}
