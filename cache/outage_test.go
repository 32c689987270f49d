package cache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/subsync/subsync/cache"
	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
)

// delCounter is a go-redis hook that counts the successful DELs of each
// key, as the server acknowledged them, and can run a function after each
// pipeline.
type delCounter struct {
	mu            sync.Mutex
	dels          map[string]int
	afterPipeline func()
}

func newDelCounter() *delCounter { return &delCounter{dels: map[string]int{}} }

func (c *delCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *delCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		c.record(cmd)
		return err
	}
}

func (c *delCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			c.record(cmd)
		}
		if c.afterPipeline != nil {
			c.afterPipeline()
		}
		return err
	}
}

func (c *delCounter) record(cmd redis.Cmder) {
	if cmd.Name() != "del" || cmd.Err() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range cmd.Args()[1:] {
		c.dels[k.(string)]++
	}
}

func (c *delCounter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dels[key]
}

// Redis stops while subscriptions change: the changes are applied, the
// invalidations pile up with their failures recorded, and they survive the
// worker; when Redis is back, a new worker delivers every one of them.
func TestRedisOutageInvalidationsDeliveredWhenBack(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	srv := testenv.StartRedis(t)
	srv.Stop(t)
	m := newMetrics()
	cfg := cache.Config{Metrics: m, Poll: 50 * time.Millisecond, MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, StatsEvery: 50 * time.Millisecond}
	stop := start(t, d, cache.NewWorker(cfg, d, newRedis(t, srv.URL())))

	const n = 15
	users, subs := linkUsers(t, d, n)
	for i := range users {
		upsert(t, d, subscription(subs[i], users[i], "pro", periodEnd, time.Now().Add(time.Second)))
	}
	for _, s := range subs {
		got, err := d.GetSubscription(context.Background(), s)
		if err != nil || *got.PlanID != "pro" {
			t.Fatalf("subscription %s not applied while Redis is down: %+v, %v", s, got, err)
		}
	}
	testenv.WaitFor(t, "every row to record a failure", func() bool {
		for _, r := range rows(t, d) {
			if r.Status != db.OutboxPending || r.Attempts < 1 || !r.LastError.Valid {
				return false
			}
		}
		return true
	})
	testenv.WaitFor(t, "the pending gauge", func() bool { return testutil.ToFloat64(m.CacheOutboxPending) == 2*n })
	if got := testutil.ToFloat64(m.CacheInvalidations.WithLabelValues(cache.OutcomeFailure)); got < 2*n {
		t.Fatalf("failure counter = %v, want at least %d", got, 2*n)
	}
	stop() // the worker goes away; the outbox stays in Postgres
	st, err := d.OutboxStats(context.Background())
	if err != nil || st.Pending != 2*n || st.Failing != 2*n {
		t.Fatalf("outbox stats = %+v, %v; want %d pending and failing", st, err, 2*n)
	}

	srv.Start(t) // empty: the application refills its cache, with stale features
	counter := newDelCounter()
	rdb := newRedis(t, srv.URL(), counter)
	var keys []string
	for _, u := range users {
		keys = append(keys, key(u))
	}
	set(t, rdb, keys...)
	m2 := newMetrics()
	cfg.Metrics = m2
	start(t, d, cache.NewWorker(cfg, d, rdb))
	testenv.WaitFor(t, "every row to be delivered", allDone(t, d))
	for _, k := range keys {
		if exists(t, rdb, k) {
			t.Fatalf("%s still in Redis after recovery", k)
		}
		if counter.count(k) == 0 {
			t.Fatalf("%s never deleted", k)
		}
	}
	if got := testutil.ToFloat64(m2.CacheInvalidations.WithLabelValues(cache.OutcomeSuccess)); got != 2*n {
		t.Fatalf("success counter = %v, want %d", got, 2*n)
	}
}

// The worker is cancelled right after its first batch: what it claimed is
// done, the rest is still pending, and a new worker delivers it.
func TestCancelledWorkerLeavesRestToNewWorker(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	users, _ := linkUsers(t, d, 25)
	ctx, cancel := context.WithCancel(context.Background())
	killer := newDelCounter()
	killer.afterPipeline = cancel
	w1 := cache.NewWorker(cache.Config{BatchSize: 10}, d, newRedis(t, "", killer))
	finished := make(chan struct{})
	go func() { w1.Run(ctx); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop after its context was cancelled")
	}
	done, pending := 0, 0
	for _, r := range rows(t, d) {
		switch {
		case r.Status == db.OutboxDone:
			done++
		case r.Attempts == 0:
			pending++
		default:
			t.Fatalf("row %+v claimed but left unfinished by the cancelled worker", r)
		}
	}
	if done != 10 || pending != 15 {
		t.Fatalf("after cancel: %d done, %d never claimed; want 10 and 15", done, pending)
	}

	counter := newDelCounter()
	w2 := cache.NewWorker(cache.Config{BatchSize: 10}, d, newRedis(t, "", counter))
	if n, err := w2.Drain(context.Background()); err != nil || n != 15 {
		t.Fatalf("new worker drained %d, %v; want 15", n, err)
	}
	wantAllDone(t, d, 1)
	deleted := 0
	for _, u := range users {
		deleted += killer.count(key(u)) + counter.count(key(u))
	}
	if deleted != 25 {
		t.Fatalf("%d DELs over both workers, want 25", deleted)
	}
}

// A worker that dies after claiming (it never marks its rows) holds them
// only for its lease; then another worker delivers them.
func TestDeadWorkerClaimComesBackAfterLease(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	users, _ := linkUsers(t, d, 5)
	const lease = 1500 * time.Millisecond
	// The lease runs from the claim's transaction start (Postgres's now()),
	// which is after this.
	claimedAt := time.Now()
	claimed, err := d.ClaimInvalidations(context.Background(), 100, lease)
	if err != nil || len(claimed) != 5 {
		t.Fatalf("dead worker's claim = %d, %v; want 5", len(claimed), err)
	}

	rdb := newRedis(t, "")
	var keys []string
	for _, u := range users {
		keys = append(keys, key(u))
	}
	set(t, rdb, keys...)
	w := cache.NewWorker(cache.Config{}, d, rdb)
	if res, err := w.RunOnce(context.Background()); err != nil || res.Claimed != 0 {
		t.Fatalf("RunOnce during the lease = %+v, %v; want nothing claimed", res, err)
	}
	testenv.WaitFor(t, "the leased rows to come back", func() bool {
		res, err := w.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res.Delivered == 5
	})
	if since := time.Since(claimedAt); since < lease {
		t.Fatalf("rows reclaimed %s after the claim, before the %s lease ended", since, lease)
	}
	wantAllDone(t, d, 2)
	wantGone(t, rdb, keys)
}

// Two workers (as two replicas) drain one outbox at the same time: every
// row is claimed once and its key deleted once.
func TestTwoWorkersDeliverEachRowOnce(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	const n = 300
	users, _ := linkUsers(t, d, n)
	counter := newDelCounter()
	m := newMetrics()
	cfg := cache.Config{Metrics: m, BatchSize: 7, Poll: 20 * time.Millisecond}
	w1 := cache.NewWorker(cfg, d, newRedis(t, "", counter))
	w2 := cache.NewWorker(cfg, d, newRedis(t, "", counter))
	var wg sync.WaitGroup
	for _, w := range []*cache.Worker{w1, w2, w1, w2} { // two loops per worker, too
		wg.Go(func() {
			if _, err := w.Drain(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	wantAllDone(t, d, 1)
	for _, u := range users {
		if c := counter.count(key(u)); c != 1 {
			t.Fatalf("%s deleted %d times, want once", key(u), c)
		}
	}
	if got := testutil.ToFloat64(m.CacheInvalidations.WithLabelValues(cache.OutcomeSuccess)); got != n {
		t.Fatalf("success counter = %v, want %d", got, n)
	}
}
