package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

const replicaSecret = "whsec_replicas_0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"

// replicaBalancer spreads webhook deliveries over the replicas in turn, as
// a load balancer would, and counts what each received.
type replicaBalancer struct {
	proxies []*httputil.ReverseProxy
	next    atomic.Int64
	served  []atomic.Int64
}

func newReplicaBalancer(t *testing.T, addrs ...string) (*replicaBalancer, string) {
	t.Helper()
	b := &replicaBalancer{served: make([]atomic.Int64, len(addrs))}
	for _, a := range addrs {
		u, err := url.Parse("http://" + a)
		if err != nil {
			t.Fatal(err)
		}
		b.proxies = append(b.proxies, httputil.NewSingleHostReverseProxy(u))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(b.next.Add(1)) % len(b.proxies)
		b.served[i].Add(1)
		b.proxies[i].ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return b, srv.URL
}

// replicaRunID is a random id that keeps this run's keys apart in the
// shared Redis.
func replicaRunID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// replicaMetric sums, over the replicas' /metrics, the samples of metric
// name whose labels include every one of labels (`outcome="skipped"`).
func replicaMetric(t *testing.T, name string, labels []string, ds ...*daemon) float64 {
	t.Helper()
	var sum float64
	for _, d := range ds {
		code, body := get(t, "http://"+d.metrics+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics of %s = %d", d.metrics, code)
		}
	lines:
		for _, line := range strings.Split(body, "\n") {
			series, value, ok := strings.Cut(line, " ")
			if !ok || !strings.HasPrefix(series, name+"{") {
				continue
			}
			for _, l := range labels {
				if !strings.Contains(series, l) {
					continue lines
				}
			}
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			sum += f
		}
	}
	return sum
}

// TestReplicasShareTheWork runs two serve replicas on one database with
// both reconciliation jobs scheduled on the same seconds and webhooks
// delivered to them in turn (duplicates included): the sweeps and
// catch-ups never overlap (one leader per tick, the other counts a
// skipped run), every event is applied once, and every cache invalidation
// is delivered once.
func TestReplicasShareTheWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := stripefake.New(stripefake.Options{Seed: 21})
	t.Cleanup(fake.Close)
	var prices []string
	dbURL := testenv.DatabaseURL(t)
	env := []string{
		"DATABASE_URL=" + dbURL,
		"STRIPE_SECRET_KEY=" + fake.APIKey(),
		"STRIPE_API_BASE=" + fake.URL(),
		"STRIPE_WEBHOOK_SECRET=" + replicaSecret,
		"STRIPE_RATE_LIMIT=200",
		"REDIS_URL=" + testenv.RedisURL(t),
		"CACHE_KEY_TEMPLATE=replicas-" + replicaRunID() + ":features:{user_id}",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=*/2 * * * * *",
		"RECONCILE_EVENTS_SCHEDULE=*/2 * * * * *",
		"LOG_LEVEL=warn",
	}
	for _, p := range []struct {
		plan, period, interval string
		amount                 int64
	}{{"MAQUINA", "ANUAL", "year", 573100}, {"MAQUINA", "MENSAL", "month", 57300}, {"PRO", "ANUAL", "year", 59700}, {"PRO", "MENSAL", "month", 5970}} {
		pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: p.amount, Interval: p.interval})
		if err != nil {
			t.Fatal(err)
		}
		prices = append(prices, pr.ID)
		env = append(env, "STRIPE_PRICE_"+p.plan+"_"+p.period+"="+pr.ID)
	}
	env = slices.Clip(env) // each replica appends its own addresses
	a := startServeForTest(t, env)
	b := startServeForTest(t, env)
	lb, lbURL := newReplicaBalancer(t, a.listen, b.listen)
	fake.AddWebhookEndpoint(lbURL+"/webhooks/stripe", replicaSecret, "", nil)
	// Every Stripe answer takes a while, so a sweep outlasts the skew
	// between the replicas' ticks of the same second.
	fake.SetFaults(stripefake.Faults{Latency: 30 * time.Millisecond})

	var subs []string
	for i := range 24 {
		cus, err := fake.CreateCustomer(stripefake.CustomerParams{})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := fake.CreateSubscription(stripefake.SubscriptionParams{Customer: cus.ID, Price: prices[i%len(prices)],
			Metadata: map[string]string{"user_id": fmt.Sprintf("replica-user-%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub.ID)
	}
	deliver := func() {
		t.Helper()
		st, err := fake.DeliverAll(ctx, stripefake.DeliverOptions{Shuffle: true, DuplicateRate: 0.3, Concurrency: 4})
		if err != nil || st.Failed > 0 {
			t.Fatalf("deliveries: %+v, %v", st, err)
		}
	}
	deliver()
	for round := range 3 { // changes while the jobs tick
		for i, id := range subs {
			var err error
			switch (i + round) % 4 {
			case 0:
				_, err = fake.UpdateSubscriptionPrice(id, prices[(i+round+1)%len(prices)])
			case 1:
				_, err = fake.Renew(id)
			case 2:
				_, err = fake.SetCancelAtPeriodEnd(id, round%2 == 0)
			case 3:
				_, err = fake.FailPayment(id)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		deliver()
	}

	x := sqlx.MustConnect("postgres", dbURL)
	defer x.Close()
	runs := "subsync_reconcile_runs_total"
	skipped := []string{`job_name="subscriptions"`, `outcome="skipped"`}
	testenv.WaitWithin(t, 90*time.Second, "every event applied, rows equal to Stripe, the outbox delivered, three sweeps and a skipped tick", func() bool {
		var waiting, pending, sweeps int
		_ = x.Get(&waiting, `SELECT count(*) FROM stripe_webhook_events WHERE status IN ('pending', 'failed')`)
		_ = x.Get(&pending, `SELECT count(*) FROM cache_invalidations WHERE status = 'pending'`)
		_ = x.Get(&sweeps, `SELECT count(*) FROM reconcile_runs WHERE job = 'subscriptions' AND status = 'succeeded'`)
		if waiting > 0 || pending > 0 || sweeps < 3 || replicaMetric(t, runs, skipped, a, b) < 1 {
			return false
		}
		for _, id := range subs {
			sub, err := fake.Subscription(id)
			if err != nil {
				t.Fatal(err)
			}
			var row struct {
				Status string `db:"status"`
				Price  string `db:"stripe_price_id"`
				End    int64  `db:"end"`
			}
			if x.Get(&row, `SELECT status, stripe_price_id, extract(epoch FROM current_period_end)::bigint AS end
				FROM user_subscriptions WHERE stripe_subscription_id = $1`, id) != nil ||
				row.Status != string(sub.Status) || row.Price != sub.Items.Data[0].Price.ID || row.End != sub.CurrentPeriodEnd {
				return false
			}
		}
		return true
	})

	// Each event applied once: one claim for every applied event, and as
	// many "applied"/"stale" outcomes counted across the replicas.
	var events, applied, reclaimed int
	x.Get(&events, `SELECT count(*) FROM stripe_webhook_events`)
	x.Get(&applied, `SELECT count(*) FROM stripe_webhook_events WHERE status = 'applied'`)
	x.Get(&reclaimed, `SELECT count(*) FROM stripe_webhook_events WHERE status = 'applied' AND attempts <> 1`)
	if reclaimed > 0 || applied == 0 {
		t.Errorf("%d of %d applied events were claimed more than once", reclaimed, applied)
	}
	outcomes := replicaMetric(t, "subsync_events_applied_total", []string{`outcome="applied"`}, a, b) +
		replicaMetric(t, "subsync_events_applied_total", []string{`outcome="stale"`}, a, b)
	if int(outcomes) != applied {
		t.Errorf("the replicas counted %.0f applications, the inbox holds %d applied events", outcomes, applied)
	}

	// Each invalidation delivered once: one claim per row, and as many
	// successes counted across the replicas as there are rows. A sweep may
	// still be writing a row the metric has not counted yet: poll.
	var rows, retried int
	testenv.WaitFor(t, "the success count of both replicas to match the outbox", func() bool {
		x.Get(&rows, `SELECT count(*) FROM cache_invalidations WHERE status = 'done'`)
		return int(replicaMetric(t, "subsync_cache_invalidations_total", []string{`outcome="success"`}, a, b)) == rows
	})
	x.Get(&retried, `SELECT count(*) FROM cache_invalidations WHERE attempts <> 1 OR status <> 'done'`)
	if rows == 0 || retried > 0 {
		t.Errorf("%d cache invalidations, %d of them not delivered at the first attempt", rows, retried)
	}
	if failures := replicaMetric(t, "subsync_cache_invalidations_total", []string{`outcome="failure"`}, a, b); failures > 0 {
		t.Errorf("%.0f cache invalidation failures counted", failures)
	}
	sweepSkips := replicaMetric(t, runs, skipped, a, b)
	catchupSkips := replicaMetric(t, runs, []string{`job_name="events"`, `outcome="skipped"`}, a, b)
	if lb.served[0].Load() == 0 || lb.served[1].Load() == 0 {
		t.Errorf("deliveries per replica: %d and %d, want both", lb.served[0].Load(), lb.served[1].Load())
	}
	if err := a.stop(t); err != nil {
		t.Fatalf("replica a: %v", err)
	}
	if err := b.stop(t); err != nil {
		t.Fatalf("replica b: %v", err)
	}

	// One leader at a time: no two runs of a job overlap.
	for _, job := range []string{"subscriptions", "events"} {
		var runs []struct {
			ID       int64      `db:"id"`
			Status   string     `db:"status"`
			Started  time.Time  `db:"started_at"`
			Finished *time.Time `db:"finished_at"`
		}
		if err := x.Select(&runs, `SELECT id, status, started_at, finished_at FROM reconcile_runs
			WHERE job = $1 ORDER BY started_at, id`, job); err != nil {
			t.Fatal(err)
		}
		for i, r := range runs {
			if r.Finished == nil || r.Status != "succeeded" {
				t.Errorf("%s run %d: %s, finished %v", job, r.ID, r.Status, r.Finished)
				continue
			}
			if i > 0 && runs[i-1].Finished != nil && r.Started.Before(*runs[i-1].Finished) {
				t.Errorf("%s runs %d and %d overlap: %s started before %s finished", job, runs[i-1].ID, r.ID,
					r.Started.Format(time.RFC3339Nano), runs[i-1].Finished.Format(time.RFC3339Nano))
			}
		}
		t.Logf("%s: %d runs, none overlapping", job, len(runs))
	}
	t.Logf("replicas: %d and %d deliveries; %d events stored, %d applied each at one claim (%.0f applications counted "+
		"across the replicas); %d cache invalidations each delivered at one claim (as many successes counted); "+
		"ticks skipped because the other replica led: %.0f sweeps, %.0f catch-ups",
		lb.served[0].Load(), lb.served[1].Load(), events, applied, outcomes, rows, sweepSkips, catchupSkips)
}
