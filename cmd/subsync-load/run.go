package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/stripe/stripe-go/v76/webhook"
)

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("subsync-load", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/stripe", "webhook endpoint")
	secret := fs.String("secret", "", "webhook signing secret (whsec_…)")
	n := fs.Int("n", 2000, "events to send")
	c := fs.Int("c", 8, "concurrent senders")
	subs := fs.Int("subscriptions", 500, "distinct subscriptions the events are about")
	price := fs.String("price", "price_load", "price id in the events")
	dbURL := fs.String("database-url", "", "when set, wait until every event is applied and report the time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("-secret is required")
	}
	run := time.Now().UnixNano()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *c}}
	lat := make([]time.Duration, *n)
	var next, fails atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range *c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || ctx.Err() != nil {
					return
				}
				body := event(run, i, i%*subs, *price)
				now := time.Now()
				sig := fmt.Sprintf("t=%d,v1=%x", now.Unix(), webhook.ComputeSignature(now, body, *secret))
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", sig)
				t0 := time.Now()
				resp, err := client.Do(req)
				lat[i] = time.Since(t0)
				if err != nil {
					fails.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fails.Add(1)
				}
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	fmt.Fprintf(out, "sent %d events with %d senders in %s: %.0f events/s, %d not answered 200\n",
		*n, *c, sent.Round(time.Millisecond), float64(*n)/sent.Seconds(), fails.Load())
	fmt.Fprintf(out, "answer latency: p50 %s  p95 %s  p99 %s  max %s\n",
		pct(.50).Round(10*time.Microsecond), pct(.95).Round(10*time.Microsecond),
		pct(.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	if *dbURL == "" {
		return nil
	}
	x, err := sqlx.ConnectContext(ctx, "postgres", *dbURL)
	if err != nil {
		return err
	}
	defer x.Close()
	prefix := fmt.Sprintf("evt_load%d_%%", run)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var left int
		if err := x.GetContext(ctx, &left, `SELECT count(*) FROM stripe_webhook_events
			WHERE id LIKE $1 AND status IN ('pending','failed')`, prefix); err != nil {
			return err
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d events still not applied after 5 minutes", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var st struct {
		Applied int       `db:"applied"`
		Dead    int       `db:"dead"`
		Ignored int       `db:"ignored"`
		Last    time.Time `db:"last"`
		P50     float64   `db:"p50"`
		P99     float64   `db:"p99"`
	}
	err = x.GetContext(ctx, &st, `SELECT count(*) FILTER (WHERE status = 'applied') AS applied,
			count(*) FILTER (WHERE status = 'dead') AS dead,
			count(*) FILTER (WHERE status = 'ignored') AS ignored,
			max(processed_at) AS last,
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)) AS p50,
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at)) AS p99
		FROM stripe_webhook_events WHERE id LIKE $1`, prefix)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "applied %d (dead %d, ignored %d); all applied %s after the first request\n",
		st.Applied, st.Dead, st.Ignored, st.Last.Sub(start).Round(time.Millisecond))
	fmt.Fprintf(out, "stored → applied: p50 %.1f ms  p99 %.1f ms\n", st.P50*1000, st.P99*1000)
	return nil
}

// event builds a customer.subscription.updated event about subscription
// number sub, carrying the whole subscription as Stripe sends it.
func event(run int64, i, sub int, price string) []byte {
	now := time.Now().Unix()
	return fmt.Appendf(nil, `{"id":"evt_load%d_%d","object":"event","api_version":"2023-10-16","created":%d,
"type":"customer.subscription.updated","livemode":false,"pending_webhooks":1,
"data":{"object":{"id":"sub_load%d_%d","object":"subscription","customer":"cus_load%d","status":"active",
"created":%d,"current_period_start":%d,"current_period_end":%d,"cancel_at_period_end":%t,"canceled_at":null,
"metadata":{"user_id":"load-user-%d"},"items":{"object":"list","data":[{"id":"si_load%d","object":"subscription_item",
"price":{"id":%q,"object":"price","recurring":{"interval":"year","interval_count":1}}}]}}}}`,
		run, i, now, run, sub, sub, now-86400, now-86400, now+364*86400, i%2 == 0, sub, sub, price)
}
