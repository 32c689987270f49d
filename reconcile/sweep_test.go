package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

func TestSweepListsEveryPageCanceledIncluded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		spread  time.Duration // 0: every subscription created in the same second
		workers int
	}{
		{"spread over two years, 8 workers", 2 * 365 * 24 * time.Hour, 8},
		{"spread over a day, 1 worker", 24 * time.Hour, 1},
		{"all in one second, 16 workers", 0, 16},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newRecFixture(t)
			ids := f.seed(t, 250, c.spread, "active", "canceled", "trialing", "past_due", "canceled", "paused")
			rec := f.reconciler(t, reconcile.Config{SweepWorkers: c.workers}, stripeapi.Config{})
			f.fake.ResetStats()
			rep := f.run(t, rec, reconcile.JobSubscriptions, false)
			if rep.Counts.Scanned != 250 || rep.Counts.Drifted != 250 || rep.Counts.Fixed != 250 || rep.Counts.Errors != 0 {
				t.Fatalf("first sweep counts %+v", rep.Counts)
			}
			pages := f.fake.Stats().ByRoute["GET /v1/subscriptions"]
			if pages < 3 {
				t.Fatalf("%d list requests for 250 subscriptions", pages)
			}
			wantCanceled := 0
			for _, s := range f.fake.Subscriptions() {
				if s.Status == "canceled" {
					wantCanceled++
				}
			}
			var rows, canceled int
			f.x.Get(&rows, `SELECT count(*) FROM user_subscriptions`)
			f.x.Get(&canceled, `SELECT count(*) FROM user_subscriptions WHERE status = 'canceled'`)
			if rows != len(ids) || canceled != wantCanceled || canceled < 80 {
				t.Fatalf("%d rows (%d canceled), want %d (%d canceled)", rows, canceled, len(ids), wantCanceled)
			}
			f.assertTableMatchesStripe(t)
			var linked int
			f.x.Get(&linked, `SELECT count(*) FROM user_subscriptions WHERE user_id IS NOT NULL`)
			if linked != 250 {
				t.Fatalf("%d rows linked to a user", linked)
			}

			again := f.run(t, rec, reconcile.JobSubscriptions, false)
			if again.Counts.Scanned != 250 || again.Counts.Drifted != 0 || again.Counts.Fixed != 0 {
				t.Fatalf("second sweep counts %+v", again.Counts)
			}
			t.Logf("%d list requests for 250 subscriptions", pages)
		})
	}
}

func TestSweepCountsUnlinkedAndUsesCustomerMetadata(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	ctx := context.Background()
	mk := func(cusMeta, subMeta map[string]string) string {
		c, err := f.fake.CreateCustomer(stripefake.CustomerParams{Metadata: cusMeta})
		if err != nil {
			t.Fatal(err)
		}
		s, err := f.fake.CreateSubscription(stripefake.SubscriptionParams{Customer: c.ID, Price: f.monthly, Metadata: subMeta})
		if err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	fromSub := mk(nil, map[string]string{"user_id": "u_sub"})
	fromCustomer := mk(map[string]string{"user_id": "u_cus"}, nil)
	unlinked := mk(nil, nil)
	rep := f.run(t, f.reconciler(t, reconcile.Config{}, stripeapi.Config{}), reconcile.JobSubscriptions, false)
	if rep.Counts.Fixed != 3 {
		t.Fatalf("counts %+v", rep.Counts)
	}
	for id, want := range map[string]string{fromSub: "u_sub", fromCustomer: "u_cus", unlinked: ""} {
		row, err := f.db.GetSubscription(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := deref(row.UserID); got != want {
			t.Fatalf("user of %s = %q, want %q", id, got, want)
		}
	}
	if got := testutil.ToFloat64(f.metrics.ReconcileUnlinked); got != 1 {
		t.Fatalf("unlinked = %v, want 1", got)
	}
}

// TestSweepFindsSeededDriftThenRepairs seeds 35 drifts of every kind into
// a table in sync with Stripe: a dry run finds exactly them and changes
// nothing, a run repairs them, and the next run finds only the row Stripe
// does not know, which is reported, never deleted.
func TestSweepFindsSeededDriftThenRepairs(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	ctx := context.Background()
	ids := f.seed(t, 120, 200*24*time.Hour, "active", "active", "trialing", "past_due", "canceled")
	rec := f.reconciler(t, reconcile.Config{SweepWorkers: 4}, stripeapi.Config{})
	f.run(t, rec, reconcile.JobSubscriptions, false)

	// Pick distinct subscriptions for each kind of drift, among those whose
	// Stripe state makes the change a difference.
	byStatus := map[string][]string{}
	for _, s := range f.fake.Subscriptions() {
		byStatus[string(s.Status)] = append(byStatus[string(s.Status)], s.ID)
	}
	pool := slices.Clone(byStatus["active"])
	take := func(n int) []string {
		out := pool[:n]
		pool = pool[n:]
		return out
	}
	want := map[string][]string{}
	corrupt := func(field, set string, n int) {
		for _, id := range take(n) {
			if _, err := f.x.Exec(`UPDATE user_subscriptions SET `+set+` WHERE stripe_subscription_id = $1`, id); err != nil {
				t.Fatal(err)
			}
			want[id] = []string{field}
		}
	}
	corrupt("plan_id", `plan_id = 'sala_de_guerra'`, 4)
	corrupt("billing_period", `billing_period = CASE billing_period WHEN 'annual' THEN 'monthly' ELSE 'annual' END`, 4)
	corrupt("status", `status = 'past_due'`, 4)
	corrupt("current_period_end", `current_period_end = current_period_end + interval '1 day'`, 3)
	corrupt("current_period_start", `current_period_start = current_period_start - interval '1 month'`, 2)
	corrupt("canceled_at", `canceled_at = now()`, 2)
	corrupt("cancel_at_period_end", `cancel_at_period_end = true`, 4)
	corrupt("stripe_customer_id", `stripe_customer_id = 'cus_somebodyelse'`, 3)
	corrupt("user_id", `user_id = 'user_wrong'`, 2)
	corrupt("user_id", `user_id = NULL`, 2)
	for _, id := range take(4) {
		if _, err := f.x.Exec(`DELETE FROM user_subscriptions WHERE stripe_subscription_id = $1`, id); err != nil {
			t.Fatal(err)
		}
		want[id] = []string{"missing_in_db"}
	}
	const unknown = "sub_notInStripe0000000001"
	if _, err := f.x.Exec(`INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id,
		billing_period, status, stripe_state_at) VALUES ($1, 'user_ghost', 'cus_ghost', 'monthly', 'active', now() - interval '1 day')`, unknown); err != nil {
		t.Fatal(err)
	}
	want[unknown] = []string{"missing_in_stripe"}
	if len(want) != 35 {
		t.Fatalf("seeded %d drifts, want 35", len(want))
	}

	snapshot := func() string {
		var rows []string
		if err := f.x.Select(&rows, `SELECT row_to_json(u)::text FROM user_subscriptions u ORDER BY stripe_subscription_id`); err != nil {
			t.Fatal(err)
		}
		var other int
		f.x.Get(&other, `SELECT (SELECT count(*) FROM stripe_webhook_events) + (SELECT count(*) FROM reconcile_cursors)
			+ (SELECT count(*) FROM cache_invalidations)`)
		return fmt.Sprint(rows, other)
	}
	before := snapshot()
	dry := f.run(t, rec, reconcile.JobSubscriptions, true)
	if dry.Counts.Drifted != 35 || dry.Counts.Fixed != 0 || dry.Counts.Scanned != len(ids) {
		t.Fatalf("dry run counts %+v", dry.Counts)
	}
	got := f.drift(t, dry.RunID)
	for id, fields := range want {
		if !slices.Equal(got[id], fields) {
			t.Errorf("drift of %s: got %v, want %v", id, got[id], fields)
		}
	}
	if len(got) != len(want) {
		t.Errorf("dry run found drift in %d subscriptions, want %d: %v", len(got), len(want), got)
	}
	if after := snapshot(); after != before {
		t.Fatal("the dry run changed the tables")
	}
	if r := f.storedRun(t, dry.RunID); !r.DryRun || r.Drifted != 35 || r.Fixed != 0 {
		t.Fatalf("dry run row %+v", r)
	}
	if got := testutil.ToFloat64(f.metrics.ReconcileDrift.WithLabelValues("subscriptions", "user_id")); got != 4 {
		t.Fatalf("drift{user_id} = %v", got)
	}

	fix := f.run(t, rec, reconcile.JobSubscriptions, false)
	if fix.Counts.Drifted != 35 || fix.Counts.Fixed != 34 {
		t.Fatalf("repair counts %+v (the unknown row is reported, not fixed)", fix.Counts)
	}
	f.assertTableMatchesStripe(t)

	next := f.run(t, rec, reconcile.JobSubscriptions, false)
	if next.Counts.Drifted != 1 || next.Counts.Fixed != 0 {
		t.Fatalf("after repair counts %+v, want only the unknown row", next.Counts)
	}
	if d := f.drift(t, next.RunID); len(d) != 1 || !slices.Equal(d[unknown], []string{"missing_in_stripe"}) {
		t.Fatalf("after repair drift %v", d)
	}
	if _, err := f.db.GetSubscription(ctx, unknown); err != nil {
		t.Fatalf("the row Stripe does not know was deleted: %v", err)
	}
	// The operator removes it, having looked; then nothing drifts.
	f.x.MustExec(`DELETE FROM user_subscriptions WHERE stripe_subscription_id = $1`, unknown)
	if last := f.run(t, rec, reconcile.JobSubscriptions, false); last.Counts.Drifted != 0 {
		t.Fatalf("final sweep counts %+v", last.Counts)
	}
}

func TestSweepLeavesNewerRowsAlone(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	ids := f.seed(t, 5, time.Hour)
	future := time.Now().Add(time.Hour)
	// A webhook applied a newer state after the page was listed.
	f.x.MustExec(`INSERT INTO user_subscriptions (stripe_subscription_id, stripe_customer_id, billing_period, status, stripe_state_at)
		VALUES ($1, 'cus_x', 'monthly', 'canceled', $2)`, ids[0], future)
	rep := f.run(t, f.reconciler(t, reconcile.Config{}, stripeapi.Config{}), reconcile.JobSubscriptions, false)
	if rep.Counts.Drifted != 4 || rep.Counts.Fixed != 4 {
		t.Fatalf("counts %+v", rep.Counts)
	}
	row, err := f.db.GetSubscription(context.Background(), ids[0])
	if err != nil || row.Status != "canceled" {
		t.Fatalf("newer row overwritten: %+v %v", row, err)
	}
}

func TestSweepSurvivesRateLimitsAndServerErrors(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	f.seed(t, 400, 90*24*time.Hour, "active", "canceled")
	// The first request is rate limited for sure, then about a third of them
	// fail with 500 and some more with 429.
	f.fake.SetFaults(stripefake.Faults{FailNext: 1, FailNextCode: 429, ErrorRate: 0.3, RateLimitRate: 0.1})
	rec := f.reconciler(t, reconcile.Config{SweepWorkers: 6},
		stripeapi.Config{MaxRetries: 10, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	rep := f.run(t, rec, reconcile.JobSubscriptions, false)
	st := f.fake.Stats()
	if rep.Counts.Scanned != 400 || rep.Counts.Fixed != 400 || st.ByStatus[429] == 0 || st.ByStatus[500] == 0 {
		t.Fatalf("counts %+v; fake answered %v", rep.Counts, st.ByStatus)
	}
	f.fake.SetFaults(stripefake.Faults{})
	f.assertTableMatchesStripe(t)
	t.Logf("survived %d injected errors (%v)", st.Injected, st.ByStatus)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestSlimPagesGiveTheSameRows checks that the sweep's slim decoding of
// list pages yields the same desired rows as stripe-go's full decoding,
// over subscriptions in every state the fake can make.
func TestSlimPagesGiveTheSameRows(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	f.seed(t, 40, 30*24*time.Hour, "active", "trialing", "past_due", "unpaid", "incomplete", "incomplete_expired", "canceled", "paused")
	a := f.subscribe(t, "user_x", f.monthly)
	if _, err := f.fake.SetCancelAtPeriodEnd(a, true); err != nil {
		t.Fatal(err)
	}
	b := f.subscribe(t, "", f.other) // unmapped price, user only on the customer
	if _, err := f.fake.UpdateSubscriptionPrice(b, f.annual); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := f.client(t, stripeapi.Config{})
	q := stripeapi.SubscriptionPageQuery{Status: "all"}
	full, _, err := c.ListSubscriptionsPage(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	slim, _, err := c.ListSubscriptionsPageSlim(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != 42 || len(slim) != len(full) {
		t.Fatalf("%d full, %d slim", len(full), len(slim))
	}
	at := time.Now()
	for i := range full {
		for _, known := range []bool{false, true} {
			want, err1 := f.resolver.Desired(ctx, full[i], at, known)
			got, err2 := f.resolver.Desired(ctx, slim[i], at, known)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %v / %v", full[i].ID, err1, err2)
			}
			if d := reconcile.Diff(got, want); len(d) > 0 || deref(got.UserID) != deref(want.UserID) {
				t.Fatalf("%s (%s): slim row differs: %+v", full[i].ID, full[i].Status, d)
			}
		}
		if slim[i].Created != full[i].Created || slim[i].ID != full[i].ID {
			t.Fatalf("%s: created %d vs %d", full[i].ID, slim[i].Created, full[i].Created)
		}
	}
}
