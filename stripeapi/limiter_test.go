package stripeapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
)

// safety bounds waits that only end if the code under test is correct; it
// turns a hang into a failure and is never an assertion on speed.
const safety = 10 * time.Second

// gatedSleep replaces the limiter's sleep: every wait for a token blocks
// until the test sends on gate, so the bucket stays saturated for as long
// as the test wants, independently of the clock.
func gatedSleep(gate <-chan struct{}, sleeping chan<- struct{}) func(context.Context, time.Duration) error {
	return func(ctx context.Context, _ time.Duration) error {
		select {
		case sleeping <- struct{}{}:
		default:
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func TestHighPriorityServedBeforeQueuedLow(t *testing.T) {
	t.Parallel()
	arrivals := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		arrivals <- id
		writeJSON(w, 200, obj("subscription", id))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL, func(c *Config) { c.RateLimit, c.Burst = 0.001, 1 })
	gate := make(chan struct{})
	sleeping := make(chan struct{}, 1)
	env.c.lim.sleep = gatedSleep(gate, sleeping)

	ctx := t.Context()
	low := WithPriority(ctx, PriorityLow)
	var wg sync.WaitGroup
	get := func(ctx context.Context, id string) {
		wg.Go(func() {
			if _, err := env.c.GetSubscription(ctx, id); err != nil {
				t.Errorf("GetSubscription(%s): %v", id, err)
			}
		})
	}

	// The burst token goes to a first request; the bucket is now empty.
	if _, err := env.c.GetSubscription(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	<-arrivals
	// low1 takes the holder role and waits for a token; low2..low4 queue.
	get(low, "low1")
	select {
	case <-sleeping:
	case <-time.After(safety):
		t.Fatal("low1 never waited for a token")
	}
	for i, id := range []string{"low2", "low3", "low4"} {
		get(low, id)
		testenv.WaitFor(t, id+" to queue", func() bool { _, l := env.c.lim.queued(); return l == i+1 })
	}
	// high arrives last.
	get(ctx, "high")
	testenv.WaitFor(t, "high to queue", func() bool { h, _ := env.c.lim.queued(); return h == 1 })

	// Release one token at a time and see who reaches the server.
	var order []string
	for range 4 + 1 {
		select {
		case gate <- struct{}{}:
		case <-time.After(safety):
			t.Fatalf("nobody waited for a token; order so far %v", order)
		}
		select {
		case id := <-arrivals:
			order = append(order, id)
		case <-time.After(safety):
			t.Fatalf("no request reached the server; order so far %v", order)
		}
	}
	wg.Wait()
	want := []string{"low1", "high", "low2", "low3", "low4"}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("server saw %v, want %v (low1 already held the token wait)", order, want)
	}
	if h, l := env.c.lim.queued(); h != 0 || l != 0 {
		t.Errorf("queue not empty: high %d low %d", h, l)
	}
}

func TestLimiterCancelledWaiterLeavesQueue(t *testing.T) {
	t.Parallel()
	l := newLimiter(0.001, 1)
	gate := make(chan struct{})
	sleeping := make(chan struct{}, 1)
	l.sleep = gatedSleep(gate, sleeping)
	ctx := t.Context()

	if err := l.wait(ctx, PriorityHigh); err != nil { // takes the burst token
		t.Fatal(err)
	}
	holder := make(chan error, 1)
	go func() { holder <- l.wait(ctx, PriorityLow) }()
	<-sleeping

	cctx, cancel := context.WithCancel(ctx)
	queued := make(chan error, 1)
	go func() { queued <- l.wait(cctx, PriorityHigh) }()
	testenv.WaitFor(t, "the waiter to queue", func() bool { h, _ := l.queued(); return h == 1 })
	cancel()
	if err := <-queued; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter returned %v", err)
	}
	if h, lo := l.queued(); h != 0 || lo != 0 {
		t.Fatalf("queue not empty after cancel: high %d low %d", h, lo)
	}

	gate <- struct{}{}
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	// The role was released: a new waiter becomes holder and waits.
	next := make(chan error, 1)
	go func() { next <- l.wait(ctx, PriorityLow) }()
	select {
	case <-sleeping:
	case <-time.After(safety):
		t.Fatal("the holder role was lost")
	}
	gate <- struct{}{}
	if err := <-next; err != nil {
		t.Fatal(err)
	}
}

func TestLimiterEnforcesRate(t *testing.T) {
	t.Parallel()
	l := newLimiter(50, 1)
	start := time.Now()
	for range 6 {
		if err := l.wait(t.Context(), PriorityHigh); err != nil {
			t.Fatal(err)
		}
	}
	// One burst token, then five at 50/s: at least 100ms (lower bound only).
	if d := time.Since(start); d < 90*time.Millisecond {
		t.Errorf("6 tokens at 50/s with burst 1 took %v, want ≥ 100ms", d)
	}
}

func TestPriorityFromContext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if p := PriorityFrom(ctx); p != PriorityHigh {
		t.Errorf("default priority = %v, want high", p)
	}
	if p := PriorityFrom(WithPriority(ctx, PriorityLow)); p != PriorityLow {
		t.Errorf("priority = %v, want low", p)
	}
	if PriorityHigh.String() != "high" || PriorityLow.String() != "low" {
		t.Error("priority label values")
	}
}
