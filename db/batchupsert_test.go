package db_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/reconcile"
)

func openWithOutbox(t *testing.T) *db.DB {
	t.Helper()
	return dbtest.Open(t, db.Config{CacheKeyTemplate: "features:{user_id}"})
}

// The batched write (one transaction, rows folded in Go, one multi-row
// statement) leaves exactly what the guarded upsert's rules, applied one row
// at a time in SQL (referenceUpsert), leave: the same rows, the same per-row
// results and the same cache invalidations, for random sequences mixing
// stale and newer states, user changes and repeats of one subscription in a
// batch, in any order. Half the rounds write as a sweep's repair, which
// inserts the rows it reports missing without reading them first, and
// folds those whose row exists after all.
func TestBatchedUpsertEqualsOneUpsertPerRow(t *testing.T) {
	t.Parallel()
	batched, single := openWithOutbox(t), openWithOutbox(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	run, err := batched.StartRun(ctx, "subscriptions", false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	pick := func(xs ...string) *string {
		v := xs[rng.IntN(len(xs))]
		if v == "" {
			return nil
		}
		return &v
	}
	// Repaired rows reported missing: without a row and an id alone in
	// their batch (the insert's), and with a row (folded after all).
	foundMissing, foundStored := 0, 0
	var wantDrift []string // of every repaired row not refused as stale
	for round := range 40 {
		var rows []reconcile.Subscription
		for range 1 + rng.IntN(12) {
			at := t0.Add(time.Duration(rng.IntN(40)) * time.Minute)
			rows = append(rows, reconcile.Subscription{
				StripeSubscriptionID: fmt.Sprintf("sub_f%d", rng.IntN(5)),
				UserID:               pick("", "u1", "u2"),
				StripeCustomerID:     *pick("cus_a", "cus_b"),
				StripePriceID:        pick("price_m", "price_y"),
				PlanID:               pick("", "maquina"),
				BillingPeriod:        *pick("monthly", "annual"),
				Status:               *pick("active", "past_due", "canceled"),
				CancelAtPeriodEnd:    rng.IntN(2) == 0,
				StripeStateAt:        at,
			})
		}
		var got []reconcile.UpsertResult
		if round%2 == 0 {
			got, err = batched.UpsertSubscriptions(ctx, rows)
		} else { // a sweep's repair writes the same way
			drift := make([][]reconcile.Drift, len(rows))
			copies := map[string]int{}
			for _, r := range rows {
				copies[r.StripeSubscriptionID]++
			}
			for i, r := range rows {
				if rng.IntN(3) == 0 {
					continue
				}
				// As found by a sweep that saw no row, whether or not one
				// exists by now.
				drift[i] = []reconcile.Drift{{SubscriptionID: r.StripeSubscriptionID, Field: reconcile.FieldMissingInDB}}
				if _, err := batched.GetSubscription(ctx, r.StripeSubscriptionID); err == nil {
					foundStored++
				} else if copies[r.StripeSubscriptionID] == 1 {
					foundMissing++
				}
			}
			got, err = batched.RepairSubscriptions(ctx, run, rows, drift)
			for i := range got {
				for _, dr := range drift[i] {
					if !got[i].Stale {
						wantDrift = append(wantDrift, dr.SubscriptionID+" "+dr.Field)
					}
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			want := referenceUpsert(t, single, r)
			if fmt.Sprint(got[i]) != fmt.Sprint(want) {
				t.Fatalf("round %d row %d (%s at %s): batched %+v, one by one %+v", round, i, r.StripeSubscriptionID,
					r.StripeStateAt.Format(time.TimeOnly), got[i], want)
			}
		}
		if b, s := tableState(t, batched), tableState(t, single); !slices.Equal(b, s) {
			t.Fatalf("round %d: tables differ\nbatched: %v\none by one: %v", round, b, s)
		}
	}
	if foundMissing == 0 || foundStored == 0 {
		t.Fatalf("rows repaired as missing: %d without a row, %d with one; want both", foundMissing, foundStored)
	}
	var gotDrift []string
	for _, dr := range runDrift(t, batched, run) {
		gotDrift = append(gotDrift, dr.SubscriptionID+" "+dr.Field)
	}
	slices.Sort(gotDrift)
	slices.Sort(wantDrift)
	if !slices.Equal(gotDrift, wantDrift) {
		t.Fatalf("drift recorded:\n%v\nwant, of the rows not refused:\n%v", gotDrift, wantDrift)
	}
}

// A sweep's repair records the drift of each row it wrote, in the same
// transaction, and none for a row the guard refused as stale; drift that
// does not match its rows writes nothing. Its commit does not wait for the
// WAL flush, and that setting ends with its transaction: a connection it
// used commits durably again afterwards.
func TestRepairRecordsTheDriftOfWhatItWrote(t *testing.T) {
	t.Parallel()
	d := openWithOutbox(t)
	d.X().SetMaxOpenConns(1) // every statement below runs on the repair's connection
	ctx := context.Background()
	run, err := d.StartRun(ctx, "subscriptions", false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	user := func(s string) *string { return &s }
	row := func(id, status string, at time.Time) reconcile.Subscription {
		return reconcile.Subscription{StripeSubscriptionID: id, UserID: user("u_" + id), StripeCustomerID: "cus_" + id,
			BillingPeriod: "monthly", Status: status, StripeStateAt: at}
	}
	if _, err := d.UpsertSubscriptions(ctx, []reconcile.Subscription{row("sub_newer", "canceled", t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	rows := []reconcile.Subscription{row("sub_missing", "active", t0), row("sub_newer", "active", t0)}
	drift := [][]reconcile.Drift{
		{{SubscriptionID: "sub_missing", Field: reconcile.FieldMissingInDB, StripeValue: "active"}},
		{{SubscriptionID: "sub_newer", Field: "status", DBValue: "canceled", StripeValue: "active"}},
	}
	if _, err := d.RepairSubscriptions(ctx, run, rows, drift[:1]); err == nil || !strings.Contains(err.Error(), "drift") {
		t.Fatalf("repair with drift for 1 of 2 rows: %v, want an error naming the drift", err)
	}
	if got := tableState(t, d); len(got) != 2 { // sub_newer and its invalidation
		t.Fatalf("a refused repair wrote: %v", got)
	}
	var before string
	if err := d.X().Get(&before, `SHOW synchronous_commit`); err != nil {
		t.Fatal(err)
	}
	res, err := d.RepairSubscriptions(ctx, run, rows, drift)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Inserted || res[0].Stale || !res[1].Stale {
		t.Fatalf("results %+v, want sub_missing inserted and sub_newer stale", res)
	}
	if got := runDrift(t, d, run); !slices.Equal(got, drift[0]) {
		t.Fatalf("drift recorded %+v, want only %+v", got, drift[0])
	}
	want := []string{
		"outbox u_sub_missing|features:u_sub_missing|sub_missing ×1",
		"outbox u_sub_newer|features:u_sub_newer|sub_newer ×1",
		"sub_missing|u_sub_missing|cus_sub_missing|||monthly|active|f|2026-03-01 00:00:00+00",
		"sub_newer|u_sub_newer|cus_sub_newer|||monthly|canceled|f|2026-03-01 01:00:00+00",
	}
	if st := tableState(t, d); !slices.Equal(st, want) {
		t.Fatalf("tables:\n%s\nwant:\n%s", strings.Join(st, "\n"), strings.Join(want, "\n"))
	}
	var after string
	if err := d.X().Get(&after, `SHOW synchronous_commit`); err != nil || after != before || before == "off" {
		t.Fatalf("synchronous_commit %q before a repair, %q after (%v), want the same, not off", before, after, err)
	}
}

// tableState lists the rows and the queued invalidations (user, key and
// subscription, counted) in a comparable form.
func tableState(t *testing.T, d *db.DB) []string {
	t.Helper()
	var out []string
	err := d.X().Select(&out, `
		SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s', stripe_subscription_id, user_id, stripe_customer_id,
			stripe_price_id, plan_id, billing_period, status, cancel_at_period_end, stripe_state_at)
		FROM user_subscriptions
		UNION ALL
		SELECT format('outbox %s|%s|%s ×%s', user_id, cache_key, subscription_id, count(*))
		FROM cache_invalidations GROUP BY user_id, cache_key, subscription_id
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// referenceUpsert is the guarded upsert written the plain way, one row and
// a few statements at a time, as the rules say: under the subscription's
// lock, a row older than the stored one is refused (stale); a row without a
// user id keeps the stored one; an insert of a linked row, or a change of
// plan, period, status or user, queues the user's cache invalidation, and a
// user who leaves the subscription gets one too; a row equal in every
// tracked field only moves stripe_state_at.
func referenceUpsert(t *testing.T, d *db.DB, s reconcile.Subscription) reconcile.UpsertResult {
	t.Helper()
	tx := d.X().MustBegin()
	defer tx.Rollback()
	tx.MustExec(`SELECT pg_advisory_xact_lock(hashtextextended($1, 7071))`, s.StripeSubscriptionID)
	var old []reconcile.Subscription
	if err := tx.Select(&old, `SELECT stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id, plan_id,
		billing_period, status, current_period_start, current_period_end, cancel_at_period_end, canceled_at,
		stripe_state_at, created_at, updated_at FROM user_subscriptions WHERE stripe_subscription_id = $1 FOR UPDATE`,
		s.StripeSubscriptionID); err != nil {
		t.Fatal(err)
	}
	invalidate := func(user *string) {
		tx.MustExec(`INSERT INTO cache_invalidations (user_id, cache_key, subscription_id) VALUES ($1, $2, $3)`,
			*user, "features:"+*user, s.StripeSubscriptionID)
	}
	var res reconcile.UpsertResult
	switch {
	case len(old) == 0:
		res = reconcile.UpsertResult{Inserted: true, Changes: reconcile.Diff(reconcile.Subscription{}, s)}
		tx.MustExec(`INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id,
			stripe_price_id, plan_id, billing_period, status, current_period_start, current_period_end,
			cancel_at_period_end, canceled_at, stripe_state_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			s.StripeSubscriptionID, s.UserID, s.StripeCustomerID, s.StripePriceID, s.PlanID, s.BillingPeriod, s.Status,
			s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CancelAtPeriodEnd, s.CanceledAt, s.StripeStateAt)
		if s.UserID != nil {
			res.Invalidated = true
			invalidate(s.UserID)
		}
	case old[0].StripeStateAt.After(s.StripeStateAt):
		return reconcile.UpsertResult{Stale: true}
	default:
		if s.UserID == nil {
			s.UserID = old[0].UserID
		}
		res.Changes = reconcile.Diff(old[0], s)
		tx.MustExec(`UPDATE user_subscriptions SET user_id = $2, stripe_customer_id = $3, stripe_price_id = $4,
			plan_id = $5, billing_period = $6, status = $7, current_period_start = $8, current_period_end = $9,
			cancel_at_period_end = $10, canceled_at = $11, stripe_state_at = $12 WHERE stripe_subscription_id = $1`,
			s.StripeSubscriptionID, s.UserID, s.StripeCustomerID, s.StripePriceID, s.PlanID, s.BillingPeriod, s.Status,
			s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CancelAtPeriodEnd, s.CanceledAt, s.StripeStateAt)
		relevant := false
		for _, c := range res.Changes {
			relevant = relevant || reconcile.FeatureField(c.Field)
		}
		if relevant && s.UserID != nil {
			res.Invalidated = true
			invalidate(s.UserID)
		}
		if old[0].UserID != nil && s.UserID != nil && *old[0].UserID != *s.UserID {
			invalidate(old[0].UserID)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return res
}

// runDrift reads every drifted field recorded for run.
func runDrift(t *testing.T, d *db.DB, run int64) []reconcile.Drift {
	t.Helper()
	var out []reconcile.Drift
	if err := d.EachDrift(context.Background(), run, func(dr reconcile.Drift) error {
		out = append(out, dr)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
