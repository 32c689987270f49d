package db_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/reconcile"
)

// outboxDB opens a fresh, migrated database whose upserts queue cache
// invalidations with template (none when it is empty).
func outboxDB(t *testing.T, template string) (*db.DB, string) {
	t.Helper()
	d := dbtest.Open(t, db.Config{CacheKeyTemplate: template})
	return d, d.URL()
}

func outboxID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// outboxSub is a linked, active subscription row as of at.
func outboxSub(subID, userID, plan string, periodEnd, at time.Time) reconcile.Subscription {
	price := "price_" + plan
	start := periodEnd.AddDate(0, -1, 0)
	s := reconcile.Subscription{
		StripeSubscriptionID: subID,
		StripeCustomerID:     "cus_" + subID,
		StripePriceID:        &price,
		PlanID:               &plan,
		BillingPeriod:        "monthly",
		Status:               "active",
		CurrentPeriodStart:   &start,
		CurrentPeriodEnd:     &periodEnd,
		StripeStateAt:        at.UTC().Truncate(time.Microsecond),
	}
	if userID != "" {
		s.UserID = &userID
	}
	return s
}

func mustUpsert(t *testing.T, d *db.DB, s reconcile.Subscription) reconcile.UpsertResult {
	t.Helper()
	res, err := d.UpsertSubscription(context.Background(), s)
	if err != nil {
		t.Fatalf("upsert %s: %v", s.StripeSubscriptionID, err)
	}
	return res
}

func mustInvalidations(t *testing.T, d *db.DB, userID string) []db.InvalidationRow {
	t.Helper()
	rows, err := d.Invalidations(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestUpsertQueuesInvalidationOnlyForFeatureChanges(t *testing.T) {
	t.Parallel()
	d, _ := outboxDB(t, "features:{user_id}")
	user, sub := outboxID("u_"), outboxID("sub_")
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	t0 := time.Now()

	mustUpsert(t, d, outboxSub(sub, user, "basic", end, t0))
	if rows := mustInvalidations(t, d, user); len(rows) != 1 || rows[0].CacheKey != "features:"+user ||
		rows[0].SubscriptionID.String != sub || rows[0].Status != db.OutboxPending {
		t.Fatalf("after insert: rows = %+v, want one pending features:%s", rows, user)
	}
	// Only the period end moves: nothing a feature depends on.
	if res := mustUpsert(t, d, outboxSub(sub, user, "basic", end.Add(time.Hour), t0.Add(time.Second))); res.Invalidated {
		t.Fatalf("period end change invalidated: %+v", res)
	}
	if rows := mustInvalidations(t, d, user); len(rows) != 1 {
		t.Fatalf("period end change queued an invalidation: %d rows", len(rows))
	}
	if res := mustUpsert(t, d, outboxSub(sub, user, "pro", end.Add(time.Hour), t0.Add(2*time.Second))); !res.Invalidated {
		t.Fatalf("plan change not invalidated: %+v", res)
	}
	if rows := mustInvalidations(t, d, user); len(rows) != 2 {
		t.Fatalf("plan change: %d rows, want 2", len(rows))
	}
	// An unlinked subscription has no key to delete.
	mustUpsert(t, d, outboxSub(outboxID("sub_"), "", "pro", end, t0))
	if rows := mustInvalidations(t, d, ""); len(rows) != 2 {
		t.Fatalf("unlinked insert queued an invalidation: %d rows", len(rows))
	}
}

func TestUpsertWithoutTemplateQueuesNothing(t *testing.T) {
	t.Parallel()
	d, _ := outboxDB(t, "")
	user, sub := outboxID("u_"), outboxID("sub_")
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	mustUpsert(t, d, outboxSub(sub, user, "basic", end, time.Now()))
	mustUpsert(t, d, outboxSub(sub, user, "pro", end, time.Now().Add(time.Second)))
	if rows := mustInvalidations(t, d, ""); len(rows) != 0 {
		t.Fatalf("no cache key template, yet %d outbox rows", len(rows))
	}
}

func TestUpsertNotifiesSubscriptionChanged(t *testing.T) {
	t.Parallel()
	d, url := outboxDB(t, "features:{user_id}")
	user, sub := outboxID("u_"), outboxID("sub_")
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	t0 := time.Now()
	mustUpsert(t, d, outboxSub(sub, user, "basic", end, t0))

	l := pq.NewListener(url, 10*time.Millisecond, time.Second, nil)
	t.Cleanup(func() { l.Close() })
	if err := l.Listen(db.ChangeChannel); err != nil {
		t.Fatalf("listen: %v", err)
	}
	next := func() string {
		t.Helper()
		select {
		case n := <-l.Notify:
			if n == nil {
				t.Fatal("listener reconnected")
			}
			return n.Extra
		case <-time.After(5 * time.Second):
			t.Fatal("no notification within 5s")
		}
		return ""
	}

	// Not feature-relevant: no notification. The sentinel sent after it
	// must be the next one received (notifications arrive in commit order).
	mustUpsert(t, d, outboxSub(sub, user, "basic", end.Add(time.Hour), t0.Add(time.Second)))
	if _, err := d.X().Exec(`SELECT pg_notify($1, 'sentinel')`, db.ChangeChannel); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "sentinel" {
		t.Fatalf("period end change notified %q", got)
	}

	mustUpsert(t, d, outboxSub(sub, user, "pro", end.Add(time.Hour), t0.Add(2*time.Second)))
	var got db.ChangeNotification
	payload := next()
	if err := json.Unmarshal([]byte(payload), &got); err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	if got != (db.ChangeNotification{UserID: user, SubscriptionID: sub}) {
		t.Fatalf("notification = %+v, want user %s subscription %s", got, user, sub)
	}
}

func TestOutboxClaimLeaseAndMark(t *testing.T) {
	t.Parallel()
	d, _ := outboxDB(t, "features:{user_id}")
	ctx := context.Background()
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	var users []string
	for range 3 {
		u := outboxID("u_")
		users = append(users, u)
		mustUpsert(t, d, outboxSub(outboxID("sub_"), u, "basic", end, time.Now()))
	}

	claimed, err := d.ClaimInvalidations(ctx, 2, time.Minute)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim = %d rows, %v; want 2", len(claimed), err)
	}
	for _, c := range claimed {
		if c.Attempts != 1 {
			t.Fatalf("claimed %+v, want attempts 1", c)
		}
	}
	rest, err := d.ClaimInvalidations(ctx, 10, time.Minute)
	if err != nil || len(rest) != 1 {
		t.Fatalf("second claim = %d rows, %v; want the 1 unleased row", len(rest), err)
	}
	if again, err := d.ClaimInvalidations(ctx, 10, time.Minute); err != nil || len(again) != 0 {
		t.Fatalf("third claim = %d rows, %v; want none, all leased", len(again), err)
	}

	// Failure with no delay: due again at once, error recorded.
	if err := d.MarkInvalidationsFailed(ctx, []db.InvalidationFailure{{ID: rest[0].ID, Attempts: 1, Error: "redis down"}}); err != nil {
		t.Fatal(err)
	}
	re, err := d.ClaimInvalidations(ctx, 10, time.Minute)
	if err != nil || len(re) != 1 || re[0].ID != rest[0].ID || re[0].Attempts != 2 {
		t.Fatalf("reclaim = %+v, %v; want row %d at attempts 2", re, err, rest[0].ID)
	}
	// A failure reported by the earlier claim (attempts 1) is stale: ignored.
	if err := d.MarkInvalidationsFailed(ctx, []db.InvalidationFailure{{ID: rest[0].ID, Attempts: 1, Error: "late"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkInvalidationsDone(ctx, []int64{claimed[0].ID, claimed[1].ID, rest[0].ID}); err != nil {
		t.Fatal(err)
	}
	for _, r := range mustInvalidations(t, d, "") {
		if r.Status != db.OutboxDone || !r.DeliveredAt.Valid {
			t.Fatalf("row %+v not done", r)
		}
		if r.ID == rest[0].ID && (r.LastError.String != "redis down" || r.Attempts != 2) {
			t.Fatalf("row %+v: want last_error %q and attempts 2", r, "redis down")
		}
	}
}

func TestOutboxStatsAndPrune(t *testing.T) {
	t.Parallel()
	d, _ := outboxDB(t, "features:{user_id}")
	ctx := context.Background()
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	for range 4 {
		mustUpsert(t, d, outboxSub(outboxID("sub_"), outboxID("u_"), "basic", end, time.Now()))
	}
	if _, err := d.X().Exec(`UPDATE cache_invalidations SET created_at = now() - interval '1 hour'
		WHERE id = (SELECT min(id) FROM cache_invalidations)`); err != nil {
		t.Fatal(err)
	}
	st, err := d.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 4 || st.Failing != 0 || st.OldestAge < 59*time.Minute {
		t.Fatalf("stats = %+v, want 4 pending, oldest about an hour", st)
	}

	rows := mustInvalidations(t, d, "")
	if err := d.MarkInvalidationsDone(ctx, []int64{rows[0].ID, rows[1].ID, rows[2].ID}); err != nil {
		t.Fatal(err)
	}
	// rows[0] and rows[1] were delivered two days ago, rows[2] just now.
	if _, err := d.X().Exec(`UPDATE cache_invalidations SET delivered_at = now() - interval '48 hours'
		WHERE id = ANY($1)`, pq.Array([]int64{rows[0].ID, rows[1].ID})); err != nil {
		t.Fatal(err)
	}
	n, err := d.PruneInvalidations(ctx, 24*time.Hour, 1)
	if err != nil || n != 2 {
		t.Fatalf("prune = %d, %v; want 2", n, err)
	}
	left := mustInvalidations(t, d, "")
	if len(left) != 2 || left[0].ID != rows[2].ID || left[1].ID != rows[3].ID {
		t.Fatalf("after prune: %+v, want rows %d (recent) and %d (pending)", left, rows[2].ID, rows[3].ID)
	}
	st, err = d.OutboxStats(ctx)
	if err != nil || st.Pending != 1 {
		t.Fatalf("stats = %+v, %v; want 1 pending", st, err)
	}
}

// A sweep's insert of the rows it found missing announces, and queues the
// invalidation of, the rows it inserted alone: a row another writer
// stored in the meantime with a newer state is refused as stale, silently.
func TestRepairInsertAnnouncesOnlyWhatItInserted(t *testing.T) {
	t.Parallel()
	d, url := outboxDB(t, "features:{user_id}")
	ctx := context.Background()
	run, err := d.StartRun(ctx, "subscriptions", false)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	t0 := time.Now()
	inserted, stored := outboxID("sub_"), outboxID("sub_")
	userI, userS := outboxID("u_"), outboxID("u_")
	mustUpsert(t, d, outboxSub(stored, userS, "basic", end, t0.Add(time.Hour)))

	l := pq.NewListener(url, 10*time.Millisecond, time.Second, nil)
	t.Cleanup(func() { l.Close() })
	if err := l.Listen(db.ChangeChannel); err != nil {
		t.Fatalf("listen: %v", err)
	}
	rows := []reconcile.Subscription{outboxSub(inserted, userI, "pro", end, t0), outboxSub(stored, userS, "pro", end, t0)}
	drift := [][]reconcile.Drift{
		{{SubscriptionID: inserted, Field: reconcile.FieldMissingInDB}},
		{{SubscriptionID: stored, Field: reconcile.FieldMissingInDB}},
	}
	res, err := d.RepairSubscriptions(ctx, run, rows, drift)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Inserted || !res[0].Invalidated || !res[1].Stale {
		t.Fatalf("results %+v, want the first inserted and invalidated, the second stale", res)
	}
	if _, err := d.X().Exec(`SELECT pg_notify($1, 'sentinel')`, db.ChangeChannel); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for len(notes) == 0 || notes[len(notes)-1] != "sentinel" {
		select {
		case n := <-l.Notify:
			if n == nil {
				t.Fatal("listener reconnected")
			}
			notes = append(notes, n.Extra)
		case <-time.After(5 * time.Second):
			t.Fatalf("no sentinel within 5s; got %q", notes)
		}
	}
	want, _ := json.Marshal(db.ChangeNotification{UserID: userI, SubscriptionID: inserted})
	if len(notes) != 2 || notes[0] != string(want) {
		t.Fatalf("notifications %q, want %s then the sentinel", notes, want)
	}
	if got := mustInvalidations(t, d, userI); len(got) != 1 {
		t.Fatalf("%d invalidations queued for the inserted row's user, want 1", len(got))
	}
	if got := mustInvalidations(t, d, userS); len(got) != 1 { // its own insert's, earlier
		t.Fatalf("%d invalidations queued for the stale row's user, want the 1 of its insert", len(got))
	}
}
