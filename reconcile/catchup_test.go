package reconcile_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// fakeClock is a settable clock shared by the fake and the reconciler.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// useClock puts the fake on a clock stopped at now.
func (f *recFixture) useClock(now time.Time) *fakeClock {
	c := &fakeClock{now: now}
	f.fake.SetClock(c.Now)
	return c
}

// subscribe creates a customer and a subscription for user, with events.
func (f *recFixture) subscribe(t *testing.T, user, price string) string {
	t.Helper()
	c, err := f.fake.CreateCustomer(stripefake.CustomerParams{Metadata: map[string]string{"user_id": user}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.fake.CreateSubscription(stripefake.SubscriptionParams{Customer: c.ID, Price: price})
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// handledEvents returns the ids of the fake's events the daemon handles,
// about subscription sub ("" for all).
func (f *recFixture) handledEvents(sub string) []string {
	var out []string
	for _, ev := range f.fake.Events() {
		if reconcile.Handled(string(ev.Type)) && (sub == "" || reconcile.SubscriptionIDOf(ev) == sub) {
			out = append(out, ev.ID)
		}
	}
	return out
}

// deliver stores events in the inbox as the webhook handler does.
func (f *recFixture) deliver(t *testing.T, ids []string) {
	t.Helper()
	for _, id := range ids {
		ev, err := f.fake.Event(id)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(ev)
		if _, err := f.db.InsertEvent(context.Background(), reconcile.NewEvent{
			ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0), Source: reconcile.SourceWebhook,
			Status: reconcile.StatusPending, SubscriptionID: reconcile.SubscriptionIDOf(ev), Payload: body,
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// catchUpReconciler runs on clock and applies what it inserts.
func (f *recFixture) catchUpReconciler(t *testing.T, clock func() time.Time, lookback time.Duration) *reconcile.Reconciler {
	t.Helper()
	applier := reconcile.NewApplier(reconcile.ApplierConfig{Metrics: f.metrics}, f.db, f.client(t, stripeapi.Config{}), f.resolver)
	return f.reconciler(t, reconcile.Config{Clock: clock, EventsLookback: lookback, ApplyEvents: applier.Drain}, stripeapi.Config{})
}

func (f *recFixture) inboxCount(t *testing.T, source string) int {
	t.Helper()
	var n int
	if err := f.x.Get(&n, `SELECT count(*) FROM stripe_webhook_events WHERE source = $1`, source); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCatchUpFindsMissedEventsSameSecond(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	clock := f.useClock(t0)
	rec := f.catchUpReconciler(t, clock.Now, 0)

	a := f.subscribe(t, "user_a", f.monthly)
	b := f.subscribe(t, "user_b", f.annual)
	c := f.subscribe(t, "user_c", f.monthly)
	f.deliver(t, f.handledEvents(a)) // the webhook got a's events only
	missed := append(f.handledEvents(b), f.handledEvents(c)...)
	if len(missed) < 4 {
		t.Fatalf("only %d events for b and c", len(missed))
	}

	dry := f.run(t, rec, reconcile.JobEvents, true)
	if dry.Counts.Drifted != len(missed) || dry.Counts.Fixed != 0 || dry.Counts.Scanned != len(f.handledEvents("")) {
		t.Fatalf("dry run counts %+v, want %d drifted", dry.Counts, len(missed))
	}
	if n := f.inboxCount(t, reconcile.SourceCatchup); n != 0 {
		t.Fatalf("dry run inserted %d events", n)
	}
	if _, err := f.db.Cursor(ctx, reconcile.JobEvents); err == nil {
		t.Fatal("dry run set the cursor")
	}

	rep := f.run(t, rec, reconcile.JobEvents, false)
	if rep.Counts.Drifted != len(missed) || rep.Counts.Fixed != len(missed) {
		t.Fatalf("catch-up counts %+v, want %d drifted and fixed", rep.Counts, len(missed))
	}
	for _, id := range missed {
		ev, err := f.db.GetEvent(ctx, id)
		if err != nil || ev.Source != reconcile.SourceCatchup || ev.Status != reconcile.StatusApplied {
			t.Fatalf("event %s: %+v %v", id, ev, err)
		}
	}
	if cur, err := f.db.Cursor(ctx, reconcile.JobEvents); err != nil || !cur.Equal(t0) {
		t.Fatalf("cursor %v (%v), want the newest event time %v", cur, err, t0)
	}
	drift := f.drift(t, rep.RunID)
	if !slices.Equal(drift[b], slices.Repeat([]string{"missing_event"}, len(f.handledEvents(b)))) {
		t.Fatalf("drift of %s: %v", b, drift[b])
	}

	// More changes in the very same second as the cursor.
	if _, err := f.fake.UpdateSubscriptionPrice(b, f.monthly); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fake.CancelSubscription(c); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, id := range f.handledEvents("") {
		known[id] = true
	}
	for _, id := range append(f.handledEvents(a), missed...) {
		delete(known, id)
	}
	again := f.run(t, rec, reconcile.JobEvents, false)
	if again.Counts.Drifted != len(known) || again.Counts.Fixed != len(known) || len(known) < 2 {
		t.Fatalf("same-second catch-up counts %+v, want the %d new events", again.Counts, len(known))
	}
	for id := range known {
		if ev, err := f.db.GetEvent(ctx, id); err != nil || ev.Status != reconcile.StatusApplied {
			t.Fatalf("same-second event %s: %+v %v", id, ev, err)
		}
	}
	for _, id := range []string{b, c} {
		row, err := f.db.GetSubscription(ctx, id)
		sub, _ := f.fake.Subscription(id)
		want, _ := f.resolver.Desired(ctx, sub, time.Now(), false)
		if err != nil || len(reconcile.Diff(row, want)) > 0 {
			t.Fatalf("row %s after catch-up: %v %v", id, reconcile.Diff(row, want), err)
		}
	}

	// An hour later, one more subscription: only its events are new.
	clock.Set(t0.Add(time.Hour))
	d := f.subscribe(t, "user_d", f.annual)
	later := f.run(t, rec, reconcile.JobEvents, false)
	if later.Counts.Drifted != len(f.handledEvents(d)) {
		t.Fatalf("later catch-up counts %+v", later.Counts)
	}
	if got := testutil.ToFloat64(f.metrics.EventsCursorAge); got != 0 {
		t.Fatalf("cursor age %v, want 0 (cursor at the newest event)", got)
	}
}

func TestCatchUpFirstRunLooksBack(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	t0 := time.Now().UTC().Truncate(time.Second)
	clock := f.useClock(t0.Add(-3 * time.Hour))
	old := f.subscribe(t, "user_old", f.monthly)
	clock.Set(t0.Add(-30 * time.Minute))
	recent := f.subscribe(t, "user_recent", f.monthly)
	clock.Set(t0)
	rep := f.run(t, f.catchUpReconciler(t, clock.Now, 2*time.Hour), reconcile.JobEvents, false)
	if rep.Counts.Fixed != len(f.handledEvents(recent)) || rep.Counts.Scanned != rep.Counts.Fixed {
		t.Fatalf("counts %+v", rep.Counts)
	}
	if _, err := f.db.GetSubscription(context.Background(), old); err == nil {
		t.Fatal("an event older than the lookback was caught up")
	}
}

func TestCatchUpExpiredCursorRunsFullSweep(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	ctx := context.Background()
	f.seed(t, 40, 90*24*time.Hour) // no events: older than Stripe's retention
	if err := f.db.SetCursor(ctx, reconcile.JobEvents, time.Now().Add(-40*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rec := f.catchUpReconciler(t, nil, 0)
	start := time.Now()
	rep := f.run(t, rec, reconcile.JobEvents, false)
	if got := testutil.ToFloat64(f.metrics.EventsCursorExpired); got != 1 {
		t.Fatalf("cursor expired counter = %v", got)
	}
	var sweeps []db.Run
	f.x.Select(&sweeps, `SELECT id, job, dry_run, started_at, finished_at, status, scanned, drifted, fixed, errors, error
		FROM reconcile_runs WHERE job = 'subscriptions'`)
	if len(sweeps) != 1 || sweeps[0].Status != reconcile.RunSucceeded || sweeps[0].Fixed != 40 {
		t.Fatalf("sweeps %+v; events run %+v", sweeps, rep)
	}
	f.assertTableMatchesStripe(t)
	cur, err := f.db.Cursor(ctx, reconcile.JobEvents)
	if err != nil || cur.Before(start.Add(-11*time.Minute)) {
		t.Fatalf("cursor %v (%v) not moved past the sweep", cur, err)
	}
	if age := testutil.ToFloat64(f.metrics.EventsCursorAge); age > 11*60 {
		t.Fatalf("cursor age %v after the sweep", age)
	}
}

func TestCatchUpEventPayloadDecodes(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	ctx := context.Background()
	sub := f.subscribe(t, "user_p", f.annual)
	f.run(t, f.reconciler(t, reconcile.Config{}, stripeapi.Config{}), reconcile.JobEvents, false)
	for _, id := range f.handledEvents(sub) {
		ev, err := f.db.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := reconcile.DecodeEvent(ev.Payload)
		if err != nil || reconcile.SubscriptionIDOf(parsed) != sub || ev.SubscriptionID.String != sub {
			t.Fatalf("stored payload of %s: %v", id, err)
		}
		var s stripe.Subscription
		if parsed.Type == "customer.subscription.created" {
			if err := json.Unmarshal(parsed.Data.Raw, &s); err != nil || s.ID != sub {
				t.Fatalf("payload object: %v %q", err, s.ID)
			}
		}
		if ev.Status != reconcile.StatusPending {
			t.Fatalf("without ApplyEvents the event waits for the applier, got %s", ev.Status)
		}
	}
}

// A running serve process wakes on NOTIFY and may apply the events a
// `subsyncd reconcile` inserted before that command drains them itself:
// fixed must still count every one of them, and only them.
func TestCatchUpCountsEventsAppliedByAnotherProcess(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	t0 := time.Now().UTC().Truncate(time.Second)
	clock := f.useClock(t0)
	a := f.subscribe(t, "user_a", f.monthly)
	b := f.subscribe(t, "user_b", f.annual)
	missed := append(f.handledEvents(a), f.handledEvents(b)...)

	other := reconcile.NewApplier(reconcile.ApplierConfig{Metrics: f.metrics}, f.db, f.client(t, stripeapi.Config{}), f.resolver)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // the other process's workers, applying whatever is due
		defer close(done)
		for ctx.Err() == nil {
			other.Drain(ctx)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	nothing := func(context.Context) (int, error) { return 0, nil } // this process claims none
	rec := f.reconciler(t, reconcile.Config{Clock: clock.Now, ApplyEvents: nothing}, stripeapi.Config{})
	rep := f.run(t, rec, reconcile.JobEvents, false)
	if rep.Counts.Drifted != len(missed) || rep.Counts.Fixed != len(missed) {
		t.Fatalf("counts %+v, want %d drifted and fixed", rep.Counts, len(missed))
	}
}
