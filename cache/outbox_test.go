package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/subsync/subsync/cache"
	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
)

const template = "features:{user_id}"

// newDB opens a fresh, migrated database whose upserts queue invalidations.
func newDB(t *testing.T) *db.DB {
	t.Helper()
	return dbtest.Open(t, db.Config{CacheKeyTemplate: template})
}

// newRedis connects to url (the shared Redis when empty) with hooks added.
func newRedis(t *testing.T, url string, hooks ...redis.Hook) *redis.Client {
	t.Helper()
	if url == "" {
		url = testenv.RedisURL(t)
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	// Fail fast while a test's Redis is down; the outbox does the retrying.
	opts.DialTimeout, opts.DialerRetries, opts.MaxRetries = time.Second, 1, -1
	rdb := redis.NewClient(opts)
	for _, h := range hooks {
		rdb.AddHook(h)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func newMetrics() *metrics.Metrics { return metrics.New(prometheus.NewRegistry(), false) }

func uniqueID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func key(user string) string { return "features:" + user }

var periodEnd = time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)

// subscription is a linked, active monthly subscription row as of at.
func subscription(subID, user, plan string, end, at time.Time) reconcile.Subscription {
	price, start := "price_"+plan, end.AddDate(0, -1, 0)
	return reconcile.Subscription{
		StripeSubscriptionID: subID, UserID: &user, StripeCustomerID: "cus_" + subID,
		StripePriceID: &price, PlanID: &plan, BillingPeriod: "monthly", Status: "active",
		CurrentPeriodStart: &start, CurrentPeriodEnd: &end, StripeStateAt: at.UTC().Truncate(time.Microsecond),
	}
}

func upsert(t *testing.T, d *db.DB, s reconcile.Subscription) reconcile.UpsertResult {
	t.Helper()
	res, err := d.UpsertSubscription(context.Background(), s)
	if err != nil {
		t.Fatalf("upsert %s: %v", s.StripeSubscriptionID, err)
	}
	return res
}

// linkUsers inserts one subscription per new user and returns the users and
// their subscription ids; each insert queues one invalidation.
func linkUsers(t *testing.T, d *db.DB, n int) (users, subs []string) {
	t.Helper()
	for range n {
		u, s := uniqueID("u_"), uniqueID("sub_")
		upsert(t, d, subscription(s, u, "basic", periodEnd, time.Now()))
		users, subs = append(users, u), append(subs, s)
	}
	return users, subs
}

func rows(t *testing.T, d *db.DB) []db.InvalidationRow {
	t.Helper()
	rs, err := d.Invalidations(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// wantAllDone fails the test unless every outbox row is done, each at
// attempt attempts.
func wantAllDone(t *testing.T, d *db.DB, attempts int) {
	t.Helper()
	for _, r := range rows(t, d) {
		if r.Status != db.OutboxDone || r.Attempts != attempts {
			t.Fatalf("row %+v: want done at attempt %d", r, attempts)
		}
	}
}

// wantGone fails the test if any of keys is still in Redis.
func wantGone(t *testing.T, rdb *redis.Client, keys []string) {
	t.Helper()
	for _, k := range keys {
		if exists(t, rdb, k) {
			t.Fatalf("%s still in Redis", k)
		}
	}
}

func exists(t *testing.T, rdb *redis.Client, k string) bool {
	t.Helper()
	n, err := rdb.Exists(context.Background(), k).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", k, err)
	}
	return n == 1
}

func set(t *testing.T, rdb *redis.Client, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if err := rdb.Set(context.Background(), k, `{"plan":"stale"}`, time.Hour).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
}

// start runs w, woken by LISTEN subsync_subscription_changed as in the
// daemon, until the test ends; it returns a stop function that waits.
func start(t *testing.T, d *db.DB, w *cache.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.Listen(ctx, db.ChangeChannel, nil, func(string) { w.Notify() }) })
	wg.Go(func() { w.Run(ctx) })
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func allDone(t *testing.T, d *db.DB) func() bool {
	return func() bool {
		for _, r := range rows(t, d) {
			if r.Status != db.OutboxDone {
				return false
			}
		}
		return true
	}
}

func TestKeyDeletedOnFeatureChangeKeptOtherwise(t *testing.T) {
	t.Parallel()
	d, rdb, m := newDB(t), newRedis(t, ""), newMetrics()
	w := cache.NewWorker(cache.Config{Metrics: m}, d, rdb)
	start(t, d, w)
	user, sub := uniqueID("u_"), uniqueID("sub_")
	t0 := time.Now()
	upsert(t, d, subscription(sub, user, "basic", periodEnd, t0))
	testenv.WaitFor(t, "the insert's invalidation", allDone(t, d))

	set(t, rdb, key(user))
	began := time.Now()
	if res := upsert(t, d, subscription(sub, user, "pro", periodEnd, t0.Add(time.Second))); !res.Invalidated {
		t.Fatalf("plan change: %+v, want an invalidation", res)
	}
	testenv.WaitFor(t, "the key to be deleted", func() bool { return !exists(t, rdb, key(user)) })
	t.Logf("key deleted %s after the commit", time.Since(began))

	// Only the period end changes: no invalidation, the key stays. A second
	// user's plan change goes through the same worker afterwards: once its
	// key is gone, the worker has had its chance to (wrongly) delete ours.
	set(t, rdb, key(user))
	if res := upsert(t, d, subscription(sub, user, "pro", periodEnd.Add(time.Hour), t0.Add(2*time.Second))); res.Invalidated {
		t.Fatalf("period end change: %+v, want no invalidation", res)
	}
	other, otherSub := uniqueID("u_"), uniqueID("sub_")
	set(t, rdb, key(other))
	upsert(t, d, subscription(otherSub, other, "pro", periodEnd, t0))
	testenv.WaitFor(t, "the other user's key to be deleted", func() bool { return !exists(t, rdb, key(other)) })
	testenv.WaitFor(t, "every row done", allDone(t, d))
	if !exists(t, rdb, key(user)) {
		t.Fatal("key deleted although no feature-relevant field changed")
	}
	if n := len(rows(t, d)); n != 3 {
		t.Fatalf("%d outbox rows, want 3 (insert, plan change, other insert)", n)
	}
	if got := testutil.ToFloat64(m.CacheInvalidations.WithLabelValues(cache.OutcomeSuccess)); got != 3 {
		t.Fatalf("success counter = %v, want 3", got)
	}
	rdb.Del(context.Background(), key(user))
}

func TestMissingKeyIsDelivered(t *testing.T) {
	t.Parallel()
	d, rdb, m := newDB(t), newRedis(t, ""), newMetrics()
	linkUsers(t, d, 2) // their keys were never set
	w := cache.NewWorker(cache.Config{Metrics: m}, d, rdb)
	n, err := w.Drain(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("drain = %d, %v; want 2 delivered", n, err)
	}
	for _, r := range rows(t, d) {
		if r.Status != db.OutboxDone || r.Attempts != 1 || r.LastError.Valid {
			t.Fatalf("row %+v: want done at the first attempt", r)
		}
	}
	if got := testutil.ToFloat64(m.CacheInvalidations.WithLabelValues(cache.OutcomeSuccess)); got != 2 {
		t.Fatalf("success counter = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.CacheInvalidations.WithLabelValues(cache.OutcomeFailure)); got != 0 {
		t.Fatalf("failure counter = %v, want 0", got)
	}
}

func TestGaugesAndPruneFromRun(t *testing.T) {
	t.Parallel()
	d, m := newDB(t), newMetrics()
	linkUsers(t, d, 3)
	// Redis is down: rows stay pending, the gauges show them.
	w := cache.NewWorker(cache.Config{Metrics: m, StatsEvery: 50 * time.Millisecond, PruneEvery: 50 * time.Millisecond,
		Retention: time.Hour}, d, downRedis(t))
	stop := start(t, d, w)
	testenv.WaitFor(t, "the pending gauge", func() bool { return testutil.ToFloat64(m.CacheOutboxPending) == 3 })
	testenv.WaitFor(t, "the age gauge", func() bool { return testutil.ToFloat64(m.CacheOutboxOldestAge) > 0 })
	stop()

	// Delivered rows: two delivered long ago are pruned, the fresh one kept.
	if _, err := d.X().Exec(`UPDATE cache_invalidations SET next_attempt_at = now()`); err != nil {
		t.Fatal(err) // due now rather than after their backoff
	}
	w = cache.NewWorker(cache.Config{Metrics: m}, d, newRedis(t, ""))
	if n, err := w.Drain(context.Background()); err != nil || n != 3 {
		t.Fatalf("drain = %d, %v; want 3", n, err)
	}
	if _, err := d.X().Exec(`UPDATE cache_invalidations SET delivered_at = now() - interval '2 hours'
		WHERE id IN (SELECT id FROM cache_invalidations ORDER BY id LIMIT 2)`); err != nil {
		t.Fatal(err)
	}
	w = cache.NewWorker(cache.Config{Metrics: m, StatsEvery: 50 * time.Millisecond, PruneEvery: 50 * time.Millisecond,
		Retention: time.Hour}, d, newRedis(t, ""))
	start(t, d, w)
	testenv.WaitFor(t, "the old done rows to be pruned", func() bool { return len(rows(t, d)) == 1 })
	testenv.WaitFor(t, "the gauges to drop to 0", func() bool {
		return testutil.ToFloat64(m.CacheOutboxPending) == 0 && testutil.ToFloat64(m.CacheOutboxOldestAge) == 0
	})
}

func TestBackoffCappedAt30s(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	linkUsers(t, d, 1)
	if _, err := d.X().Exec(`UPDATE cache_invalidations SET attempts = 40`); err != nil {
		t.Fatal(err)
	}
	// A configured cap above 30s is brought down to 30s.
	w := cache.NewWorker(cache.Config{MaxBackoff: time.Hour, MinBackoff: 10 * time.Second}, d, downRedis(t))
	res, err := w.RunOnce(context.Background())
	if err != nil || res.Failed != 1 {
		t.Fatalf("RunOnce = %+v, %v; want 1 failed", res, err)
	}
	var wait time.Duration
	if err := d.X().Get(&wait, `SELECT (extract(epoch FROM next_attempt_at - now()) * 1e9)::bigint FROM cache_invalidations`); err != nil {
		t.Fatal(err)
	}
	if wait > cache.MaxBackoff || wait < cache.MaxBackoff/2 {
		t.Fatalf("next try in %s, want at most %s (and near it after 41 attempts)", wait, cache.MaxBackoff)
	}
	r := rows(t, d)[0]
	if r.Attempts != 41 || r.LastError.String == "" {
		t.Fatalf("row %+v: want attempts 41 and the error recorded", r)
	}
}

// downRedis is a client of a redis-server this test started and stopped.
func downRedis(t *testing.T) *redis.Client {
	t.Helper()
	srv := testenv.StartRedis(t)
	rdb := newRedis(t, srv.URL())
	srv.Stop(t)
	return rdb
}
