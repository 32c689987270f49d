package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// Drift fields the reconcilers record besides Diff's tracked fields.
const (
	FieldMissingEvent    = "missing_event"     // an event Stripe listed that the inbox lacked
	FieldMissingInDB     = "missing_in_db"     // a subscription without a row
	FieldMissingInStripe = "missing_in_stripe" // a row whose subscription Stripe does not list
)

// catchUpBatch is how many listed events are checked against the inbox at
// once: one Stripe page.
const catchUpBatch = 100

// catchUp lists the handled events created since the cursor (minus an
// overlap, since events can become listable late and several share a
// second), puts those the inbox lacks into it with source catchup, and
// advances the cursor to the newest event seen, or to the start of the
// listing minus the overlap when that is later (a quiet account's cursor
// must not age towards Stripe's retention). A cursor older than Stripe's
// retention means events were lost for good: a full sweep repairs the table
// instead, and the listing starts where the sweep started.
func (r *Reconciler) catchUp(ctx context.Context, rn *run) error {
	now := r.cfg.Clock()
	var since time.Time
	cursor, err := r.store.Cursor(ctx, JobEvents)
	switch {
	case errors.Is(err, ErrNotFound):
		since = now.Add(-r.cfg.EventsLookback)
		rn.log.Info("first catch-up: looking back", "since", since, "lookback", r.cfg.EventsLookback.String())
	case err != nil:
		return err
	default:
		r.setCursorAge(now, cursor)
		since = cursor.Add(-r.cfg.EventsOverlap)
		if age := now.Sub(cursor); age > r.cfg.EventRetention {
			rn.log.Warn("events cursor is older than Stripe keeps events: running a full subscription sweep instead",
				"cursor", cursor, "age_hours", int(age.Hours()), "retention_hours", int(r.cfg.EventRetention.Hours()))
			if m := r.cfg.Metrics; m != nil {
				m.EventsCursorExpired.Inc()
			}
			sweepStart := r.cfg.Clock()
			rep, err := r.Run(ctx, JobSubscriptions, Options{DryRun: rn.dry})
			switch {
			case err != nil:
				return fmt.Errorf("sweep for expired cursor: %w", err)
			case rep.Skipped: // another replica sweeps: list all Stripe still has
				since = now.Add(-r.cfg.EventRetention)
			default:
				since = sweepStart.Add(-r.cfg.EventsOverlap)
			}
		}
	}

	listStart := r.cfg.Clock()
	var newest time.Time
	batch := make([]*stripe.Event, 0, catchUpBatch)
	flush := func() error {
		err := r.catchUpBatch(ctx, rn, batch)
		batch = batch[:0]
		return err
	}
	err = r.stripe.ListEvents(lowPriority(ctx), HandledTypes, since, func(ev *stripe.Event) error {
		if !Handled(string(ev.Type)) {
			return nil // asked only for handled types; stripe-mock answers others
		}
		if at := time.Unix(ev.Created, 0).UTC(); at.After(newest) {
			newest = at
		}
		batch = append(batch, ev)
		if len(batch) == catchUpBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("catch up events since %s: %w", since.Format(time.RFC3339), err)
	}
	if rn.dry {
		return nil
	}
	if err := r.applyCaughtUp(ctx, rn); err != nil {
		return err
	}
	next := listStart.Add(-r.cfg.EventsOverlap)
	if newest.After(next) {
		next = newest
	}
	stored, err := r.store.AdvanceCursor(ctx, JobEvents, next)
	if err != nil {
		return err
	}
	r.setCursorAge(r.cfg.Clock(), stored)
	rn.log.Debug("events cursor advanced", "cursor", stored)
	return nil
}

// catchUpBatch stores the events of batch the inbox lacks (in a dry run,
// only finds them) and records each as drift.
func (r *Reconciler) catchUpBatch(ctx context.Context, rn *run, batch []*stripe.Event) error {
	if len(batch) == 0 {
		return nil
	}
	rn.scan(len(batch))
	byID := make(map[string]NewEvent, len(batch))
	evs := make([]NewEvent, 0, len(batch))
	for _, ev := range batch {
		if _, dup := byID[ev.ID]; dup {
			continue
		}
		body, err := json.Marshal(ev)
		var env Envelope
		if err == nil {
			env, err = ReadEnvelope(body)
		}
		if err != nil {
			rn.errors.Add(1)
			rn.log.Warn("listed event unreadable; skipped", "event_id", ev.ID, "type", string(ev.Type), "err", err.Error())
			continue
		}
		ne := NewEvent{
			ID: ev.ID, Type: string(ev.Type), APIVersion: clipN(ev.APIVersion, 64),
			Created: time.Unix(ev.Created, 0).UTC(), Livemode: ev.Livemode,
			Source: SourceCatchup, Status: StatusPending,
			SubscriptionID: env.SubscriptionID(), Payload: body,
		}
		byID[ev.ID] = ne
		evs = append(evs, ne)
	}
	var missing []string
	if rn.dry {
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		stored, err := r.store.EventIDsStored(ctx, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !stored[id] {
				missing = append(missing, id)
			}
		}
	} else {
		var err error
		if missing, err = r.store.InsertEvents(ctx, evs); err != nil {
			return err
		}
		rn.fixed.Add(int64(len(missing))) // queued; recounted as applied when ApplyEvents runs
		rn.mu.Lock()
		rn.inserted = append(rn.inserted, missing...)
		rn.mu.Unlock()
	}
	drift := make([]Drift, 0, len(missing))
	for _, id := range missing {
		e := byID[id]
		drift = append(drift, Drift{SubscriptionID: e.SubscriptionID, Field: FieldMissingEvent, StripeValue: e.ID + " " + e.Type})
		rn.log.Info("missed event found", "event_id", e.ID, "type", e.Type, "subscription_id", e.SubscriptionID,
			"created", e.Created, "dry_run", rn.dry)
	}
	rn.drifted.Add(int64(len(missing)))
	return r.recordDrift(ctx, rn, drift)
}

// applyCaughtUp applies the inserted events now when the configuration asks
// to, and counts those applied as fixed. Another process's workers (a
// running serve, woken by NOTIFY) may claim some of them first, so it waits,
// up to settleTimeout, until none of this run's events is still waiting,
// and counts exactly those.
func (r *Reconciler) applyCaughtUp(ctx context.Context, rn *run) error {
	rn.mu.Lock()
	ids := rn.inserted
	rn.mu.Unlock()
	if r.cfg.ApplyEvents == nil || len(ids) == 0 {
		return nil
	}
	if _, err := r.cfg.ApplyEvents(ctx); err != nil {
		return fmt.Errorf("apply caught-up events: %w", err)
	}
	deadline := time.Now().Add(settleTimeout) // a wall-clock wait, whatever the run's clock
	for {
		applied, waiting, err := r.store.EventsSettled(ctx, ids)
		if err != nil {
			return err
		}
		if waiting == 0 || !time.Now().Before(deadline) {
			rn.fixed.Store(int64(applied))
			if waiting > 0 {
				rn.log.Warn("caught-up events still waiting to be applied", "waiting", waiting)
			}
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if _, err := r.cfg.ApplyEvents(ctx); err != nil { // retries that came due
			return fmt.Errorf("apply caught-up events: %w", err)
		}
	}
}

// settleTimeout bounds how long a catch-up run waits for its events to be
// applied before it reports what was applied so far.
const settleTimeout = time.Minute

func (r *Reconciler) setCursorAge(now, cursor time.Time) {
	if m := r.cfg.Metrics; m != nil {
		m.EventsCursorAge.Set(max(0, now.Sub(cursor).Seconds()))
	}
}

func clipN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
