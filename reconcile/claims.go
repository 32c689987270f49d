package reconcile

import (
	"context"
	"sync"
	"time"

	"github.com/subsync/subsync/db"
)

// claimSet holds the events of a claimed batch still being processed: the
// ones whose lease keepClaims renews.
type claimSet struct {
	mu   sync.Mutex
	held map[string]int // event id → attempts of this claim
}

func newClaimSet(evs []db.ClaimedEvent) *claimSet {
	c := &claimSet{held: make(map[string]int, len(evs))}
	for _, ev := range evs {
		c.held[ev.ID] = ev.Attempts
	}
	return c
}

// release stops renewing evs. It waits for a renewal in flight, so that a
// result recorded after it returns is never overwritten by a renewal.
func (c *claimSet) release(evs []db.ClaimedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		delete(c.held, ev.ID)
	}
}

// keepClaims renews the lease of the events still held every third of the
// lease, until ctx ends or the returned stop is called. A live worker keeps
// its claims however long Stripe makes it wait, while the claims of a worker
// that died (SIGKILL, OOM, a lost node) come back after one short lease
// rather than after the longest processing time anyone could need.
func (a *Applier) keepClaims(ctx context.Context, c *claimSet) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every := max(a.cfg.Lease/3, time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			a.renew(ctx, c, every)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func (a *Applier) renew(ctx context.Context, c *claimSet, timeout time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) == 0 {
		return
	}
	ids := make([]string, 0, len(c.held))
	attempts := make([]int, 0, len(c.held))
	for id, n := range c.held {
		ids = append(ids, id)
		attempts = append(attempts, n)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := a.store.ExtendClaims(rctx, ids, attempts, a.cfg.Lease); err != nil && ctx.Err() == nil {
		a.log.Warn("renew event claims", "events", len(ids), "err", err.Error())
	}
}
