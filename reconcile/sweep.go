package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/stripeapi"
)

// sweep lists every subscription Stripe has (canceled ones included) and
// compares each page with the matching rows: a missing or differing row is
// recorded as drift and, unless dry, rewritten through the guarded upsert.
// Rows whose subscription Stripe did not list are reported, never deleted.
// Pages are walked by several workers over slices of the created range;
// memory holds a few pages, whatever the size of the account.
func (r *Reconciler) sweep(ctx context.Context, rn *run) error {
	seen, err := r.store.NewSeenSet(ctx)
	if err != nil {
		return err
	}
	defer seen.Close(ctx)
	sw := &sweeper{r: r, rn: rn, writers: make(chan struct{}, r.cfg.SweepWriters)}
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sw.seen = startSeenWriter(ctx, seen, cancel)
	err = sw.list(ctx)
	if werr := sw.seen.close(); werr != nil && (err == nil || errors.Is(err, context.Canceled)) {
		err = werr // the writer's failure is what cancelled the listing
	}
	if err != nil {
		return err
	}
	listed := time.Since(start)
	if err := sw.reportUnseen(ctx, seen); err != nil {
		return err
	}
	if m := r.cfg.Metrics; m != nil {
		m.ReconcileUnlinked.Set(float64(sw.unlinked.Load()))
	}
	rn.log.Info("subscription sweep done", "pages", sw.pages.Load(), "unlinked", sw.unlinked.Load(),
		"list_seconds", listed.Seconds(), "unseen_seconds", (time.Since(start) - listed).Seconds())
	return nil
}

// sweeper is the state of one sweep.
type sweeper struct {
	r        *Reconciler
	rn       *run
	seen     *seenWriter
	writers  chan struct{} // a slot per page repair writing (see Config.SweepWriters)
	pages    atomic.Int64
	unlinked atomic.Int64
}

// list walks the whole created range with the configured number of
// workers and processes every page; it returns the first error.
func (sw *sweeper) list(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// An hour past now covers a Stripe clock ahead of ours.
	hi := sw.r.cfg.Clock().Add(time.Hour).Unix()
	sl := newSlicer(firstSlices(sw.r.cfg.SweepEpoch.Unix(), hi))
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err })
		sl.abort()
		cancel()
	}
	for range sw.r.cfg.SweepWorkers {
		wg.Go(func() {
			for {
				cur, ok := sl.next()
				if !ok {
					return
				}
				err := sw.walk(ctx, sl, cur)
				sl.done()
				if err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// walk follows one slice's cursor page by page, letting the slicer cut off
// parts for idle workers as it goes.
func (sw *sweeper) walk(ctx context.Context, sl *slicer, cur createdSlice) error {
	for {
		pageAt := sw.r.cfg.Clock()
		subs, more, err := sw.r.stripe.ListSubscriptionsPageSlim(lowPriority(ctx), stripeapi.SubscriptionPageQuery{
			Status:        "all",
			CreatedGTE:    time.Unix(cur.lo, 0),
			CreatedLT:     time.Unix(cur.hi, 0),
			StartingAfter: cur.after,
			Limit:         sw.r.cfg.PageSize,
			Planned:       sw.r.resolver.planned,
		})
		if err != nil {
			return err
		}
		sw.pages.Add(1)
		if err := sw.page(ctx, subs, pageAt); err != nil {
			return err
		}
		if !more || len(subs) == 0 {
			return nil
		}
		last := subs[len(subs)-1]
		cur = sl.advance(cur, subs[0].Created, last.Created, last.ID)
	}
}

// page compares one page of subscriptions, listed at pageAt, with their
// rows (loaded in one query) and, unless the run is dry, repairs the
// drifted ones (see repair).
func (sw *sweeper) page(ctx context.Context, subs []*stripe.Subscription, pageAt time.Time) error {
	if len(subs) == 0 {
		return nil
	}
	rn := sw.rn
	ids := make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
	}
	sw.seen.add(ids)
	rows, err := sw.r.store.SubscriptionsByID(ctx, ids)
	if err != nil {
		return err
	}
	var found []drifted
	for _, sub := range subs {
		row, exists := rows[sub.ID]
		if exists && row.StripeStateAt.After(pageAt) {
			continue // a webhook already wrote a newer state
		}
		d, err := sw.compare(ctx, sub, row, exists, pageAt)
		if err != nil {
			return err
		}
		if d != nil {
			found = append(found, *d)
		}
	}
	if err := sw.repair(ctx, found); err != nil {
		return err
	}
	var drift []Drift
	for _, d := range found {
		if d.stale {
			continue
		}
		rn.drifted.Add(1)
		drift = append(drift, d.fields...)
		id := d.want.StripeSubscriptionID
		if d.exists {
			rn.log.Info("subscription drifted", "subscription_id", id, "fields", fieldNames(d.fields), "dry_run", rn.dry)
		} else {
			rn.log.Debug("subscription row missing", "subscription_id", id, "dry_run", rn.dry)
		}
	}
	rn.scan(len(subs))
	if !rn.dry {
		sw.r.countDrift(rn, drift) // recorded by the repair
		return nil
	}
	return sw.r.recordDrift(ctx, rn, drift)
}

// drifted is a subscription whose row is missing or differs.
type drifted struct {
	want   Subscription
	exists bool
	fields []Drift
	stale  bool // a newer write came first: nothing to repair after all
}

// compare computes the desired row of sub and returns its drift, or nil
// when the row is right.
func (sw *sweeper) compare(ctx context.Context, sub *stripe.Subscription, row Subscription, exists bool, pageAt time.Time) (*drifted, error) {
	rn := sw.rn
	want, err := sw.r.resolver.Desired(lowPriority(ctx), sub, pageAt, exists && row.UserID != nil)
	if err != nil {
		if errors.Is(err, ErrNoItems) || errors.Is(err, stripeapi.ErrNotFound) {
			rn.errors.Add(1)
			rn.log.Warn("subscription cannot be compared; skipped", "subscription_id", sub.ID, "err", err.Error())
			return nil, nil
		}
		return nil, fmt.Errorf("desired row of %s: %w", sub.ID, err)
	}
	if want.UserID == nil && (!exists || row.UserID == nil) {
		sw.unlinked.Add(1)
	}
	d := &drifted{want: want, exists: exists}
	if !exists {
		d.fields = []Drift{{SubscriptionID: sub.ID, Field: FieldMissingInDB, StripeValue: want.Status}}
		return d, nil
	}
	for _, f := range Diff(row, want) {
		d.fields = append(d.fields, Drift{SubscriptionID: sub.ID, Field: f.Field, DBValue: f.Old, StripeValue: f.New})
	}
	if len(d.fields) == 0 {
		return nil, nil
	}
	return d, nil
}

// repair writes the desired rows of a page's drifted subscriptions through
// the guarded upsert and records their drift, once one of the sweep's
// writer slots is free; nothing in a dry run.
func (sw *sweeper) repair(ctx context.Context, found []drifted) error {
	if sw.rn.dry || len(found) == 0 {
		return nil
	}
	rows := make([]Subscription, len(found))
	drift := make([][]Drift, len(found))
	for i, d := range found {
		rows[i], drift[i] = d.want, d.fields
	}
	select {
	case sw.writers <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	res, err := sw.r.store.RepairSubscriptions(ctx, sw.rn.id, rows, drift)
	<-sw.writers
	if err != nil {
		return fmt.Errorf("repair %d subscriptions: %w", len(rows), err)
	}
	for i, r := range res {
		switch {
		case r.Stale:
			found[i].stale = true
			sw.rn.log.Debug("drift overtaken by a newer write; nothing to repair", "subscription_id", rows[i].StripeSubscriptionID)
		case r.Inserted || len(r.Changes) > 0:
			sw.rn.fixed.Add(1)
		}
	}
	return nil
}

func fieldNames(drift []Drift) []string {
	out := make([]string, len(drift))
	for i, d := range drift {
		out[i] = d.Field
	}
	return out
}

// reportUnseen records every row whose subscription the listing did not
// return. Stripe never deletes a subscription, so such a row belongs to
// another account or mode, or was made up; an operator decides.
func (sw *sweeper) reportUnseen(ctx context.Context, seen SeenSet) error {
	rn := sw.rn
	var drift []Drift
	flush := func() error {
		err := sw.r.recordDrift(ctx, rn, drift)
		drift = drift[:0]
		return err
	}
	err := seen.EachUnseen(ctx, func(row Subscription) error {
		rn.drifted.Add(1)
		rn.log.Warn("row has no subscription in Stripe; kept", "subscription_id", row.StripeSubscriptionID,
			"status", row.Status)
		drift = append(drift, Drift{SubscriptionID: row.StripeSubscriptionID, Field: FieldMissingInStripe, DBValue: row.Status})
		if len(drift) == 100 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return err
}

// seenWriter records the listed ids in the seen set off the workers' path:
// one goroutine writes whatever pages are queued in one statement, so the
// set's single connection never holds the workers up. The queue is
// bounded, and so is memory.
type seenWriter struct {
	ch   chan []string
	done chan struct{}
	err  error // the first failure, read after done
}

// startSeenWriter starts the writer; a failure cancels the sweep through
// fail.
func startSeenWriter(ctx context.Context, seen SeenSet, fail context.CancelCauseFunc) *seenWriter {
	w := &seenWriter{ch: make(chan []string, 32), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ids := range w.ch {
			batch := ids
		more:
			for len(batch) < 2000 {
				select {
				case next, ok := <-w.ch:
					if !ok {
						break more
					}
					batch = append(batch, next...)
				default:
					break more
				}
			}
			if w.err != nil {
				continue // keep draining so that no worker blocks
			}
			if err := seen.Add(ctx, batch); err != nil {
				w.err = err
				fail(err)
			}
		}
	}()
	return w
}

// add queues the ids of one page.
func (w *seenWriter) add(ids []string) { w.ch <- ids }

// close waits until every queued id is written and returns the first error.
func (w *seenWriter) close() error {
	close(w.ch)
	<-w.done
	return w.err
}
