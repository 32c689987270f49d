package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// settleCase is a set of webhook bodies meant to exercise every way an
// event can end: good events of many subscriptions, an older and a newer
// state of one subscription in either order, a second delivery, payloads
// that cannot be read (alone, and beside good events of their
// subscription), an invoice about a subscription Stripe does not know, a
// subscription whose user is found only on its customer, and one whose row
// Postgres cannot store.
func settleCase(t *testing.T, f *applyFixture) [][]byte {
	t.Helper()
	price := f.prices["maquina_ANUAL"]
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	end := t0.Add(365 * 24 * time.Hour).Unix()
	var bodies [][]byte
	for i := range 24 {
		sub := fmt.Sprintf("sub_s%d", i%12)
		status := []string{"active", "past_due", "canceled"}[i%3]
		bodies = append(bodies, payloadEvent(fmt.Sprintf("evt_s%d", i), sub, status, price, t0.Add(time.Duration(i)*time.Second), end))
	}
	newer := payloadEvent("evt_newer", "sub_pair", "canceled", price, t0.Add(time.Minute), end)
	older := payloadEvent("evt_older", "sub_pair", "past_due", price, t0, end)
	bodies = append(bodies, newer, older, bodies[3])
	bodies = append(bodies, []byte(`{"id":"evt_poison","object":"event","type":"customer.subscription.updated","created":`+
		fmt.Sprint(t0.Unix())+`,"data":{"object":{"id":"sub_poison","object":"subscription","items":"garbage"}}}`))
	bodies = append(bodies, []byte(`{"id":"evt_s_poison","object":"event","type":"customer.subscription.updated","created":`+
		fmt.Sprint(t0.Add(time.Hour).Unix())+`,"data":{"object":{"id":"sub_s1","object":"subscription","items":"garbage"}}}`))
	bodies = append(bodies, []byte(`{"id":"evt_unknown","object":"event","type":"invoice.paid","created":`+fmt.Sprint(t0.Unix())+
		`,"data":{"object":{"id":"in_1","object":"invoice","subscription":"sub_nobody_knows"}}}`))
	cus, err := f.fake.CreateCustomer(stripefake.CustomerParams{Metadata: map[string]string{"user_id": "user-of-customer"}})
	if err != nil {
		t.Fatal(err)
	}
	viaCustomer := string(payloadEvent("evt_via_customer", "sub_cus", "active", price, t0, end))
	viaCustomer = strings.Replace(viaCustomer, `"metadata":{"user_id":"user-sub_cus"}`, `"metadata":{}`, 1)
	viaCustomer = strings.Replace(viaCustomer, `"customer":"cus_sub_cus"`, fmt.Sprintf("%q:%q", "customer", cus.ID), 1)
	bodies = append(bodies, []byte(viaCustomer))
	return append(bodies, payloadEvent("evt_unstorable", "sub_far", "active", price, t0, 253402300800)) // year 10000
}

// newEvent is what the webhook handler hands the store for body.
func newEvent(t *testing.T, body []byte) reconcile.NewEvent {
	t.Helper()
	env, err := reconcile.ReadEnvelope(body)
	if err != nil {
		t.Fatalf("event does not read: %v\n%s", err, body)
	}
	return reconcile.NewEvent{
		ID: env.ID, Type: env.Type, Created: time.Unix(env.Created, 0).UTC(), Source: reconcile.SourceWebhook,
		Status: reconcile.StatusPending, SubscriptionID: env.SubscriptionID(), Payload: body,
	}
}

// outcome is everything a user of the tables sees after the events ended.
type settleOutcome struct {
	rows      map[string]string // subscription: its row, as users read it
	events    map[string]eventState
	users     []string // users whose cache was invalidated
	applied   float64  // events_applied_total{outcome="applied"} + {outcome="stale"}
	inboxLeft int
}

func outcomeOf(t *testing.T, d *db.DB, m *metrics.Metrics) settleOutcome {
	t.Helper()
	var rows []struct {
		ID  string `db:"stripe_subscription_id"`
		Row string `db:"row"`
	}
	if err := d.X().Select(&rows, `SELECT stripe_subscription_id, concat_ws('|', user_id, stripe_customer_id,
		stripe_price_id, plan_id, billing_period, status, current_period_start, current_period_end,
		cancel_at_period_end, canceled_at, stripe_state_at) AS row FROM user_subscriptions`); err != nil {
		t.Fatal(err)
	}
	o := settleOutcome{rows: map[string]string{}, events: eventStates(t, d)}
	for _, r := range rows {
		o.rows[r.ID] = r.Row
	}
	if err := d.X().Select(&o.users, `SELECT DISTINCT user_id FROM cache_invalidations ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"applied", "stale"} {
		for _, typ := range []string{"customer.subscription.updated", "invoice.paid"} {
			o.applied += testutil.ToFloat64(m.EventsApplied.WithLabelValues(typ, label))
		}
	}
	if err := d.X().Get(&o.inboxLeft, `SELECT count(*) FROM stripe_webhook_events WHERE status IN ('pending', 'failed')`); err != nil {
		t.Fatal(err)
	}
	return o
}

// Events settled as they are stored (payload mode) end exactly as the
// workers would have ended them: the same rows, the same event results
// (applied once, ignored with the same reason, dead after the same
// attempts), the same users invalidated, the same counts. The bodies
// arrive concurrently, so several share a storing transaction; those that
// need Stripe (the invoice, the user found on the customer) or that
// Postgres refuses are left to the workers.
func TestSettlingEndsEventsAsTheWorkersDo(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	bodies := settleCase(t, f)
	unstorable := bodies[len(bodies)-1]
	bodies = bodies[:len(bodies)-1]
	newDB := func() (*db.DB, *metrics.Metrics, *reconcile.Applier) {
		m := metrics.New(prometheus.NewRegistry(), false)
		d := dbtest.Open(t, db.Config{Metrics: m, CacheKeyTemplate: "features:{user_id}"})
		return d, m, reconcile.NewApplier(reconcile.ApplierConfig{
			Mode: reconcile.ModePayload, Metrics: m, MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		}, d, fakeClient(t, f.fake, stripeapi.Config{Metrics: m}), f.resolver)
	}
	finish := func(a *reconcile.Applier) {
		for range 10 {
			drain(t, a)
			time.Sleep(10 * time.Millisecond) // let the refused event's backoff pass
		}
	}

	// As the workers alone apply them: stored pending, then drained.
	dw, mw, aw := newDB()
	for _, b := range append(bodies, unstorable) {
		store(t, dw, b)
	}
	finish(aw)
	want := outcomeOf(t, dw, mw)
	if len(want.users) == 0 || want.applied == 0 {
		t.Fatalf("the workers applied %g events and invalidated %v: the case proves nothing", want.applied, want.users)
	}

	// Settled as they are stored, through the ingester: the bodies
	// concurrently, so that several share a transaction, then the one
	// Postgres refuses. One flusher, so that no transaction finds a
	// subscription held by another (TestSettlingNeverWaitsForALock).
	d, m, a := newDB()
	var mu sync.Mutex
	wakes := 0
	// What an application listening for changes hears.
	announced := map[string]bool{}
	listening := make(chan struct{})
	lctx, stopListening := context.WithCancel(context.Background())
	var listener sync.WaitGroup
	listener.Go(func() {
		err := d.Listen(lctx, db.ChangeChannel, nil, func(payload string) {
			if payload == "" {
				select {
				case <-listening:
				default:
					close(listening)
				}
				return
			}
			var n db.ChangeNotification
			if err := json.Unmarshal([]byte(payload), &n); err != nil {
				t.Errorf("change notification %q: %v", payload, err)
			}
			mu.Lock()
			announced[n.UserID] = true
			mu.Unlock()
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-listening
	g := d.NewIngester(db.IngestConfig{MaxBatch: 8, Flushers: 1, Settler: a, Stored: func() { mu.Lock(); wakes++; mu.Unlock() }})
	answers := make(map[string]int)
	insert := func(i int, b []byte) {
		ev := newEvent(t, b)
		if i%2 == 0 {
			// As the handler hands it over in payload mode: the object
			// already read. The others are read as they are settled.
			env, _ := reconcile.ReadEnvelope(b)
			ev.SubscriptionID, ev.Object = f.resolver.ReadSubscriptionEvent(env)
		}
		ok, err := g.InsertEvent(context.Background(), ev)
		if err != nil {
			t.Errorf("%s: %v", ev.ID, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if ok {
			answers[ev.ID]++
		}
	}
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Go(func() { insert(i, b) })
	}
	wg.Wait()
	insert(0, unstorable)
	g.Close()
	var left []string
	if err := d.X().Select(&left, `SELECT id FROM stripe_webhook_events WHERE status = 'pending' ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"evt_unknown", "evt_unstorable", "evt_via_customer"}; !slices.Equal(left, want) {
		t.Errorf("stored pending, for the workers: %v; want %v (those that need Stripe, or that Postgres refuses)", left, want)
	}
	if wakes == 0 {
		t.Error("the workers were not woken for the events left to them")
	}
	if len(answers) != len(bodies) || slices.Max(slices.Collect(maps.Values(answers))) != 1 {
		t.Errorf("inserted answers %v: want one per distinct event (%d)", answers, len(bodies))
	}
	finish(a)
	got := outcomeOf(t, d, m)
	testenv.WaitFor(t, "a change notification for every user invalidated", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(announced) == len(got.users)
	})
	stopListening()
	listener.Wait()
	for _, u := range got.users {
		if !announced[u] {
			t.Errorf("no change notification for user %s", u)
		}
	}

	if !maps.Equal(got.rows, want.rows) {
		t.Errorf("rows differ:\n settled %v\n workers %v", got.rows, want.rows)
	}
	if !maps.Equal(got.events, want.events) {
		t.Errorf("event results differ:\n settled %v\n workers %v", got.events, want.events)
	}
	if !slices.Equal(got.users, want.users) {
		t.Errorf("users invalidated differ:\n settled %v\n workers %v", got.users, want.users)
	}
	if got.applied != want.applied || got.inboxLeft != 0 {
		t.Errorf("applied count %g, %d left; the workers: %g", got.applied, got.inboxLeft, want.applied)
	}
	if s := got.events["evt_unstorable"]; s.Status != reconcile.StatusDead {
		t.Errorf("the unstorable event ended %+v, want dead", s)
	}
	if r := got.rows["sub_cus"]; !strings.HasPrefix(r, "user-of-customer|") {
		t.Errorf("sub_cus row %q: want the customer's user", r)
	}
	if r := got.rows["sub_pair"]; !strings.Contains(r, "|canceled|") {
		t.Errorf("sub_pair row %q: want the newer state, canceled", r)
	}
}

// A storing transaction never waits for a lock: an event whose
// subscription another writer holds (a worker fetching from Stripe, say)
// is stored pending at once, beside the others, which are settled; and a
// row locked by someone that does not take subsyncd's locks makes the
// whole transaction store its events pending rather than wait. The
// workers apply them once the locks are gone.
func TestSettlingNeverWaitsForALock(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	a := f.applier(t, reconcile.ModePayload)
	price := f.prices["maquina_ANUAL"]
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	end := t0.Add(365 * 24 * time.Hour).Unix()
	ctx := context.Background()
	g := f.db.NewIngester(db.IngestConfig{Settler: a, Timeout: time.Minute})
	defer g.Close()
	insert := func(b []byte) {
		t.Helper()
		if _, err := g.InsertEvent(ctx, newEvent(t, b)); err != nil {
			t.Fatal(err)
		}
	}
	insert(payloadEvent("evt_row_first", "sub_row", "active", price, t0, end)) // a row to lock later

	held, err := f.db.X().BeginTxx(ctx, nil) // another writer, holding sub_held's lock
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('sub_held', 7071))`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, b := range [][]byte{
		payloadEvent("evt_held", "sub_held", "active", price, t0, end),
		payloadEvent("evt_free", "sub_free", "active", price, t0, end),
	} {
		wg.Go(func() { insert(b) })
	}
	wg.Wait()
	st := eventStates(t, f.db)
	if st["evt_held"].Status != reconcile.StatusPending || st["evt_free"].Status != reconcile.StatusApplied {
		t.Fatalf("with sub_held's lock taken: evt_held %s, evt_free %s; want pending and applied", st["evt_held"].Status, st["evt_free"].Status)
	}

	rowLock, err := f.db.X().BeginTxx(ctx, nil) // an application's transaction, holding a row
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rowLock.Exec(`SELECT 1 FROM user_subscriptions WHERE stripe_subscription_id = 'sub_row' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	insert(payloadEvent("evt_row_locked", "sub_row", "canceled", price, t0.Add(time.Minute), end))
	if s := eventStates(t, f.db)["evt_row_locked"]; s.Status != reconcile.StatusPending {
		t.Fatalf("with sub_row's row locked: evt_row_locked %s, want pending", s.Status)
	}

	_ = held.Rollback()
	_ = rowLock.Rollback()
	drain(t, a)
	for id, s := range eventStates(t, f.db) {
		if s.Status != reconcile.StatusApplied || s.Attempts != 1 {
			t.Errorf("%s: %s after %d attempts, want applied after 1", id, s.Status, s.Attempts)
		}
	}
	if r := f.row(t, "sub_row"); r.Status != "canceled" {
		t.Errorf("sub_row is %s, want canceled", r.Status)
	}
}

// A second delivery of an event already in the inbox (dead after its
// retries, say) is a duplicate: settling does not apply it behind its
// row's back; the row decides (a requeue applies it).
func TestSettlingLeavesStoredEventsAlone(t *testing.T) {
	t.Parallel()
	f := newApplyFixture(t)
	a := f.applier(t, reconcile.ModePayload)
	price := f.prices["maquina_ANUAL"]
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	body := payloadEvent("evt_dead", "sub_dead", "active", price, t0, t0.Add(365*24*time.Hour).Unix())
	store(t, f.db, body)
	if _, err := f.db.X().Exec(`UPDATE stripe_webhook_events SET status = 'dead', attempts = 12 WHERE id = 'evt_dead'`); err != nil {
		t.Fatal(err)
	}
	g := f.db.NewIngester(db.IngestConfig{Settler: a})
	ok, err := g.InsertEvent(context.Background(), newEvent(t, body))
	g.Close()
	if err != nil || ok {
		t.Fatalf("second delivery: inserted %v, %v; want a duplicate", ok, err)
	}
	if st := eventStates(t, f.db)["evt_dead"]; st.Status != reconcile.StatusDead || st.Attempts != 12 {
		t.Errorf("the stored event is now %+v, want dead after 12 attempts", st)
	}
	if _, err := f.db.GetSubscription(context.Background(), "sub_dead"); err == nil {
		t.Error("the duplicate's state was written")
	}
}
