// Package cache delivers the cache invalidation outbox to Redis.
//
// Every feature-relevant change of a linked user's subscription writes a row
// into cache_invalidations in the transaction that makes the change (see
// db.Tx.Upsert), so an invalidation exists if and only if the change
// committed. A Worker claims due rows in batches (FOR UPDATE SKIP LOCKED and
// a lease, so replicas share the outbox and a dead worker's rows come back),
// deletes their keys in one Redis pipeline, marks the delivered rows done and
// retries the others with capped exponential backoff. Done rows are pruned
// after a retention period.
package cache

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/metrics"
)

// MaxBackoff is the longest wait between two tries of one invalidation;
// Config.MaxBackoff is capped to it.
const MaxBackoff = 30 * time.Second

// Outcomes of subsync_cache_invalidations_total, counted per outbox row.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Store is what the worker needs from the database; *db.DB implements it.
type Store interface {
	ClaimInvalidations(ctx context.Context, limit int, lease time.Duration) ([]db.Invalidation, error)
	MarkInvalidationsDone(ctx context.Context, ids []int64) error
	MarkInvalidationsFailed(ctx context.Context, fs []db.InvalidationFailure) error
	PruneInvalidations(ctx context.Context, retention time.Duration, batch int) (int64, error)
	OutboxStats(ctx context.Context) (db.OutboxStats, error)
}

// Redis is what the worker needs from a go-redis client; *redis.Client and
// *redis.ClusterClient implement it.
type Redis interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// Config configures a Worker; zero values take the defaults.
type Config struct {
	BatchSize  int           // rows claimed and deleted in one pipeline, default 100
	Lease      time.Duration // how long a claim lasts if the worker dies, default 30s
	Timeout    time.Duration // bound of one Redis pipeline and of its bookkeeping, default 5s
	Poll       time.Duration // fallback poll when no wake-up comes, default 750ms
	MinBackoff time.Duration // delay before the second try, default 500ms
	MaxBackoff time.Duration // cap of the delay between tries, default and at most MaxBackoff (30s)
	Retention  time.Duration // how long done rows are kept, default 24h
	PruneEvery time.Duration // how often done rows are pruned, default 10m
	StatsEvery time.Duration // how often the outbox gauges are refreshed, default 5s
	Logger     *slog.Logger
	Metrics    *metrics.Metrics
}

// Worker delivers the outbox to Redis. Build it with NewWorker; any number
// of workers, in one process or many, may share an outbox.
type Worker struct {
	cfg     Config
	store   Store
	rdb     Redis
	log     *slog.Logger
	wake    chan struct{}
	failing atomic.Bool // the last batch failed as a whole
}

// NewWorker builds a Worker that delivers store's outbox to rdb.
func NewWorker(cfg Config, store Store, rdb Redis) *Worker {
	orDefault(&cfg.BatchSize, 100)
	orDefault(&cfg.Lease, 30*time.Second)
	orDefault(&cfg.Timeout, 5*time.Second)
	if cfg.Timeout > cfg.Lease/2 {
		cfg.Timeout = cfg.Lease / 2 // a live worker finishes well within its lease
	}
	orDefault(&cfg.Poll, 750*time.Millisecond)
	orDefault(&cfg.MaxBackoff, MaxBackoff)
	cfg.MaxBackoff = min(cfg.MaxBackoff, MaxBackoff)
	orDefault(&cfg.MinBackoff, 500*time.Millisecond)
	cfg.MinBackoff = min(cfg.MinBackoff, cfg.MaxBackoff)
	orDefault(&cfg.Retention, 24*time.Hour)
	orDefault(&cfg.PruneEvery, 10*time.Minute)
	orDefault(&cfg.StatsEvery, 5*time.Second)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, store: store, rdb: rdb, log: log, wake: make(chan struct{}, 1)}
}

// orDefault replaces a zero or negative setting with its default.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Notify wakes the worker: new invalidations were committed. It never
// blocks; call it from a LISTEN callback or after a commit.
func (w *Worker) Notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers, prunes and reports the outbox until ctx ends. A batch
// already claimed when ctx ends is finished (bounded by Config.Timeout)
// rather than left to its lease.
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { w.every(ctx, w.cfg.StatsEvery, w.reportStats) })
	wg.Go(func() { w.every(ctx, w.cfg.PruneEvery, w.prune) })
	w.deliverLoop(ctx)
	wg.Wait()
}

func (w *Worker) deliverLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		res, err := w.RunOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.log.Warn("cache outbox", "err", err.Error())
		}
		if err == nil && res.Claimed == w.cfg.BatchSize && res.Failed == 0 {
			continue // more may be due
		}
		timer.Reset(w.cfg.Poll + time.Duration(rand.Int64N(int64(w.cfg.Poll/4)+1)))
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// every runs fn now and then every d until ctx ends.
func (w *Worker) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Result says what one RunOnce did.
type Result struct {
	Claimed   int // rows claimed
	Delivered int // rows whose key was deleted (or did not exist)
	Failed    int // rows scheduled for another try
}

// RunOnce claims one batch, deletes its keys in one pipeline and records
// the outcome of every row. Once rows are claimed, the work goes on after
// ctx ends, bounded by Config.Timeout.
func (w *Worker) RunOnce(ctx context.Context) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	rows, err := w.store.ClaimInvalidations(ctx, w.cfg.BatchSize, w.cfg.Lease)
	if err != nil || len(rows) == 0 {
		return Result{}, err
	}
	dctx := context.WithoutCancel(ctx)
	errs := w.deleteKeys(dctx, rows)

	var (
		res      = Result{Claimed: len(rows)}
		done     []int64
		failures []db.InvalidationFailure
		firstErr error
	)
	debug := w.log.Enabled(ctx, slog.LevelDebug)
	for _, r := range rows {
		if err := errs[r.CacheKey]; err != nil {
			delay := w.backoff(r.Attempts)
			failures = append(failures, db.InvalidationFailure{ID: r.ID, Attempts: r.Attempts, Error: err.Error(), Delay: delay})
			firstErr = cmp.Or(firstErr, err)
			if debug {
				w.log.Debug("cache invalidation failed", "user_id", r.UserID, "subscription_id", r.SubscriptionID.String,
					"cache_key", r.CacheKey, "attempts", r.Attempts, "err", err.Error(), "retry_in", delay.String())
			}
			continue
		}
		done = append(done, r.ID)
		if debug {
			w.log.Debug("cache key deleted", "user_id", r.UserID, "subscription_id", r.SubscriptionID.String,
				"cache_key", r.CacheKey, "attempts", r.Attempts, "lag", time.Since(r.CreatedAt).String())
		}
	}
	res.Delivered, res.Failed = len(done), len(failures)
	w.count(OutcomeSuccess, res.Delivered)
	w.count(OutcomeFailure, res.Failed)

	mctx, cancel := context.WithTimeout(dctx, w.cfg.Timeout)
	defer cancel()
	// A row marked neither done nor failed comes back after its lease and is
	// deleted again, which is harmless: DEL is idempotent. While the database
	// is unavailable (a restart), marking is retried within Timeout, so that
	// a short outage does not leave the batch to its lease.
	err = errors.Join(
		db.RetryUnavailable(mctx, func(ctx context.Context) error { return w.store.MarkInvalidationsDone(ctx, done) }),
		db.RetryUnavailable(mctx, func(ctx context.Context) error { return w.store.MarkInvalidationsFailed(ctx, failures) }))

	switch {
	case res.Failed > 0 && res.Failed <= 3:
		w.failing.Store(res.Delivered == 0)
		for _, r := range rows {
			if err := errs[r.CacheKey]; err != nil {
				w.log.Warn("cache invalidation failed, will retry", "user_id", r.UserID,
					"subscription_id", r.SubscriptionID.String, "attempts", r.Attempts, "err", err.Error())
			}
		}
	case res.Failed > 3:
		// An outage fails whole batches: one line per batch, not per row.
		w.failing.Store(res.Delivered == 0)
		w.log.Warn("cache invalidations failed, will retry", "failed", res.Failed, "delivered", res.Delivered,
			"err", firstErr.Error())
	case w.failing.Swap(false):
		w.log.Info("cache invalidations delivered again", "delivered", res.Delivered)
	}
	return res, err
}

// deleteKeys deletes the distinct keys of rows in one pipeline and returns
// the error of each key, nil when it was deleted or did not exist.
func (w *Worker) deleteKeys(ctx context.Context, rows []db.Invalidation) map[string]error {
	errs := make(map[string]error, len(rows))
	var keys []string
	for _, r := range rows {
		if _, ok := errs[r.CacheKey]; !ok {
			errs[r.CacheKey] = nil
			keys = append(keys, r.CacheKey)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	cmds, perr := w.rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(rctx, k)
		}
		return nil
	})
	for i, k := range keys {
		switch {
		case i < len(cmds):
			errs[k] = cmds[i].Err()
		case perr != nil:
			errs[k] = perr
		default:
			errs[k] = errors.New("redis pipeline returned no reply")
		}
	}
	return errs
}

// backoff is the delay before the next try of a row that failed its
// attempts-th try: MinBackoff doubled per try, capped at MaxBackoff, less
// up to a quarter of jitter so that rows failed together spread out.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.cfg.MinBackoff
	for i := 1; i < attempts && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.cfg.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

func (w *Worker) count(outcome string, n int) {
	if w.cfg.Metrics != nil && n > 0 {
		w.cfg.Metrics.CacheInvalidations.WithLabelValues(outcome).Add(float64(n))
	}
}

// Drain delivers due rows until a batch claims none, and returns how many
// it delivered; for tests and tools. Failed rows wait for their backoff, so
// Drain ends even when Redis is down.
func (w *Worker) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		res, err := w.RunOnce(ctx)
		total += res.Delivered
		if err != nil || res.Claimed == 0 {
			return total, err
		}
	}
}

// reportStats refreshes the outbox gauges.
func (w *Worker) reportStats(ctx context.Context) {
	st, err := w.store.OutboxStats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("cache outbox stats", "err", err.Error())
		}
		return
	}
	if m := w.cfg.Metrics; m != nil {
		m.CacheOutboxPending.Set(float64(st.Pending))
		m.CacheOutboxOldestAge.Set(st.OldestAge.Seconds())
	}
}

// prune deletes done rows older than the retention.
func (w *Worker) prune(ctx context.Context) {
	n, err := w.store.PruneInvalidations(ctx, w.cfg.Retention, 1000)
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("prune cache outbox", "err", err.Error())
	case n > 0:
		w.log.Info("cache outbox pruned", "deleted", n, "retention", w.cfg.Retention.String())
	}
}
