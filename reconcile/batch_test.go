package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// payloadEvent is a customer.subscription.updated event carrying the whole
// subscription, as Stripe sends it, with the given state.
func payloadEvent(id, sub, status, price string, created time.Time, periodEnd int64) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,
"type":"customer.subscription.updated","livemode":false,"pending_webhooks":1,
"data":{"object":{"id":%q,"object":"subscription","customer":"cus_%s","status":%q,
"created":%d,"current_period_start":%d,"current_period_end":%d,"cancel_at_period_end":false,
"metadata":{"user_id":"user-%s"},"items":{"object":"list","data":[{"id":"si_%s","object":"subscription_item",
"price":{"id":%q,"object":"price","recurring":{"interval":"year","interval_count":1}}}]}}}}`,
		id, created.Unix(), sub, sub, status, created.Unix()-86400, created.Unix()-86400, periodEnd, sub, sub, price)
}

// store puts a raw event in the inbox as the webhook handler does; a second
// delivery of one id stores nothing.
func store(t *testing.T, d *db.DB, body []byte) {
	t.Helper()
	ev, err := reconcile.DecodeEvent(body)
	if err != nil {
		t.Fatalf("event does not decode: %v\n%s", err, body)
	}
	if _, err := d.InsertEvent(context.Background(), reconcile.NewEvent{
		ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0), Source: reconcile.SourceWebhook,
		Status: reconcile.StatusPending, SubscriptionID: reconcile.SubscriptionIDOf(ev), Payload: body,
	}); err != nil {
		t.Fatal(err)
	}
}

type eventState struct {
	Status   string `db:"status"`
	Attempts int    `db:"attempts"`
	Error    string `db:"error"`
}

func eventStates(t *testing.T, d *db.DB) map[string]eventState {
	t.Helper()
	var rows []struct {
		ID string `db:"id"`
		eventState
	}
	if err := d.X().Select(&rows, `SELECT id, status, attempts, coalesce(last_error, '') AS error FROM stripe_webhook_events`); err != nil {
		t.Fatal(err)
	}
	out := map[string]eventState{}
	for _, r := range rows {
		out[r.ID] = r.eventState
	}
	return out
}

// One batch (payload mode) holds good events of many subscriptions, several
// events of one subscription (and, among them, one whose object cannot be
// read), a second delivery of one event, a payload that cannot be read, an invoice about a subscription Stripe does not know
// (a 404 on refetch) and an event whose row Postgres cannot store. Every
// applicable event is applied, once; the unreadable and the unknown are
// ignored with their reason; the one that cannot be stored fails alone and
// is retried, then dead, without holding back its neighbours.
func TestBatchAppliesEverythingApplicableOnce(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	price := f.prices["maquina_ANUAL"]
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	end := t0.Add(365 * 24 * time.Hour).Unix()
	for i := range 30 {
		store(t, f.db, payloadEvent(fmt.Sprintf("evt_good_%d", i), fmt.Sprintf("sub_b%d", i), "active", price, t0, end))
	}
	for i, status := range []string{"trialing", "past_due", "active", "canceled"} { // one subscription, four states
		store(t, f.db, payloadEvent(fmt.Sprintf("evt_many_%d", i), "sub_many", status, price, t0.Add(time.Duration(i)*time.Minute), end))
	}
	store(t, f.db, payloadEvent("evt_good_3", "sub_b3", "active", price, t0, end)) // a second delivery
	store(t, f.db, []byte(`{"id":"evt_many_poison","object":"event","type":"customer.subscription.updated","created":`+
		fmt.Sprint(t0.Add(10*time.Minute).Unix())+`,"data":{"object":{"id":"sub_many","object":"subscription","items":"garbage"}}}`))
	store(t, f.db, []byte(`{"id":"evt_poison","object":"event","type":"customer.subscription.updated","created":`+
		fmt.Sprint(t0.Unix())+`,"data":{"object":{"id":"sub_poison","object":"subscription","items":"garbage"}}}`))
	store(t, f.db, []byte(`{"id":"evt_unknown","object":"event","type":"invoice.paid","created":`+fmt.Sprint(t0.Unix())+
		`,"data":{"object":{"id":"in_1","object":"invoice","subscription":"sub_nobody_knows"}}}`))
	store(t, f.db, payloadEvent("evt_unstorable", "sub_far", "active", price, t0, 253402300800)) // a period ending in year 10000

	a := f.applier(t, reconcile.ModePayload) // MaxAttempts 3, millisecond backoff
	for range 10 {
		drain(t, a)
		time.Sleep(10 * time.Millisecond) // let the failed event's backoff pass
	}

	st := eventStates(t, f.db)
	for id, s := range st {
		var want string
		switch id {
		case "evt_poison", "evt_unknown", "evt_many_poison":
			want = reconcile.StatusIgnored
		case "evt_unstorable":
			want = reconcile.StatusDead
		default:
			want = reconcile.StatusApplied
		}
		if s.Status != want {
			t.Errorf("%s: %s (%s), want %s", id, s.Status, s.Error, want)
		}
		if want == reconcile.StatusApplied && s.Attempts != 1 {
			t.Errorf("%s applied after %d attempts, want 1", id, s.Attempts)
		}
	}
	if len(st) != 30+4+4 {
		t.Errorf("%d events stored, want %d (the second delivery stores nothing)", len(st), 30+4+4)
	}
	if s := st["evt_unstorable"]; s.Attempts != 3 || !strings.Contains(s.Error, "write refused") {
		t.Errorf("the unstorable event was tried %d times (%s), want 3 (MaxAttempts), refused", s.Attempts, s.Error)
	}
	if s := st["evt_unknown"]; !strings.Contains(s.Error, "not found in Stripe") {
		t.Errorf("the unknown subscription's event was ignored for %q", s.Error)
	}
	if r := f.row(t, "sub_many"); r.Status != "canceled" {
		t.Errorf("sub_many is %s, want canceled (its newest readable event; an unreadable one beside it is ignored alone)", r.Status)
	}
	for i := range 30 {
		if r := f.row(t, fmt.Sprintf("sub_b%d", i)); r.Status != "active" || r.PlanID == nil || *r.PlanID != "maquina" {
			t.Errorf("sub_b%d: %+v", i, r)
		}
	}
	if _, err := f.db.GetSubscription(context.Background(), "sub_far"); err == nil {
		t.Error("the unstorable subscription has a row")
	}
	applied := testutil.ToFloat64(f.metrics.EventsApplied.WithLabelValues("customer.subscription.updated", "applied"))
	if applied != 34 {
		t.Errorf("events_applied_total{outcome=applied} = %g, want 34", applied)
	}
}

// The guard holds inside a batch: the older and the newer state of one
// subscription in one batch leave the newer, whichever was stored first;
// a batch holding only an older state than the row changes nothing.
func TestBatchKeepsTheNewerState(t *testing.T) {
	t.Parallel()
	for _, newerFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("newer stored first: ", newerFirst), func(t *testing.T) {
			t.Parallel()
			f := newApplyFixture(t)
			price := f.prices["maquina_ANUAL"]
			t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
			end := t0.Add(365 * 24 * time.Hour).Unix()
			older := payloadEvent("evt_older", "sub_g", "past_due", price, t0, end)
			newer := payloadEvent("evt_newer", "sub_g", "canceled", price, t0.Add(time.Second), end)
			if newerFirst {
				store(t, f.db, newer)
				store(t, f.db, older)
			} else {
				store(t, f.db, older)
				store(t, f.db, newer)
			}
			a := f.applier(t, reconcile.ModePayload)
			if n := drain(t, a); n != 2 {
				t.Fatalf("applied %d events, want 2", n)
			}
			if r := f.row(t, "sub_g"); r.Status != "canceled" || !r.StripeStateAt.Equal(t0.Add(time.Second)) {
				t.Fatalf("row is %s as of %s, want canceled as of the newer event", r.Status, r.StripeStateAt)
			}
			store(t, f.db, payloadEvent("evt_oldest", "sub_g", "active", price, t0.Add(-time.Minute), end))
			drain(t, a)
			if r := f.row(t, "sub_g"); r.Status != "canceled" {
				t.Fatalf("an older state overwrote the row: %s", r.Status)
			}
			if st := eventStates(t, f.db)["evt_oldest"]; st.Status != reconcile.StatusApplied {
				t.Fatalf("the stale event ended %s, want applied (as stale)", st.Status)
			}
			stale := testutil.ToFloat64(f.metrics.EventsApplied.WithLabelValues("customer.subscription.updated", "stale"))
			if stale != 1 {
				t.Fatalf("events_applied_total{outcome=stale} = %g, want 1", stale)
			}
		})
	}
}

// Two appliers with connections of their own (as two replicas have) drain
// one inbox of 1,200 events crowded on 24 subscriptions, their batches
// contending for the same subscriptions' locks: no event is applied twice
// or retried (no deadlock, no failure), and every row ends at its newest
// event's state.
func TestTwoAppliersShareOneInbox(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	ctx := context.Background()
	open := func() (*db.DB, *metrics.Metrics) {
		m := metrics.New(prometheus.NewRegistry(), false)
		d, err := db.Open(ctx, db.Config{URL: url, Metrics: m, CacheKeyTemplate: "features:{user_id}"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d, m
	}
	d1, m1 := open()
	if _, err := d1.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	d2, m2 := open()
	plans, err := reconcile.NewPlans(reconcile.PlanEntry{Price: "price_load", Plan: "maquina", Period: reconcile.PeriodAnnual})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	const events, subs = 1200, 24
	statuses := []string{"active", "past_due", "canceled", "trialing"}
	latest := map[string]string{}
	for i := range events {
		sub := fmt.Sprintf("sub_r%d", i%subs)
		status := statuses[(i/subs)%len(statuses)]
		store(t, d1, payloadEvent(fmt.Sprintf("evt_r%d", i), sub, status, "price_load", t0.Add(time.Duration(i)*time.Second), t0.Unix()+86400*365))
		latest[sub] = status
	}
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	for _, r := range []struct {
		d *db.DB
		m *metrics.Metrics
	}{{d1, m1}, {d2, m2}} {
		a := reconcile.NewApplier(reconcile.ApplierConfig{Mode: reconcile.ModePayload, Workers: 4, BatchSize: 25,
			Poll: 20 * time.Millisecond, Metrics: r.m}, r.d, nil, &reconcile.Resolver{Plans: plans})
		wg.Go(func() { a.Run(runCtx, time.Minute) })
	}
	testenv.WaitFor(t, "the inbox is drained", func() bool {
		var left int
		return d1.X().Get(&left, `SELECT count(*) FROM stripe_webhook_events WHERE status <> 'applied'`) == nil && left == 0
	})
	stop()
	wg.Wait()
	var once int
	if err := d1.X().Get(&once, `SELECT count(*) FROM stripe_webhook_events WHERE attempts = 1`); err != nil {
		t.Fatal(err)
	}
	if once != events {
		t.Fatalf("%d of %d events applied at the first attempt", once, events)
	}
	for sub, status := range latest {
		var got string
		if err := d1.X().Get(&got, `SELECT status FROM user_subscriptions WHERE stripe_subscription_id = $1`, sub); err != nil || got != status {
			t.Fatalf("%s is %q (%v), want %q (its newest event)", sub, got, err, status)
		}
	}
	var total float64
	for i, m := range []*metrics.Metrics{m1, m2} {
		applied := testutil.ToFloat64(m.EventsApplied.WithLabelValues("customer.subscription.updated", "applied")) +
			testutil.ToFloat64(m.EventsApplied.WithLabelValues("customer.subscription.updated", "stale"))
		if applied == 0 {
			t.Errorf("applier %d applied nothing: the two did not share the inbox", i+1)
		}
		total += applied
		if n := testutil.CollectAndCount(m.DBErrors); n != 0 {
			t.Errorf("applier %d recorded database errors (%d series): a deadlock or a failed batch", i+1, n)
		}
	}
	if total != events {
		t.Fatalf("the appliers counted %g events applied, want %d", total, events)
	}
}

// A batch that runs out of time writes the subscriptions it could fetch
// and leaves the others' events pending and untried for the next batch,
// rather than throwing the whole batch away: every event is applied once.
func TestBatchOutOfTimeKeepsWhatItFetched(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	var ids []string
	for i := range 6 {
		sub := f.subscribe(t, f.customer(t, nil), f.prices["maquina_ANUAL"], map[string]string{"user_id": fmt.Sprint("u", i)})
		f.enqueue(t, f.eventsOf(sub.ID)...)
		ids = append(ids, sub.ID)
	}
	f.fake.SetFaults(stripefake.Faults{Latency: 150 * time.Millisecond})
	client, err := stripeapi.New(stripeapi.Config{Key: f.fake.APIKey(), APIBase: f.fake.URL(), RateLimit: 1000, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	a := reconcile.NewApplier(reconcile.ApplierConfig{Mode: reconcile.ModeRefetch, Fetches: 1, BatchTimeout: 600 * time.Millisecond},
		f.db, client, f.resolver)
	first, err := a.RunOnce(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	st := eventStates(t, f.db)
	var applied, untried int
	for _, s := range st {
		switch {
		case s.Status == reconcile.StatusApplied && s.Attempts == 1:
			applied++
		case s.Status == reconcile.StatusPending && s.Attempts == 0:
			untried++
		case s.Status == reconcile.StatusIgnored: // not a handled type
		default:
			t.Fatalf("after one batch out of time, an event is %s after %d attempts", s.Status, s.Attempts)
		}
	}
	if applied == 0 || untried == 0 || first == 0 {
		t.Fatalf("first batch claimed %d: %d applied, %d left untried; want some of each", first, applied, untried)
	}
	drain(t, a)
	for id, s := range eventStates(t, f.db) {
		if s.Status == reconcile.StatusPending || s.Status != reconcile.StatusIgnored && s.Attempts != 1 {
			t.Fatalf("%s ended %s after %d attempts, want applied once", id, s.Status, s.Attempts)
		}
	}
	for _, id := range ids {
		f.assertMatchesStripe(t, id)
	}
}
