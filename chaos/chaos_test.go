package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

const chaosSecret = "whsec_chaos_3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e"

// TestChaos runs the daemon through a long history of subscription changes
// while its deliveries are shuffled, duplicated, dropped and retried, Stripe
// answers 500s and 429s slowly, Postgres restarts and crashes, the daemon is
// SIGKILLed and Redis goes away. Once the faults stop it checks that every
// acknowledged event is stored, every row equals Stripe field by field and
// every cache invalidation was delivered, and prints the figures.
func TestChaos(t *testing.T) {
	cfg := loadConfig(t)
	t.Logf("chaos: %d subscriptions, %d changes, %d faults, pace %s, seed %d (CHAOS_SEED=%d reproduces the history)",
		cfg.subscriptions, cfg.changes, cfg.faults, cfg.pace, cfg.seed, cfg.seed)
	ctx := context.Background()

	bin := testenv.BuildSubsyncd(t)
	pg := testenv.StartPostgres(t)
	rd := testenv.StartRedis(t)
	fake := stripefake.New(stripefake.Options{Seed: int64(cfg.seed)})
	t.Cleanup(fake.Close)
	w, err := newWorld(fake, rand.New(rand.NewPCG(cfg.seed, 0xc4a05)))
	if err != nil {
		t.Fatal(err)
	}

	d := &daemon{
		bin:     bin,
		listen:  fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		logPath: filepath.Join(t.TempDir(), "subsyncd.log"),
	}
	d.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + pg.URL(),
		"STRIPE_SECRET_KEY=" + fake.APIKey(),
		"STRIPE_API_BASE=" + fake.URL(),
		"STRIPE_WEBHOOK_SECRET=" + chaosSecret,
		"STRIPE_RATE_LIMIT=200",
		"WEBHOOK_APPLY_MODE=" + cfg.mode,
		"REDIS_URL=" + rd.URL(),
		"RECONCILE_EVENTS_SCHEDULE=@every 5s",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=" + cfg.sweep,
		"LISTEN_ADDR=" + d.listen,
		fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", testenv.FreePort(t)),
		"LOG_LEVEL=info",
		"LOG_FORMAT=json",
	}, w.priceEnv()...)
	t.Cleanup(func() {
		d.kill(t)
		if t.Failed() {
			t.Logf("subsyncd log (last lines):\n%s", d.logTail(60))
		}
	})
	d.start(t)

	rec, proxyURL := newRecorder(t, "http://"+d.listen)
	fake.AddWebhookEndpoint(proxyURL+"/webhooks/stripe", chaosSecret, "", nil)

	x, err := sqlx.Open("postgres", pg.URL()+"&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	ropts, err := redis.ParseURL(rd.URL())
	if err != nil {
		t.Fatal(err)
	}
	ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout, ropts.MaxRetries = time.Second, time.Second, time.Second, -1
	redis.SetLogger(quietRedis{}) // the seeding during Redis outages fails on purpose
	rdb := redis.NewClient(ropts)
	t.Cleanup(func() { rdb.Close() })

	// The population, then every user's key seeded before any change.
	if err := w.populate(cfg.subscriptions); err != nil {
		t.Fatal(err)
	}
	seed := newSeeder(rdb, x)
	seed.seed(ctx, w.userIDs())

	svc := &services{pg: pg, redis: rd, daemon: d, reseed: func() { seed.seed(ctx, w.userIDs()) }}
	dl := startDeliverer(fake, stripefake.DeliverOptions{
		Shuffle: true, DuplicateRate: 0.15, DropRate: 0.05, Concurrency: 4,
		RetryLikeStripe: true, MaxAttempts: 4, RetryBackoff: 25 * time.Millisecond,
	}, 100*time.Millisecond)
	t.Cleanup(dl.stop)

	// The history: changes paced over time, faults spread over it, Stripe
	// misbehaving from 10% to 90% of it, keys seeded again as it goes.
	plan := newFaultPlan(cfg.changes, cfg.faults)
	seedEvery := max(1, cfg.changes/10)
	changeStart := time.Now()
	for i := range cfg.changes {
		switch i {
		case cfg.changes / 10:
			fake.SetFaults(stripeFaults)
		case cfg.changes * 9 / 10:
			fake.SetFaults(stripefake.Faults{})
		}
		plan.step(t, i, svc)
		if _, err := w.change(); err != nil {
			t.Fatal(err)
		}
		if i%seedEvery == seedEvery-1 {
			seed.seed(ctx, w.someUsers(0.5))
		} else {
			seed.read(ctx)
		}
		time.Sleep(cfg.pace)
	}
	plan.finish(t, svc)
	fake.SetFaults(stripefake.Faults{})
	faultStats := fake.Stats()
	dl.stop()
	changePhase := time.Since(changeStart)

	// What Stripe still owes: every pending delivery, until none fails.
	finalStart := time.Now()
	var final stripefake.DeliverStats
	for {
		st, err := fake.DeliverAll(ctx, stripefake.DeliverOptions{
			Shuffle: true, Concurrency: 4, RetryLikeStripe: true, MaxAttempts: 6, RetryBackoff: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		final.Sent += st.Sent
		final.Delivered += st.Delivered
		final.Retries += st.Retries
		if st.Failed == 0 {
			break
		}
		if time.Since(finalStart) > 2*time.Minute {
			t.Fatalf("final deliveries still fail after 2m: %+v\n%s", st, d.logTail(30))
		}
	}
	finalPhase := time.Since(finalStart)

	// Convergence: rows equal Stripe, the outbox is empty, stale keys gone.
	convStart := time.Now()
	deadline := convStart.Add(cfg.converge)
	truth, handled := w.truth(), handledEvents(fake)
	var c convergence
	lastLog := time.Now()
	for {
		c = converge(ctx, x, truth, handled, seed)
		if c.done() {
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			t.Logf("chaos: converging: %s", c)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			t.Errorf("no convergence within %s (CHAOS_CONVERGE_TIMEOUT): %s", cfg.converge, c)
			for _, l := range head(c.diffs, 30) {
				t.Errorf("  row: %s", l)
			}
			for _, l := range head(c.unseen, 10) {
				t.Errorf("  event never stored: %s", l)
			}
			for _, l := range head(c.cache.Stale, 10) {
				t.Errorf("  cache key not deleted: %s", l)
			}
			logInbox(t, x)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	convergeTime := time.Since(convStart)

	// (a) every event the daemon acknowledged with a 200 is stored.
	acked := rec.acknowledged()
	missing, err := missingEvents(ctx, x, acked)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged events are not in stripe_webhook_events: %v", len(missing), len(acked), head(missing, 20))
	}

	f := gatherFigures(ctx, t, x, fake, rec)
	if err := d.terminate(); err != nil {
		t.Errorf("subsyncd did not exit 0 on SIGTERM: %v\n%s", err, d.logTail(20))
	}
	deliv, rounds := dl.stats()
	var b strings.Builder
	fmt.Fprintf(&b, "chaos figures (seed %d):\n", cfg.seed)
	fmt.Fprintf(&b, "  subscriptions      %d in Stripe (%d created at start, %d users)\n", fake.SubscriptionCount(), cfg.subscriptions, len(w.users))
	fmt.Fprintf(&b, "  changes            %d (%s); %d refused by the fake and replaced\n", cfg.changes, w.opSummary(), w.refused)
	fmt.Fprintf(&b, "  events             %d created, %d of handled types\n", f.events, f.handled)
	fmt.Fprintf(&b, "  deliveries         %d HTTP requests in %d rounds: %d delivered, %d duplicates, %d dropped, %d retries, %d non-2xx, %d transport errors, %d left for a later round\n",
		deliv.Sent, rounds, deliv.Delivered, deliv.Duplicates, deliv.Dropped, deliv.Retries, deliv.Non2xx, deliv.Errors, deliv.Failed)
	fmt.Fprintf(&b, "  final delivery     %d requests, %d delivered, %d retries, in %s\n", final.Sent, final.Delivered, final.Retries, finalPhase.Round(time.Millisecond))
	fmt.Fprintf(&b, "  daemon answers     %s; %d events reached it, %d acknowledged (all stored: %v), %d reached it more than once, %d acknowledged after a failed attempt\n",
		statusSummary(f.proxy.ByStatus), f.proxy.Events, f.proxy.Acked, len(missing) == 0, f.proxy.Redelivered, f.proxy.AfterFailure)
	fmt.Fprintf(&b, "  inbox              %s\n", f.inbox)
	fmt.Fprintf(&b, "  catch-up           %s\n", f.runs)
	fmt.Fprintf(&b, "  faults             Stripe %d×500, %d×429 (of %d API requests, %s latency); Postgres %d fast restarts, %d crashes; %d SIGKILLs of the daemon (%d starts); %d Redis outages\n",
		faultStats.ByStatus[http.StatusInternalServerError], faultStats.ByStatus[http.StatusTooManyRequests], faultStats.Requests, stripeFaults.Latency,
		plan.counts[faultPostgresRestart], plan.counts[faultPostgresCrash]+plan.counts[faultPostgresAndKill],
		d.kills, d.starts, plan.counts[faultRedisOutage])
	fmt.Fprintf(&b, "  outages            daemon down %s, Postgres down %s (crashes; fast restarts not counted), Redis down %s\n",
		(plan.down[faultDaemonKill] + plan.down[faultPostgresAndKill]).Round(100*time.Millisecond),
		plan.down[faultPostgresCrash].Round(100*time.Millisecond), plan.down[faultRedisOutage].Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  cache              %s; %d seeding rounds (%d failed), %d users' features changed after their last seeding, all their keys gone: %v; %d unchanged keys kept\n",
		f.outbox, seed.rounds, seed.failed, c.cache.Changed, len(c.cache.Stale) == 0, c.cache.Kept)
	fmt.Fprintf(&b, "  rows               %d rows, %d field differences from Stripe\n", f.rows, len(c.diffs))
	fmt.Fprintf(&b, "  daemon log         %d error and %d warning lines over %d starts\n",
		d.logCount(`"level":"ERROR"`), d.logCount(`"level":"WARN"`), d.starts)
	fmt.Fprintf(&b, "  time               changes %s, final delivery %s, converged %s after it\n",
		changePhase.Round(time.Millisecond), finalPhase.Round(time.Millisecond), convergeTime.Round(time.Millisecond))
	t.Log(b.String())
	if p := os.Getenv("CHAOS_KEEP_LOG"); p != "" {
		if b, err := os.ReadFile(d.logPath); err == nil {
			_ = os.WriteFile(p, b, 0o644)
		}
	}
}

// convergence is the state of the end conditions.
type convergence struct {
	diffs   []string   // row fields that differ from Stripe
	unseen  []string   // handled events Stripe created that the inbox lacks
	waiting int        // inbox events still to apply
	outbox  int        // cache invalidations still to deliver
	cache   cacheCheck // seeded keys against the rows
	err     error
}

func (c convergence) done() bool {
	return c.err == nil && len(c.diffs) == 0 && len(c.unseen) == 0 && c.waiting == 0 && c.outbox == 0 && len(c.cache.Stale) == 0
}

func (c convergence) String() string {
	return fmt.Sprintf("%d field differences, %d handled events not in the inbox, %d inbox events not applied, %d pending cache invalidations, %d stale cache keys, error %v",
		len(c.diffs), len(c.unseen), c.waiting, c.outbox, len(c.cache.Stale), c.err)
}

// handledEvents returns the ids of the events of handled types the fake
// created.
func handledEvents(fake *stripefake.Server) []string {
	var ids []string
	for _, ev := range fake.Events() {
		if reconcile.Handled(string(ev.Type)) {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

// converge reads the end conditions against Stripe's final state (truth
// and handled, computed once: rendering every event of the fake at each
// poll would take the CPU the daemon needs): rows equal Stripe, every
// handled event is in the inbox and applied, the outbox is empty, stale
// keys are gone.
func converge(ctx context.Context, x *sqlx.DB, truth map[string]expectedRow, handled []string, seed *seeder) convergence {
	var c convergence
	if c.diffs, c.err = compareRows(ctx, x, truth); c.err != nil {
		return c
	}
	if c.unseen, c.err = missingEvents(ctx, x, handled); c.err != nil {
		return c
	}
	if c.waiting, c.err = count(ctx, x, `SELECT count(*) FROM stripe_webhook_events WHERE status IN ('pending', 'failed')`); c.err != nil {
		return c
	}
	if c.outbox, c.err = count(ctx, x, `SELECT count(*) FROM cache_invalidations WHERE status = 'pending'`); c.err != nil {
		return c
	}
	c.cache, c.err = seed.check(ctx)
	return c
}

// figures are the end-of-run counts read from the database and the fake.
type figures struct {
	events, handled, rows int
	proxy                 proxyFigures
	inbox, runs, outbox   string
}

func gatherFigures(ctx context.Context, t *testing.T, x *sqlx.DB, fake *stripefake.Server, rec *recorder) figures {
	t.Helper()
	var f figures
	for _, ev := range fake.Events() {
		f.events++
		if reconcile.Handled(string(ev.Type)) {
			f.handled++
		}
	}
	f.proxy = rec.figures()
	f.rows, _ = count(ctx, x, `SELECT count(*) FROM user_subscriptions`)
	f.inbox = groupCounts(ctx, t, x, `SELECT source || ' ' || status AS k, count(*) AS n FROM stripe_webhook_events GROUP BY 1 ORDER BY 1`)
	reclaimed, _ := count(ctx, x, `SELECT count(*) FROM stripe_webhook_events WHERE attempts > 1`)
	f.inbox += fmt.Sprintf("; %d events took more than one attempt", reclaimed)
	f.runs = groupCounts(ctx, t, x, `SELECT job || ' ' || status AS k, count(*) AS n FROM reconcile_runs GROUP BY 1 ORDER BY 1`)
	if n, err := count(ctx, x, `SELECT count(*) FROM stripe_webhook_events WHERE source = 'catchup'`); err == nil {
		f.runs += fmt.Sprintf("; %d missed events put in the inbox by the catch-up", n)
	}
	total, _ := count(ctx, x, `SELECT count(*) FROM cache_invalidations`)
	retried, _ := count(ctx, x, `SELECT count(*) FROM cache_invalidations WHERE attempts > 1`)
	f.outbox = fmt.Sprintf("%d invalidations queued, all delivered, %d after more than one attempt", total, retried)
	return f
}

// groupCounts renders a "k, n" query as "k n, k n".
func groupCounts(ctx context.Context, t *testing.T, x *sqlx.DB, query string) string {
	t.Helper()
	var rows []struct {
		K string `db:"k"`
		N int    `db:"n"`
	}
	if err := x.SelectContext(ctx, &rows, query); err != nil {
		return "unreadable: " + err.Error()
	}
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf("%s %d", r.K, r.N)
	}
	return strings.Join(parts, ", ")
}

// logInbox logs the events not applied yet, for a failed convergence.
func logInbox(t *testing.T, x *sqlx.DB) {
	t.Helper()
	var rows []struct {
		ID       string  `db:"id"`
		Type     string  `db:"type"`
		Status   string  `db:"status"`
		Attempts int     `db:"attempts"`
		Sub      *string `db:"subscription_id"`
		Next     string  `db:"next"`
		Err      *string `db:"last_error"`
	}
	_ = x.Select(&rows, `SELECT id, type, status, attempts, subscription_id, next_attempt_at::text AS next, last_error
		FROM stripe_webhook_events WHERE status NOT IN ('applied', 'ignored') ORDER BY next_attempt_at LIMIT 30`)
	for _, r := range rows {
		t.Logf("  inbox: %s %s %s attempts %d sub %s next %s err %s", r.ID, r.Type, r.Status, r.Attempts, deref(r.Sub), r.Next, deref(r.Err))
	}
}

func statusSummary(m map[int]int) string {
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d×%d", m[c], c)
	}
	return strings.Join(parts, ", ")
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// quietRedis drops go-redis's own log lines (dial failures while Redis is
// down on purpose).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
