package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/subsync/subsync/internal/loadgen"
	"github.com/subsync/subsync/internal/stripefake"
)

// webhookSecret signs the load's events; the daemon is given the same.
const webhookSecret = "whsec_subsync_bench"

// caseResult is one measured run of a case.
type caseResult struct {
	benchCase
	run       int
	load      string // load average at the start
	oldEvents int
	sent      loadgen.Result
	applied   loadgen.Applied
	cpu       cpuUsage
	walBytes  int64
	waits     waits
	refetches int64          // GET /v1/subscriptions/{id} the fake served
	batches   batchStats     // the daemon's batches of webhook events
	pg        *pgbenchResult // the schema as migrated
	pgPlain   *pgbenchResult // the same with the tables' triggers disabled
}

// runCase measures one case: the daemon, then pgbench, each on a fresh
// database of its own.
func runCase(ctx context.Context, o webhookOptions, m *measurer, c benchCase, script string, stderr io.Writer) (caseResult, error) {
	r := caseResult{benchCase: c, load: loadAverage(), oldEvents: o.oldEvents}
	d, err := createDB(ctx, o.databaseURL, "subsync_bench_"+c.name, o.subsyncd)
	if err != nil {
		return r, err
	}
	defer d.drop()
	if err := fillOldEvents(ctx, d, o.oldEvents, stderr); err != nil {
		return r, err
	}
	env := []string{
		"DATABASE_URL=" + d.url, "WEBHOOK_APPLY_MODE=" + c.mode, "STRIPE_WEBHOOK_SECRET=" + webhookSecret,
		"STRIPE_SECRET_KEY=sk_test_x", "LOG_LEVEL=warn", "AUTO_MIGRATE=false",
	}
	cfg := loadgen.Config{Events: c.events, Clients: c.clients, Subscriptions: c.subscriptions, Secret: webhookSecret}
	var fake *stripefake.Server
	if c.mode == "refetch" {
		fake, cfg.SubscriptionIDs, err = refetchFake(c.subscriptions)
		if err != nil {
			return r, err
		}
		defer fake.Close()
		fake.SetFaults(stripefake.Faults{Latency: c.latency})
		rate := c.rateLimit
		if rate <= 0 {
			rate = 25
		}
		env = append(env, "STRIPE_SECRET_KEY="+fake.APIKey(), "STRIPE_API_BASE="+fake.URL(),
			"STRIPE_RATE_LIMIT="+strconv.FormatFloat(rate, 'f', -1, 64))
	}
	dmn, err := startDaemon(ctx, o.subsyncd, env)
	if err != nil {
		return r, err
	}
	defer dmn.stop()
	cfg.URL = dmn.webhookURL()
	db, pid, err := openDB(ctx, d.url)
	if err != nil {
		return r, err
	}
	defer db.Close()
	if fake != nil {
		fake.ResetStats()
	}
	sp, err := m.begin(ctx, d.name, dmn.pid(), pid)
	if err != nil {
		return r, err
	}
	r.sent, err = loadgen.Send(ctx, cfg)
	if err != nil {
		sp.abort()
		return r, err
	}
	r.applied, err = loadgen.WaitApplied(ctx, db, r.sent, 5*time.Minute)
	if err != nil {
		sp.abort()
		return r, fmt.Errorf("%w\n%s", err, tail(dmn.out.String()))
	}
	if r.cpu, r.walBytes, r.waits, err = sp.end(ctx); err != nil {
		return r, err
	}
	if r.batches, err = dmn.batches(ctx); err != nil {
		return r, err
	}
	if fake != nil {
		r.refetches = fake.Stats().ByRoute["GET /v1/subscriptions/{id}"]
	}
	if err := dmn.stop(); err != nil {
		return r, err
	}
	if o.verboseChild {
		fmt.Fprint(stderr, dmn.out.String())
	}
	if !c.pgbench {
		return r, nil
	}
	db.Close()
	d.drop()
	if r.pg, err = pgbenchCase(ctx, o, m, c, script, false, stderr); err != nil {
		return r, err
	}
	if o.withoutTriggers {
		if r.pgPlain, err = pgbenchCase(ctx, o, m, c, script, true, stderr); err != nil {
			return r, err
		}
	}
	return r, nil
}

// pgbenchCase runs pgbench for case c on a fresh database, with the
// triggers of the two tables it writes disabled when plain is set.
func pgbenchCase(ctx context.Context, o webhookOptions, m *measurer, c benchCase, script string, plain bool, stderr io.Writer) (*pgbenchResult, error) {
	pd, err := createDB(ctx, o.databaseURL, "subsync_pgbench_"+c.name, o.subsyncd)
	if err != nil {
		return nil, err
	}
	defer pd.drop()
	if err := fillOldEvents(ctx, pd, o.oldEvents, stderr); err != nil {
		return nil, err
	}
	if plain {
		err := exec1(ctx, pd.url, `ALTER TABLE stripe_webhook_events DISABLE TRIGGER USER;
			ALTER TABLE user_subscriptions DISABLE TRIGGER USER`)
		if err != nil {
			return nil, fmt.Errorf("disable triggers: %w", err)
		}
	}
	pg, err := runPgbench(ctx, m, pd, script, c.events, c.clients, c.subscriptions)
	if err != nil {
		return nil, err
	}
	return &pg, nil
}

// refetchFake starts a Stripe fake holding n subscriptions on a mapped
// price and returns their ids.
func refetchFake(n int) (*stripefake.Server, []string, error) {
	fake := stripefake.New(stripefake.Options{Seed: int64(n)})
	pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 10000, Interval: "year", ProductName: "MAQUINA"})
	if err != nil {
		fake.Close()
		return nil, nil, err
	}
	ids, err := fake.SeedSubscriptions(n, stripefake.SeedOptions{Prices: []string{pr.ID}})
	if err != nil {
		fake.Close()
		return nil, nil, fmt.Errorf("seed %d subscriptions: %w", n, err)
	}
	return fake, ids, nil
}
