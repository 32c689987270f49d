package stripeapi

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Priority orders requests competing for the rate limiter: when tokens are
// scarce, every waiting High request is served before any waiting Low one.
type Priority int

const (
	// PriorityHigh is for latency-sensitive calls, such as the refetch of a
	// subscription named by a webhook. It is the priority of a context that
	// carries none.
	PriorityHigh Priority = iota
	// PriorityLow is for bulk work that can wait: sweep and catch-up pages.
	PriorityLow
)

// String returns "high" or "low", the value of the priority metric label.
func (p Priority) String() string {
	if p == PriorityLow {
		return "low"
	}
	return "high"
}

type priorityKey struct{}

// WithPriority returns a copy of ctx whose Stripe requests are made at
// priority p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority carried by ctx, PriorityHigh when none.
func PriorityFrom(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok && p == PriorityLow {
		return PriorityLow
	}
	return PriorityHigh
}

// limiter is a token bucket with a priority queue in front of it. One
// waiter at a time (the holder) takes a reservation from the bucket and
// sleeps until it is due; when it is done, the holder role passes to the
// oldest waiting High request, else the oldest waiting Low one. A High
// request therefore waits at most for the holder in front of it, never for
// the Low requests queued before it.
type limiter struct {
	bucket *rate.Limiter
	// sleep waits for d or until ctx is done; tests replace it to hold the
	// bucket saturated without depending on wall-clock time.
	sleep func(ctx context.Context, d time.Duration) error

	mu   sync.Mutex
	busy bool // a holder exists
	high []*waiter
	low  []*waiter
}

type waiter struct {
	ready   chan struct{}
	granted bool // set under mu when the holder role was handed over
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{bucket: rate.NewLimiter(rate.Limit(perSecond), burst), sleep: sleepCtx}
}

// wait blocks until the request may be sent, or ctx is done.
func (l *limiter) wait(ctx context.Context, p Priority) error {
	if err := l.acquire(ctx, p); err != nil {
		return err
	}
	defer l.release()
	r := l.bucket.Reserve()
	if d := r.Delay(); d > 0 {
		if err := l.sleep(ctx, d); err != nil {
			r.Cancel()
			return err
		}
	}
	return nil
}

// acquire makes the caller the holder, queueing behind earlier waiters of
// its priority and behind every High waiter.
func (l *limiter) acquire(ctx context.Context, p Priority) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if !l.busy {
		l.busy = true
		l.mu.Unlock()
		return nil
	}
	w := &waiter{ready: make(chan struct{})}
	if p == PriorityLow {
		l.low = append(l.low, w)
	} else {
		l.high = append(l.high, w)
	}
	l.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		if w.granted {
			// The role arrived as we gave up: pass it on.
			l.mu.Unlock()
			l.release()
			return ctx.Err()
		}
		l.high = slices.DeleteFunc(l.high, func(x *waiter) bool { return x == w })
		l.low = slices.DeleteFunc(l.low, func(x *waiter) bool { return x == w })
		l.mu.Unlock()
		return ctx.Err()
	}
}

// release hands the holder role to the next waiter, High first.
func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next *waiter
	switch {
	case len(l.high) > 0:
		next, l.high = l.high[0], l.high[1:]
	case len(l.low) > 0:
		next, l.low = l.low[0], l.low[1:]
	default:
		l.busy = false
		return
	}
	next.granted = true
	close(next.ready)
}

// queued reports how many requests wait behind the holder, by priority.
func (l *limiter) queued() (high, low int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.high), len(l.low)
}

// sleepCtx sleeps for d or until ctx is done, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
