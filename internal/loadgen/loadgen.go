// Package loadgen sends signed Stripe webhooks to a running subsyncd and
// measures what happens: how fast and how quickly they are acknowledged,
// and, given the daemon's database, when every one of them is applied. Both
// the load tool (cmd/subsync-load) and the benchmark (cmd/subsync-bench) use
// it.
package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// Config is one load run.
type Config struct {
	// URL is the webhook endpoint, e.g. http://127.0.0.1:8080/webhooks/stripe.
	URL string
	// Secret signs the events (whsec_…).
	Secret string
	// Events is how many events to send; Clients how many keep-alive
	// senders send them concurrently.
	Events, Clients int
	// Subscriptions is how many distinct subscriptions the events are
	// about, round robin; ignored when SubscriptionIDs is set.
	Subscriptions int
	// SubscriptionIDs, when set, are the subscriptions the events are
	// about (round robin), e.g. ones a Stripe fake knows for refetch mode.
	SubscriptionIDs []string
	// Price is the price id in the events (default price_load).
	Price string
	// Run names the run; event ids are EventID(Run, i). Default: the time.
	Run string
}

// Latency holds answer-time percentiles.
type Latency struct {
	P50, P95, P99, Max time.Duration
}

// Result is what sending measured.
type Result struct {
	Run     string
	Events  int
	Clients int
	// Non200 counts requests that failed or were answered other than 200;
	// FirstError describes the first of them.
	Non200     int
	FirstError string
	// Start is when the first request was sent, LastAck when the last
	// answer arrived.
	Start, LastAck time.Time
	Latency        Latency
}

// Duration is the send time, first request to last answer.
func (r Result) Duration() time.Duration { return r.LastAck.Sub(r.Start) }

// AckRate is acknowledged events per second.
func (r Result) AckRate() float64 {
	return float64(r.Events-r.Non200) / r.Duration().Seconds()
}

// Send sends cfg.Events events with cfg.Clients concurrent senders and
// waits for every answer.
func Send(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Secret == "" || cfg.URL == "" {
		return Result{}, errors.New("loadgen: URL and Secret are required")
	}
	if cfg.Events <= 0 || cfg.Clients <= 0 || (cfg.Subscriptions <= 0 && len(cfg.SubscriptionIDs) == 0) {
		return Result{}, errors.New("loadgen: events, clients and subscriptions must be positive")
	}
	run := cmp.Or(cfg.Run, strconv.FormatInt(time.Now().UnixNano(), 36))
	price := cmp.Or(cfg.Price, "price_load")
	subs := cfg.SubscriptionIDs
	if len(subs) == 0 {
		for k := range cfg.Subscriptions {
			subs = append(subs, SubscriptionID(run, k))
		}
	}
	target, err := endpoint(cfg.URL)
	if err != nil {
		return Result{}, err
	}
	lat := make([]time.Duration, cfg.Events)
	var (
		next, fails atomic.Int64
		lastAck     atomic.Int64
		firstErr    sync.Once
		errText     string
		wg          sync.WaitGroup
	)
	fail := func(s string) {
		fails.Add(1)
		firstErr.Do(func() { errText = s })
	}
	start := time.Now()
	for range cfg.Clients {
		wg.Go(func() {
			c := newConn(target, 30*time.Second)
			defer c.close()
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.Events || ctx.Err() != nil {
					return
				}
				now := time.Now()
				body := Event(run, i, subs[i%len(subs)], price, now)
				sig := fmt.Sprintf("t=%d,v1=%x", now.Unix(), webhook.ComputeSignature(now, body, cfg.Secret))
				t0 := time.Now()
				status, err := c.post(ctx, body, sig)
				end := time.Now()
				lat[i] = end.Sub(t0)
				if err != nil {
					fail(err.Error())
					continue
				}
				storeMax(&lastAck, end.UnixNano())
				if status != http.StatusOK {
					fail(fmt.Sprintf("%s: %d %s", EventID(run, i), status, http.StatusText(status)))
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	res := Result{
		Run: run, Events: cfg.Events, Clients: cfg.Clients, Non200: int(fails.Load()), FirstError: errText,
		Start: start, LastAck: time.Unix(0, lastAck.Load()), Latency: percentiles(lat),
	}
	if lastAck.Load() == 0 {
		res.LastAck = time.Now()
	}
	return res, nil
}

func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

func percentiles(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	return Latency{P50: at(.50), P95: at(.95), P99: at(.99), Max: d[len(d)-1]}
}

// String prints the percentiles.
func (l Latency) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s", r(l.P50), r(l.P95), r(l.P99), r(l.Max))
}
