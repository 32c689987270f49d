package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// applyFixture is a migrated database, a Stripe fake with the three plans'
// annual prices mapped, and an applier wired to both.
type applyFixture struct {
	db       *db.DB
	fake     *stripefake.Server
	metrics  *metrics.Metrics
	resolver *reconcile.Resolver
	prices   map[string]string // "maquina_annual" → price id
	unmapped string            // a monthly price not in the mapping
}

func newApplyFixture(t *testing.T) *applyFixture {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry(), false)
	d := dbtest.Open(t, db.Config{Metrics: m})
	fake := newFake(t, 1)
	f := &applyFixture{db: d, fake: fake, metrics: m, prices: map[string]string{}}
	var entries []reconcile.PlanEntry
	for _, p := range []struct {
		plan, period, interval string
		amount                 int64
	}{
		{"consultor_agil", "ANUAL", "year", 285100},
		{"maquina", "ANUAL", "year", 573100},
		{"sala_de_guerra", "ANUAL", "year", 1436200},
		{"maquina", "MENSAL", "month", 57300},
	} {
		pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: p.amount, Interval: p.interval, ProductName: p.plan})
		if err != nil {
			t.Fatal(err)
		}
		period, _ := reconcile.ParsePeriod(p.period)
		entries = append(entries, reconcile.PlanEntry{Price: pr.ID, Plan: p.plan, Period: period})
		f.prices[p.plan+"_"+p.period] = pr.ID
	}
	pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 999, Interval: "month", IntervalCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	f.unmapped = pr.ID
	f.resolver = &reconcile.Resolver{Plans: mustPlans(t, entries...), Customers: fakeClient(t, fake, stripeapi.Config{Metrics: m})}
	return f
}

func (f *applyFixture) applier(t *testing.T, mode string) *reconcile.Applier {
	t.Helper()
	return reconcile.NewApplier(reconcile.ApplierConfig{
		Mode: mode, Metrics: f.metrics, MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	}, f.db, fakeClient(t, f.fake, stripeapi.Config{Metrics: f.metrics}), f.resolver)
}

// enqueue stores events in the inbox as the webhook handler would.
func (f *applyFixture) enqueue(t *testing.T, evs ...*stripe.Event) {
	t.Helper()
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := reconcile.DecodeEvent(body)
		if err != nil {
			t.Fatalf("fake event %s does not decode: %v", ev.ID, err)
		}
		status := reconcile.StatusPending
		if !reconcile.Handled(string(ev.Type)) {
			status = reconcile.StatusIgnored
		}
		if _, err := f.db.InsertEvent(context.Background(), reconcile.NewEvent{
			ID: ev.ID, Type: string(ev.Type), APIVersion: ev.APIVersion, Created: time.Unix(ev.Created, 0),
			Source: reconcile.SourceWebhook, Status: status, SubscriptionID: reconcile.SubscriptionIDOf(parsed), Payload: body,
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// eventsOf returns the fake's events about subscription id, oldest first.
func (f *applyFixture) eventsOf(id string) []*stripe.Event {
	var out []*stripe.Event
	for _, ev := range f.fake.Events() {
		body, _ := json.Marshal(ev)
		if p, err := reconcile.DecodeEvent(body); err == nil && reconcile.SubscriptionIDOf(p) == id {
			out = append(out, ev)
		}
	}
	return out
}

func (f *applyFixture) customer(t *testing.T, meta map[string]string) string {
	t.Helper()
	c, err := f.fake.CreateCustomer(stripefake.CustomerParams{Email: "a@example.com", Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func (f *applyFixture) subscribe(t *testing.T, customer, price string, meta map[string]string) *stripe.Subscription {
	t.Helper()
	s, err := f.fake.CreateSubscription(stripefake.SubscriptionParams{Customer: customer, Price: price, Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func drain(t *testing.T, a *reconcile.Applier) int {
	t.Helper()
	n, err := a.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *applyFixture) row(t *testing.T, id string) reconcile.Subscription {
	t.Helper()
	r, err := f.db.GetSubscription(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// assertMatchesStripe checks every tracked field of the row against the
// fake's current subscription.
func (f *applyFixture) assertMatchesStripe(t *testing.T, id string) {
	t.Helper()
	sub, err := f.fake.Subscription(id)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.resolver.Desired(context.Background(), sub, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	if d := reconcile.Diff(f.row(t, id), want); len(d) > 0 {
		t.Fatalf("row %s differs from Stripe: %+v", id, d)
	}
}

func TestApplierRefetchWritesTheRow(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	a := f.applier(t, reconcile.ModeRefetch)
	cus := f.customer(t, nil)
	sub := f.subscribe(t, cus, f.prices["maquina_ANUAL"], map[string]string{"user_id": "user-1"})
	f.enqueue(t, f.eventsOf(sub.ID)...)
	if n := drain(t, a); n == 0 {
		t.Fatal("nothing claimed")
	}
	r := f.row(t, sub.ID)
	if r.PlanID == nil || *r.PlanID != "maquina" || r.BillingPeriod != "annual" || r.Status != "active" ||
		r.UserID == nil || *r.UserID != "user-1" || r.StripeCustomerID != cus {
		t.Fatalf("row = %+v", r)
	}
	f.assertMatchesStripe(t, sub.ID)
	for _, ev := range f.eventsOf(sub.ID) {
		got, err := f.db.GetEvent(context.Background(), ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != reconcile.StatusApplied || !got.ProcessedAt.Valid || got.Attempts != 1 {
			t.Errorf("event %s %s: status %s attempts %d", ev.ID, ev.Type, got.Status, got.Attempts)
		}
	}
}

func TestApplierUserLinking(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	a := f.applier(t, reconcile.ModeRefetch)
	fromCustomer := f.subscribe(t, f.customer(t, map[string]string{"user_id": "cus-user"}), f.prices["sala_de_guerra_ANUAL"], nil)
	unlinked := f.subscribe(t, f.customer(t, nil), f.unmapped, nil)
	f.enqueue(t, f.eventsOf(fromCustomer.ID)...)
	f.enqueue(t, f.eventsOf(unlinked.ID)...)
	drain(t, a)
	if r := f.row(t, fromCustomer.ID); r.UserID == nil || *r.UserID != "cus-user" {
		t.Fatalf("user from customer metadata: %v", r.UserID)
	}
	r := f.row(t, unlinked.ID)
	if r.UserID != nil || r.PlanID != nil || r.BillingPeriod != "other" {
		t.Fatalf("unlinked, unmapped 3-month price: user %v plan %v period %s", r.UserID, r.PlanID, r.BillingPeriod)
	}
	// A later event without any user id keeps the one already stored.
	if _, err := f.fake.SetCustomerMetadata(fromCustomer.Customer.ID, map[string]string{"user_id": ""}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fake.SetCancelAtPeriodEnd(fromCustomer.ID, true); err != nil {
		t.Fatal(err)
	}
	f.enqueue(t, f.eventsOf(fromCustomer.ID)...)
	drain(t, a)
	if r := f.row(t, fromCustomer.ID); r.UserID == nil || *r.UserID != "cus-user" || !r.CancelAtPeriodEnd {
		t.Fatalf("after update: user %v cancel_at_period_end %v", r.UserID, r.CancelAtPeriodEnd)
	}
}

func TestApplierNewerStateBeforeOlder(t *testing.T) {
	for _, mode := range []string{reconcile.ModeRefetch, reconcile.ModePayload} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newApplyFixture(t)
			now := time.Now().Add(-time.Hour).Truncate(time.Second)
			f.fake.SetClock(func() time.Time { return now })
			a := f.applier(t, mode)
			sub := f.subscribe(t, f.customer(t, nil), f.prices["maquina_MENSAL"], map[string]string{"user_id": "u"})
			created := f.eventsOf(sub.ID)
			now = now.Add(time.Minute)
			if _, err := f.fake.UpdateSubscriptionPrice(sub.ID, f.prices["maquina_ANUAL"]); err != nil {
				t.Fatal(err)
			}
			all := f.eventsOf(sub.ID)
			updated := all[len(created):]
			// The newer state arrives and is applied first, the older after.
			f.enqueue(t, updated...)
			drain(t, a)
			f.enqueue(t, created...)
			drain(t, a)
			r := f.row(t, sub.ID)
			if r.BillingPeriod != "annual" || *r.StripePriceID != f.prices["maquina_ANUAL"] {
				t.Fatalf("older state overwrote newer: period %s price %s", r.BillingPeriod, *r.StripePriceID)
			}
			f.assertMatchesStripe(t, sub.ID)
		})
	}
}

func TestApplierSameSecondEventsRefetch(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	now := time.Now().Truncate(time.Second)
	f.fake.SetClock(func() time.Time { return now }) // every change in one second
	a := f.applier(t, reconcile.ModeRefetch)
	sub := f.subscribe(t, f.customer(t, nil), f.prices["maquina_MENSAL"], map[string]string{"user_id": "u"})
	if _, err := f.fake.UpdateSubscriptionPrice(sub.ID, f.prices["consultor_agil_ANUAL"]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.fake.UpdateSubscriptionPrice(sub.ID, f.prices["sala_de_guerra_ANUAL"]); err != nil {
		t.Fatal(err)
	}
	evs := f.eventsOf(sub.ID)
	for i := len(evs) - 1; i >= 0; i-- { // newest first: the worst order
		f.enqueue(t, evs[i])
		drain(t, a)
	}
	r := f.row(t, sub.ID)
	if *r.PlanID != "sala_de_guerra" {
		t.Fatalf("plan = %s, want sala_de_guerra (the last change of the second)", *r.PlanID)
	}
	f.assertMatchesStripe(t, sub.ID)
}

func TestApplierInvoiceEventGoesThroughSubscription(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	a := f.applier(t, reconcile.ModePayload)
	sub := f.subscribe(t, f.customer(t, nil), f.prices["maquina_ANUAL"], map[string]string{"user_id": "u"})
	before := len(f.fake.Events())
	if _, err := f.fake.FailPayment(sub.ID); err != nil {
		t.Fatal(err)
	}
	var invoiceEv *stripe.Event
	for _, ev := range f.fake.Events()[before:] {
		if ev.Type == "invoice.payment_failed" {
			invoiceEv = ev
		}
	}
	if invoiceEv == nil {
		t.Fatal("fake emitted no invoice.payment_failed")
	}
	f.enqueue(t, invoiceEv) // only the invoice event arrives
	drain(t, a)
	if r := f.row(t, sub.ID); r.Status != "past_due" {
		t.Fatalf("status = %s, want past_due fetched through the invoice's subscription", r.Status)
	}
}

func TestApplierUnknownSubscriptionIsIgnored(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	a := f.applier(t, reconcile.ModeRefetch)
	ev := &stripe.Event{ID: "evt_ghost", Object: "event", Type: "customer.subscription.updated", Created: time.Now().Unix(),
		Data: &stripe.EventData{Raw: json.RawMessage(`{"id":"sub_doesnotexist","object":"subscription"}`)}}
	f.enqueue(t, ev)
	drain(t, a)
	got, err := f.db.GetEvent(context.Background(), "evt_ghost")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != reconcile.StatusIgnored || !got.LastError.Valid {
		t.Fatalf("status %s last_error %v", got.Status, got.LastError)
	}
	if _, err := f.db.GetSubscription(context.Background(), "sub_doesnotexist"); err == nil {
		t.Fatal("a row was written for a subscription Stripe does not know")
	}
}

func TestApplierRetriesThenDead(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	a := f.applier(t, reconcile.ModeRefetch)
	sub := f.subscribe(t, f.customer(t, nil), f.prices["maquina_ANUAL"], nil)
	evs := f.eventsOf(sub.ID)
	f.enqueue(t, evs[0])
	f.fake.SetFaults(stripefake.Faults{FailNext: 1000, FailNextCode: 500})
	deadline := time.Now().Add(30 * time.Second)
	var got db.EventRow
	for time.Now().Before(deadline) {
		drain(t, a)
		var err error
		if got, err = f.db.GetEvent(context.Background(), evs[0].ID); err != nil {
			t.Fatal(err)
		}
		if got.Status == reconcile.StatusDead {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got.Status != reconcile.StatusDead || got.Attempts != 3 || !got.LastError.Valid {
		t.Fatalf("status %s attempts %d last_error %v; want dead after 3", got.Status, got.Attempts, got.LastError)
	}
	if v := testutil.ToFloat64(f.metrics.EventsApplied.WithLabelValues(string(evs[0].Type), "dead")); v != 1 {
		t.Fatalf("dead counter = %v", v)
	}
	if v := testutil.ToFloat64(f.metrics.EventsApplied.WithLabelValues(string(evs[0].Type), "retry")); v != 2 {
		t.Fatalf("retry counter = %v", v)
	}
	st, err := f.db.InboxStats(context.Background())
	if err != nil || st.Dead != 1 || st.Pending != 0 {
		t.Fatalf("inbox stats %+v err %v", st, err)
	}
	// Stripe recovers and an operator requeues: it applies.
	f.fake.SetFaults(stripefake.Faults{})
	if _, err := f.db.X().Exec(`UPDATE stripe_webhook_events SET status='pending', attempts=0 WHERE status='dead'`); err != nil {
		t.Fatal(err)
	}
	drain(t, a)
	f.assertMatchesStripe(t, sub.ID)
}

func TestApplierConcurrentWorkersApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	var ids []string
	for i := range 12 {
		sub := f.subscribe(t, f.customer(t, nil), f.prices["consultor_agil_ANUAL"], map[string]string{"user_id": fmt.Sprint("u", i)})
		if _, err := f.fake.Renew(sub.ID); err != nil {
			t.Fatal(err)
		}
		f.enqueue(t, f.eventsOf(sub.ID)...)
		ids = append(ids, sub.ID)
	}
	var total int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		a := f.applier(t, reconcile.ModeRefetch)
		wg.Go(func() {
			n := drain(t, a)
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	var stored, once int
	if err := f.db.X().Get(&stored, `SELECT count(*) FROM stripe_webhook_events WHERE status <> 'ignored'`); err != nil {
		t.Fatal(err)
	}
	if err := f.db.X().Get(&once, `SELECT count(*) FROM stripe_webhook_events WHERE status = 'applied' AND attempts = 1`); err != nil {
		t.Fatal(err)
	}
	if total != stored || once != stored {
		t.Fatalf("claimed %d, applied once %d, stored %d: some event was claimed twice or not applied", total, once, stored)
	}
	for _, id := range ids {
		f.assertMatchesStripe(t, id)
	}
}
