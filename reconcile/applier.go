package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/db"
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
	Mode        string        // ModeRefetch (default) or ModePayload
	Workers     int           // concurrent workers, default 4
	BatchSize   int           // events claimed at once, default 20
	MaxAttempts int           // attempts before an event is dead, default 12
	MinBackoff  time.Duration // first retry delay, default 1s
	MaxBackoff  time.Duration // cap of the retry delay, default 10m
	Lease       time.Duration // how long a claim lasts if the worker dies (renewed while it lives), default 30s
	Poll        time.Duration // fallback poll when no wake-up comes, default 2s
	Logger      *slog.Logger
	Metrics     *metrics.Metrics
	Clock       func() time.Time
}

// Applier drains the inbox: it claims due events, computes the desired row
// of each event's subscription and writes it through the guarded upsert.
type Applier struct {
	cfg      ApplierConfig
	store    *db.DB
	stripe   SubscriptionGetter
	resolver *Resolver
	wake     chan struct{}
	log      *slog.Logger
}

// NewApplier builds an Applier.
func NewApplier(cfg ApplierConfig, store *db.DB, sg SubscriptionGetter, r *Resolver) *Applier {
	cfg.Mode = cmp.Or(cfg.Mode, ModeRefetch)
	cfg.Workers = cmp.Or(cfg.Workers, 4)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 20)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 12)
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, time.Second)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 10*time.Minute)
	cfg.Lease = cmp.Or(cfg.Lease, 30*time.Second)
	cfg.Poll = cmp.Or(cfg.Poll, 2*time.Second)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Applier{cfg: cfg, store: store, stripe: sg, resolver: r, wake: make(chan struct{}, 1), log: log}
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
			a.log.Warn("claim events", "err", err)
		}
		if n == a.cfg.BatchSize {
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

// RunOnce claims one batch and processes it; it returns how many events it
// claimed. Processing goes on after ctx ends, for up to drain, so that a
// claimed event is finished rather than left to its lease.
func (a *Applier) RunOnce(ctx context.Context, drain time.Duration) (int, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	// A claim once sent runs to completion even if ctx ends meanwhile:
	// cancelled after Postgres committed it, it would leave its events
	// leased, unprocessed, until the lease expires.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(drain, a.cfg.Lease))
	defer cancel()
	evs, err := a.store.ClaimEvents(pctx, a.cfg.BatchSize, a.cfg.Lease)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	held := newClaimSet(evs)
	stop := a.keepClaims(pctx, held)
	defer stop()
	for _, g := range groupBySubscription(evs) {
		a.processGroup(pctx, g, held)
	}
	return len(evs), nil
}

// Drain processes due events until none is left, for the CLI and tests.
func (a *Applier) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := a.RunOnce(ctx, 0)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

type group struct {
	subID string
	evs   []db.ClaimedEvent
	bad   error // the payload could not be read
}

// groupBySubscription gathers a batch's events per subscription, oldest
// first, so each subscription is locked (and, in refetch mode, fetched) once.
func groupBySubscription(evs []db.ClaimedEvent) []group {
	idx := map[string]int{}
	var out []group
	for _, ev := range evs {
		subID := ev.SubscriptionID.String
		var bad error
		if subID == "" {
			parsed, err := DecodeEvent(ev.Payload)
			if err != nil {
				bad = err
			} else {
				subID = SubscriptionIDOf(parsed)
			}
		}
		if subID == "" || bad != nil {
			out = append(out, group{evs: []db.ClaimedEvent{ev}, bad: bad})
			continue
		}
		i, ok := idx[subID]
		if !ok {
			i = len(out)
			idx[subID] = i
			out = append(out, group{subID: subID})
		}
		out[i].evs = append(out[i].evs, ev)
	}
	for _, g := range out {
		slices.SortStableFunc(g.evs, func(x, y db.ClaimedEvent) int { return x.Created.Compare(y.Created) })
	}
	return out
}

// permanent marks errors that retrying cannot fix: the event is ignored
// with its reason recorded.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func (a *Applier) processGroup(ctx context.Context, g group, held *claimSet) {
	start := a.cfg.Clock()
	if g.bad != nil || g.subID == "" {
		held.release(g.evs)
		reason := "event has no subscription"
		if g.bad != nil {
			reason = g.bad.Error()
		}
		for _, ev := range g.evs {
			a.finish(ctx, ev, g.subID, db.StatusIgnored, reason, "ignored")
		}
		return
	}
	var outcome string
	err := a.store.WithSubscription(ctx, g.subID, func(tx *db.Tx) error {
		var err error
		outcome, err = a.applyGroup(ctx, tx, g)
		if err != nil {
			return err
		}
		for _, ev := range g.evs {
			if err := tx.FinishEvent(ctx, db.EventResult{ID: ev.ID, Status: db.StatusApplied, SubscriptionID: g.subID}); err != nil {
				return err
			}
		}
		return nil
	})
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.EventApplyDuration.Observe(a.cfg.Clock().Sub(start).Seconds())
	}
	if err == nil {
		for _, ev := range g.evs {
			a.observe(ev, outcome)
			a.log.Debug("event applied", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID, "outcome", outcome)
		}
		return
	}
	held.release(g.evs) // before recording the failure, which a renewal must not overwrite
	var p permanent
	for _, ev := range g.evs {
		switch {
		case errors.As(err, &p):
			a.log.Warn("event ignored", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID, "reason", err.Error())
			a.finish(ctx, ev, g.subID, db.StatusIgnored, err.Error(), "ignored")
		case ev.Attempts >= a.cfg.MaxAttempts:
			a.log.Error("event dead after retries", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID,
				"attempts", ev.Attempts, "err", err.Error())
			a.finish(ctx, ev, g.subID, db.StatusDead, err.Error(), "dead")
		default:
			a.log.Warn("event apply failed, will retry", "event_id", ev.ID, "type", ev.Type, "subscription_id", g.subID,
				"attempts", ev.Attempts, "err", err.Error())
			a.finishRetry(ctx, ev, g.subID, err)
		}
	}
}

// applyGroup computes and writes the desired row for a group's
// subscription. In refetch mode (and for invoice events) the subscription
// is fetched once, inside the lock, so the state written is never older
// than what another writer wrote before.
func (a *Applier) applyGroup(ctx context.Context, tx *db.Tx, g group) (string, error) {
	stored, err := tx.Get(ctx, g.subID)
	known := err == nil && stored.UserID != nil
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return "", err
	}
	refetch := a.cfg.Mode == ModeRefetch
	for _, ev := range g.evs {
		refetch = refetch || IsInvoiceEvent(ev.Type)
	}
	var rows []db.Subscription
	if refetch {
		at := a.cfg.Clock()
		sub, err := a.stripe.GetSubscription(ctx, g.subID)
		if isNotFound(err) {
			return "", permanent{fmt.Errorf("subscription %s not found in Stripe", g.subID)}
		}
		if err != nil {
			return "", fmt.Errorf("fetch subscription %s: %w", g.subID, err)
		}
		row, err := a.resolver.Desired(ctx, sub, at, known)
		if err != nil {
			return "", classifyDesired(err)
		}
		rows = append(rows, row)
	} else {
		for _, ev := range g.evs {
			parsed, err := DecodeEvent(ev.Payload)
			var sub *stripe.Subscription
			if err == nil {
				sub, err = a.resolver.SubscriptionFromPayload(parsed)
			}
			if err != nil {
				return "", permanent{fmt.Errorf("event %s: %w", ev.ID, err)}
			}
			if sub.ID != g.subID {
				return "", permanent{fmt.Errorf("event %s: %w: object is %s, event was stored for %s", ev.ID, ErrUnreadable, clip(sub.ID), g.subID)}
			}
			row, err := a.resolver.Desired(ctx, sub, ev.Created, known)
			if err != nil {
				return "", classifyDesired(err)
			}
			rows = append(rows, row)
		}
	}
	outcome := "stale"
	for _, row := range rows {
		res, err := tx.Upsert(ctx, row)
		if err != nil {
			return "", err
		}
		if !res.Stale {
			outcome = "applied"
		}
	}
	return outcome, nil
}

func classifyDesired(err error) error {
	if errors.Is(err, ErrNoItems) || isNotFound(err) {
		return permanent{err}
	}
	return err
}

func isNotFound(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == 404
}

func (a *Applier) finish(ctx context.Context, ev db.ClaimedEvent, subID, status, reason, outcome string) {
	err := a.record(ctx, db.EventResult{ID: ev.ID, Status: status, Error: reason, SubscriptionID: subID})
	if err != nil {
		a.log.Error("record event result", "event_id", ev.ID, "type", ev.Type, "subscription_id", subID, "err", err.Error())
		return
	}
	a.observe(ev, outcome)
}

func (a *Applier) finishRetry(ctx context.Context, ev db.ClaimedEvent, subID string, cause error) {
	retry := a.cfg.Clock().Add(a.backoff(ev.Attempts))
	err := a.record(ctx, db.EventResult{ID: ev.ID, Status: db.StatusFailed, Error: cause.Error(), RetryAt: retry, SubscriptionID: subID})
	if err != nil {
		a.log.Error("record event failure", "event_id", ev.ID, "type", ev.Type, "subscription_id", subID, "err", err.Error())
		return
	}
	if a.cfg.Metrics != nil {
		a.cfg.Metrics.EventsApplied.WithLabelValues(ev.Type, "retry").Inc()
	}
}

// record writes the result of a claimed event outside the apply
// transaction, retrying while the database is unavailable until ctx (the
// batch's processing time, within the claim's lease) ends. A result that
// cannot be written leaves the event claimed until its lease expires: after
// a database restart, an event whose apply failed because of that restart
// would wait out the whole lease before it is tried again.
func (a *Applier) record(ctx context.Context, r db.EventResult) error {
	return db.RetryUnavailable(ctx, func(ctx context.Context) error { return a.store.FinishEvent(ctx, r) })
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

func (a *Applier) observe(ev db.ClaimedEvent, outcome string) {
	m := a.cfg.Metrics
	if m == nil {
		return
	}
	m.EventsApplied.WithLabelValues(ev.Type, outcome).Inc()
	if outcome == "applied" || outcome == "stale" {
		m.WebhookLag.WithLabelValues(ev.Source).Observe(a.cfg.Clock().Sub(ev.Created).Seconds())
	}
}
