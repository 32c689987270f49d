package reconcile

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/metrics"
)

// Apply modes.
const (
	ModeRefetch = "refetch"
	ModePayload = "payload"
)

// SubscriptionGetter fetches a subscription from Stripe.
type SubscriptionGetter interface {
	GetSubscription(ctx context.Context, id string) (*stripe.Subscription, error)
}

// ApplierConfig configures an Applier; zero values take the defaults.
type ApplierConfig struct {
	Mode         string        // ModeRefetch (default) or ModePayload
	Workers      int           // concurrent workers, each applying one batch at a time; default DefaultWorkers
	BatchSize    int           // events claimed and applied in one transaction; default DefaultBatchSize
	Fetches      int           // Stripe fetches one batch runs at once (refetch mode); default 32
	MaxAttempts  int           // attempts before an event is dead, default 12
	MinBackoff   time.Duration // first retry delay, default 1s
	MaxBackoff   time.Duration // cap of the retry delay, default 10m
	Drain        time.Duration // how long a batch under way may still take once ctx ends (RunOnce's default), default 30s
	BatchTimeout time.Duration // how long a batch may take in all; groups not fetched in 3/4 of it wait for the next, default 2m
	Poll         time.Duration // fallback poll when no wake-up comes, default 2s
	Logger       *slog.Logger
	Metrics      *metrics.Metrics
	Clock        func() time.Time
}

// Defaults of ApplierConfig.
const (
	DefaultWorkers   = 4
	DefaultBatchSize = 100
)

// Applier drains the inbox. Each worker claims a batch of due events in a
// transaction, locks their subscriptions (in sorted order), computes the
// desired row of each from Stripe (refetch) or from the events (payload),
// folds them into the stored rows with the guard, and writes the rows, the
// outbox, the notifications and the events' results in one statement and
// one commit.
type Applier struct {
	cfg      ApplierConfig
	store    Inbox
	stripe   SubscriptionGetter
	resolver *Resolver
	wake     chan struct{}
	log      *slog.Logger
	settler  *Applier // the same, with a resolver that never calls Stripe (see Settle)
}

// NewApplier builds an Applier.
func NewApplier(cfg ApplierConfig, store Inbox, sg SubscriptionGetter, r *Resolver) *Applier {
	cfg.Mode = cmp.Or(cfg.Mode, ModeRefetch)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultBatchSize)
	cfg.Fetches = cmp.Or(cfg.Fetches, 32)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 12)
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, time.Second)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 10*time.Minute)
	cfg.Drain = cmp.Or(cfg.Drain, 30*time.Second)
	cfg.BatchTimeout = cmp.Or(cfg.BatchTimeout, 2*time.Minute)
	cfg.Poll = cmp.Or(cfg.Poll, 2*time.Second)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Applier{cfg: cfg, store: store, stripe: sg, resolver: r, wake: make(chan struct{}, 1), log: log}
	a.settler = newSettler(a)
	return a
}

// Notify wakes a worker: new events are in the inbox.
func (a *Applier) Notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run runs the workers until ctx is done. Events already claimed when ctx
// ends are finished (with up to drain time) before Run returns.
func (a *Applier) Run(ctx context.Context, drain time.Duration) {
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Go(func() { a.worker(ctx, drain) })
	}
	wg.Wait()
}

func (a *Applier) worker(ctx context.Context, drain time.Duration) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		n, err := a.RunOnce(ctx, drain)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("apply events", "events", n, "err", err.Error())
		}
		if err == nil && n == a.cfg.BatchSize {
			a.Notify() // more may be due: wake a sibling too
			continue
		}
		timer.Reset(a.cfg.Poll + time.Duration(rand.Int64N(int64(a.cfg.Poll/4)+1)))
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
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

// backoff is the capped exponential delay before retry number attempts,
// with jitter of up to a fifth.
func (a *Applier) backoff(attempts int) time.Duration {
	d := a.cfg.MinBackoff
	for i := 1; i < attempts && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, a.cfg.MaxBackoff)
	return d + time.Duration(rand.Int64N(int64(d/5)+1))
}

func (a *Applier) observe(ev ClaimedEvent, outcome string) {
	m := a.cfg.Metrics
	if m == nil {
		return
	}
	m.EventsApplied.WithLabelValues(ev.Type, outcome).Inc()
	if outcome == "applied" || outcome == "stale" {
		m.WebhookLag.WithLabelValues(ev.Source).Observe(a.cfg.Clock().Sub(ev.Created).Seconds())
	}
}
