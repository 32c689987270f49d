package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/subsync/subsync/cache"
	"github.com/subsync/subsync/db"
)

// runCache delivers the cache invalidation outbox to Redis until ctx ends.
// The worker wakes on LISTEN subsync_subscription_changed (sent in the
// transaction that queues an invalidation, by this replica or another), and
// polls besides, so a lost notification only delays a delete by a poll.
func (a *app) runCache(ctx context.Context) {
	log := a.log.With("component", "cache")
	rdb, err := newRedis(a.cfg.RedisURL)
	if err != nil {
		// parseConfig validated it; the error may quote the URL, which may
		// hold a password, so it is not logged.
		log.Error("REDIS_URL is not a valid redis:// URL; cache invalidations are not delivered")
		return
	}
	defer rdb.Close()
	// go-redis writes its connection errors through a process-wide logger;
	// route them into this daemon's structured log instead of bare lines
	// on stderr.
	redis.SetLogger(redisLog{log})
	w := cache.NewWorker(cache.Config{Logger: log, Metrics: a.metrics}, a.db, rdb)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.db.Listen(ctx, db.ChangeChannel, log, func(string) { w.Notify() }); err != nil {
			log.Error("listen for subscription changes", "err", err.Error())
		}
	})
	log.Info("cache invalidation worker started", "channel", db.ChangeChannel)
	w.Run(ctx)
	wg.Wait()
}

// redisLog adapts slog to go-redis's logger. Its lines name host:port at
// most, never the password.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "source", "go-redis")
}

// newRedis builds the go-redis client of a redis://, rediss:// or unix://
// URL (user, password and database number included).
func newRedis(rawURL string) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}
