package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/childproc"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

// shutdownSecret signs the load of the shutdown tests.
const shutdownSecret = "whsec_shutdown_6d1f3b5a7c9e2d4f6a8c0e1b3d5f7a9c"

// The load: shutdownWorkers goroutines post signed webhooks for
// shutdownLoad; the signal goes at shutdownSignalAt.
const (
	shutdownWorkers  = 8
	shutdownLoad     = 2 * time.Second
	shutdownSignalAt = time.Second
)

// exitDeadline bounds a graceful exit: serve gives the webhook listener,
// the scheduler and the inbox workers shutdownTimeout each, then the
// metrics listener 5s.
const exitDeadline = 3*shutdownTimeout + 5*time.Second

// sdProc is `subsyncd serve` running as a child process.
type sdProc struct {
	*childproc.Proc
	listen string
	stderr *testenv.Buffer
}

// startSdProc starts bin serve with env and waits until /healthz answers.
// The process is killed at the end of the test if it still runs. A port
// that FreePort found free can be taken before the child binds it (the
// load's own connections use ephemeral ports): then it starts again on
// other ports.
func startSdProc(t *testing.T, bin string, env []string) *sdProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, ready := trySdProc(t, bin, env)
		if ready {
			return p
		}
		if !strings.Contains(p.stderr.String(), "address already in use") || attempt == 3 {
			t.Fatalf("subsyncd exited early: %v\n%s", p.Err(), p.stderr.String())
		}
	}
}

// trySdProc starts the process; ready is false when it exited before
// answering /healthz.
func trySdProc(t *testing.T, bin string, env []string) (p *sdProc, ready bool) {
	t.Helper()
	p = &sdProc{
		listen: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		stderr: &testenv.Buffer{},
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(slices.Clip(env), "LISTEN_ADDR="+p.listen, fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", testenv.FreePort(t)))
	cmd.Stdout = io.Discard
	cmd.Stderr = p.stderr
	var err error
	if p.Proc, err = childproc.Start(cmd, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(syscall.SIGKILL, time.Minute) })
	testenv.WaitFor(t, "subsyncd serve to answer /healthz", func() bool {
		if p.Exited() {
			return true
		}
		resp, err := http.Get("http://" + p.listen + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		ready = resp.StatusCode == 200
		return ready
	})
	return p, ready
}

// exitedFor reports whether the process exited at least d ago.
func (p *sdProc) exitedFor(d time.Duration) bool {
	return p.Exited() && time.Since(p.ExitedAt()) >= d
}

// wait waits for the process to exit, at most limit.
func (p *sdProc) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(limit):
		t.Fatalf("subsyncd still running after %s\n%s", limit, p.stderr.String())
	}
}

// sdDelivery is one webhook of the load and what it got.
type sdDelivery struct {
	id, sub    string
	body       []byte
	start, end time.Time
	code       int
	status     string
	err        error
}

// shutdownFixture is a database, the fake with subscriptions and the env
// to run subsyncd serve with.
type shutdownFixture struct {
	fake *stripefake.Server
	x    *sqlx.DB
	env  []string
	subs []*stripe.Subscription
	objs map[string]json.RawMessage // subscription JSON, by id
}

func newShutdownFixture(t *testing.T) *shutdownFixture {
	t.Helper()
	f := &shutdownFixture{fake: stripefake.New(stripefake.Options{}), objs: map[string]json.RawMessage{}}
	t.Cleanup(f.fake.Close)
	annual, err := f.fake.CreatePrice(stripefake.PriceParams{UnitAmount: 573100, Interval: "year", ProductName: "Máquina"})
	if err != nil {
		t.Fatal(err)
	}
	monthly, err := f.fake.CreatePrice(stripefake.PriceParams{UnitAmount: 57300, Interval: "month", ProductName: "Máquina"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		cus, err := f.fake.CreateCustomer(stripefake.CustomerParams{Metadata: map[string]string{"user_id": fmt.Sprint("user-", i)}})
		if err != nil {
			t.Fatal(err)
		}
		price := annual.ID
		if i%2 == 1 {
			price = monthly.ID
		}
		sub, err := f.fake.CreateSubscription(stripefake.SubscriptionParams{Customer: cus.ID, Price: price})
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			if sub, err = f.fake.CancelSubscription(sub.ID); err != nil {
				t.Fatal(err)
			}
		}
		f.subs = append(f.subs, sub)
		f.objs[sub.ID], _ = json.Marshal(sub)
	}
	dbURL := testenv.DatabaseURL(t)
	f.x = sqlx.MustConnect("postgres", dbURL)
	t.Cleanup(func() { f.x.Close() })
	f.env = []string{
		"DATABASE_URL=" + dbURL,
		"STRIPE_SECRET_KEY=" + f.fake.APIKey(),
		"STRIPE_API_BASE=" + f.fake.URL(),
		"STRIPE_WEBHOOK_SECRET=" + shutdownSecret,
		"STRIPE_PRICE_MAQUINA_ANUAL=" + annual.ID,
		"STRIPE_PRICE_MAQUINA_MENSAL=" + monthly.ID,
		"STRIPE_RATE_LIMIT=1000", // the fake has no limit; 25/s would make the drain the slow part
		"WEBHOOK_APPLY_MODE=refetch",
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
		"LOG_LEVEL=warn",
	}
	// A slow Stripe makes the inbox build a backlog under the load, so the
	// shutdown finds events claimed and events waiting.
	f.fake.SetFaults(stripefake.Faults{Latency: 100 * time.Millisecond})
	return f
}

// load posts signed webhooks from shutdownWorkers goroutines for
// shutdownLoad, and on until p has been gone for a moment (so that some
// requests find no process at all); it calls hit once, shutdownSignalAt
// after the start.
func (f *shutdownFixture) load(t *testing.T, p *sdProc, run string, hit func()) []sdDelivery {
	t.Helper()
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: shutdownWorkers},
	}
	defer client.CloseIdleConnections()
	url := "http://" + p.listen + "/webhooks/stripe"
	start := time.Now()
	limit := start.Add(shutdownLoad + 3*shutdownTimeout)
	more := func() bool {
		return time.Now().Before(limit) && (time.Since(start) < shutdownLoad || !p.exitedFor(250*time.Millisecond))
	}
	var (
		mu  sync.Mutex
		out []sdDelivery
		wg  sync.WaitGroup
	)
	for w := range shutdownWorkers {
		wg.Go(func() {
			for i := 0; more(); i++ {
				sub := f.subs[(w+i)%len(f.subs)].ID
				d := sdDelivery{id: fmt.Sprintf("evt_%s_%d_%d", run, w, i), sub: sub}
				d.body, _ = json.Marshal(map[string]any{
					"id": d.id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(),
					"type": "customer.subscription.updated", "livemode": false,
					"data": map[string]json.RawMessage{"object": f.objs[sub]},
				})
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(d.body))
				req.Header.Set("Content-Type", "application/json")
				d.start = time.Now()
				req.Header.Set("Stripe-Signature", stripefake.SignPayload(d.body, shutdownSecret, d.start))
				resp, err := client.Do(req)
				d.end = time.Now()
				if err != nil {
					d.err = err
				} else {
					var b struct{ Status string }
					json.NewDecoder(resp.Body).Decode(&b)
					resp.Body.Close()
					d.code, d.status = resp.StatusCode, b.Status
				}
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond) // the daemon is gone: no busy loop
				}
			}
		})
	}
	time.Sleep(time.Until(start.Add(shutdownSignalAt)))
	hit()
	wg.Wait()
	return out
}

// sdStored is an inbox row as the shutdown checks read it.
type sdStored struct {
	ID        string  `db:"id"`
	Status    string  `db:"status"`
	Attempts  int     `db:"attempts"`
	Processed bool    `db:"processed"`
	LeaseLeft float64 `db:"lease_left"` // seconds until next_attempt_at
}

func (f *shutdownFixture) stored(t *testing.T) map[string]sdStored {
	t.Helper()
	var rows []sdStored
	if err := f.x.Select(&rows, `SELECT id, status, attempts, processed_at IS NOT NULL AS processed,
		extract(epoch FROM next_attempt_at - now())::float8 AS lease_left FROM stripe_webhook_events`); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]sdStored, len(rows))
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

// sdFigures summarises a load for the log and docs/reliability.md.
type sdFigures struct {
	sent, acked, errsAfter, refused, refusedAfterExit, storedNotAcked int
	inFlight, inFlightAcked                                           int // requests under way when the signal went
}

// checkLoad asserts what every sdDelivery of a load got and what is stored:
// before the signal every request was answered 200 accepted; after it a
// request was either answered 200 (and then stored) or failed at the
// connection; requests sent after the process exited were refused; every
// 200 is stored with the very payload sent; nothing stored was not sent.
func (f *shutdownFixture) checkLoad(t *testing.T, ds []sdDelivery, signalAt, exitAt time.Time) (sdFigures, map[string]sdStored) {
	t.Helper()
	var fig sdFigures
	stored := f.stored(t)
	sent := map[string]bool{}
	var ids []string
	var bodies []string
	for _, d := range ds {
		fig.sent++
		sent[d.id] = true
		if d.start.Before(signalAt) && d.end.After(signalAt) {
			fig.inFlight++
			if d.err == nil && d.code == 200 {
				fig.inFlightAcked++
			}
		}
		switch {
		case d.err == nil && d.code == 200 && d.status == "accepted":
			fig.acked++
			if _, ok := stored[d.id]; !ok {
				t.Errorf("event %s was answered 200 but is not stored", d.id)
			}
			ids, bodies = append(ids, d.id), append(bodies, string(d.body))
		case d.err == nil:
			t.Errorf("event %s answered %d %q", d.id, d.code, d.status)
		case d.end.Before(signalAt):
			t.Errorf("event %s failed before the signal: %v", d.id, d.err)
		default:
			fig.errsAfter++
			if errors.Is(d.err, syscall.ECONNREFUSED) {
				fig.refused++
			}
			if d.start.After(exitAt) {
				if !errors.Is(d.err, syscall.ECONNREFUSED) {
					t.Errorf("event %s sent after the exit: %v, want connection refused", d.id, d.err)
				}
				fig.refusedAfterExit++
			}
		}
	}
	for id := range stored {
		if !sent[id] {
			t.Errorf("stored event %s was never sent", id)
		}
	}
	for _, d := range ds {
		if _, ok := stored[d.id]; ok && d.err != nil {
			fig.storedNotAcked++
		}
	}
	var differ int
	if err := f.x.Get(&differ, `SELECT count(*) FROM stripe_webhook_events e
		JOIN unnest($1::text[], $2::text[]) AS u(id, body) ON e.id = u.id
		WHERE e.payload <> u.body::jsonb OR e.type <> 'customer.subscription.updated'`,
		pq.Array(ids), pq.Array(bodies)); err != nil {
		t.Fatal(err)
	}
	if differ > 0 {
		t.Errorf("%d stored events differ from the payload sent", differ)
	}
	if fig.acked == 0 || fig.errsAfter == 0 {
		t.Errorf("the signal did not land mid-load: %d acknowledged, %d failed after it", fig.acked, fig.errsAfter)
	}
	return fig, stored
}

// checkApplied starts a second process on the same database and waits
// until every stored event is applied and each subscription's row equals
// the fake; it stops that process with SIGTERM.
func (f *shutdownFixture) checkApplied(t *testing.T, bin string) time.Duration {
	t.Helper()
	f.fake.SetFaults(stripefake.Faults{})
	start := time.Now()
	p := startSdProc(t, bin, f.env)
	defer func() { // runs on t.Fatal too
		if !t.Failed() {
			return
		}
		var rest []struct {
			ID       string         `db:"id"`
			Status   string         `db:"status"`
			Attempts int            `db:"attempts"`
			Next     time.Time      `db:"next_attempt_at"`
			Error    sql.NullString `db:"last_error"`
		}
		_ = f.x.Select(&rest, `SELECT id, status, attempts, next_attempt_at, last_error
			FROM stripe_webhook_events WHERE status <> 'applied' ORDER BY id LIMIT 20`)
		for _, e := range rest {
			t.Logf("left: %s %s after %d attempts, next at %s, error %v", e.ID, e.Status, e.Attempts,
				e.Next.Format(time.RFC3339Nano), e.Error.String)
		}
		t.Logf("second process's output:\n%s", p.stderr.String())
	}()
	var left, total int
	testenv.WaitFor(t, "every stored event applied by the second process", func() bool {
		f.x.Get(&left, `SELECT count(*) FROM stripe_webhook_events WHERE status <> 'applied'`)
		f.x.Get(&total, `SELECT count(*) FROM stripe_webhook_events`)
		return left == 0
	})
	took := time.Since(start)
	type row struct {
		ID     string  `db:"stripe_subscription_id"`
		User   *string `db:"user_id"`
		Price  string  `db:"stripe_price_id"`
		Plan   *string `db:"plan_id"`
		Status string  `db:"status"`
	}
	var rows []row
	if err := f.x.Select(&rows, `SELECT stripe_subscription_id, user_id, stripe_price_id, plan_id, status FROM user_subscriptions`); err != nil {
		t.Fatal(err)
	}
	var touched int
	f.x.Get(&touched, `SELECT count(DISTINCT subscription_id) FROM stripe_webhook_events`)
	if len(rows) != touched {
		t.Errorf("%d rows for %d subscriptions with events", len(rows), touched)
	}
	for _, r := range rows {
		sub, err := f.fake.Subscription(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != string(sub.Status) || r.Price != sub.Items.Data[0].Price.ID || r.Plan == nil || r.User == nil {
			t.Errorf("row %+v differs from Stripe (status %s, price %s)", r, sub.Status, sub.Items.Data[0].Price.ID)
		}
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	p.wait(t, exitDeadline)
	if !p.Cmd.ProcessState.Success() {
		t.Errorf("second process: %v\n%s", p.Err(), p.stderr.String())
	}
	t.Logf("second process: %d stored events all applied within %s of its start, %d rows equal to Stripe", total, took.Round(10*time.Millisecond), len(rows))
	return took
}

// signalUnderLoad starts bin serve, sends sig to it in the middle of the
// load named run and waits for it to exit; it returns the process, the
// load's deliveries and when the signal went.
func (f *shutdownFixture) signalUnderLoad(t *testing.T, bin, run string, sig os.Signal) (p *sdProc, ds []sdDelivery, signalAt time.Time) {
	t.Helper()
	p = startSdProc(t, bin, f.env)
	ds = f.load(t, p, run, func() {
		signalAt = time.Now()
		p.Cmd.Process.Signal(sig)
	})
	p.wait(t, exitDeadline)
	return p, ds, signalAt
}

// settle counts the stored events that were applied and those still
// pending and never claimed, and returns every other.
func settle(stored map[string]sdStored) (applied, pending int, rest map[string]sdStored) {
	rest = map[string]sdStored{}
	for id, e := range stored {
		switch {
		case e.Status == "applied" && e.Processed:
			applied++
		case e.Status == "pending" && e.Attempts == 0:
			pending++
		default:
			rest[id] = e
		}
	}
	return applied, pending, rest
}

// TestShutdownUnderLoad builds the real binary, runs `subsyncd serve` as a
// child process under a load of signed webhooks and stops it mid-load,
// gracefully (SIGTERM) and not (SIGKILL). Either way no acknowledged
// event is lost, nothing is half-written, and a second process applies
// everything that was stored.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	bin := testenv.BuildSubsyncd(t)

	t.Run("SIGTERM", func(t *testing.T) {
		f := newShutdownFixture(t)
		p, ds, signalAt := f.signalUnderLoad(t, bin, "term", syscall.SIGTERM)
		if !p.Cmd.ProcessState.Success() {
			t.Fatalf("exit after SIGTERM: %v, want status 0\n%s", p.Err(), p.stderr.String())
		}
		if p.ExitedAt().Sub(signalAt) > exitDeadline {
			t.Fatalf("exit %s after SIGTERM, past the %s deadline", p.ExitedAt().Sub(signalAt), exitDeadline)
		}
		exitIn := p.ExitedAt().Sub(signalAt)
		fig, stored := f.checkLoad(t, ds, signalAt, p.ExitedAt())
		if fig.storedNotAcked > 0 {
			t.Errorf("%d events stored whose request got no answer: a graceful shutdown answers every request it read", fig.storedNotAcked)
		}
		// Nothing half-done: an event is either applied (with its row) or
		// still pending and never claimed; no claim is left to its lease.
		applied, pending, rest := settle(stored)
		for id, e := range rest {
			t.Errorf("event %s left %s after %d attempts (processed %v)", id, e.Status, e.Attempts, e.Processed)
		}
		took := f.checkApplied(t, bin)
		t.Logf("SIGTERM: exit status 0 %s after the signal; %d requests, %d answered 200 and all stored "+
			"(%d of the %d under way at the signal), %d applied before the exit, %d pending, none half-claimed; "+
			"%d connection errors after the signal (%d refused, %d of them after the exit; %d other); "+
			"%d stored without an answer; second process applied the rest in %s",
			exitIn.Round(time.Millisecond), fig.sent, fig.acked, fig.inFlightAcked, fig.inFlight, applied, pending, fig.errsAfter,
			fig.refused, fig.refusedAfterExit, fig.errsAfter-fig.refused, fig.storedNotAcked, took.Round(10*time.Millisecond))
	})

	t.Run("SIGKILL", func(t *testing.T) {
		f := newShutdownFixture(t)
		p, ds, signalAt := f.signalUnderLoad(t, bin, "kill", os.Kill)
		fig, stored := f.checkLoad(t, ds, signalAt, p.ExitedAt())
		// Events a worker had claimed when it died wait for their lease
		// (ApplierConfig.Lease, 2m); nothing else is left behind.
		const lease = 2 * time.Minute
		applied, pending, rest := settle(stored)
		leased := 0
		for id, e := range rest {
			if e.Status == "pending" && e.Attempts == 1 && e.LeaseLeft <= lease.Seconds() {
				leased++
				continue
			}
			t.Errorf("event %s left %s after %d attempts (lease %.0fs)", id, e.Status, e.Attempts, e.LeaseLeft)
		}
		// Rather than wait out the lease, end it now, as time would.
		if _, err := f.x.Exec(`UPDATE stripe_webhook_events SET next_attempt_at = now() WHERE status = 'pending' AND attempts > 0`); err != nil {
			t.Fatal(err)
		}
		took := f.checkApplied(t, bin)
		t.Logf("SIGKILL: %d requests, %d answered 200 and all stored (%d applied before the kill, %d pending, "+
			"%d claimed by the killed process and waiting for their %s lease), %d connection errors after the kill "+
			"(%d refused, %d of the %d requests under way at the kill), %d stored without an answer; "+
			"second process applied everything in %s",
			fig.sent, fig.acked, applied, pending, leased, lease, fig.errsAfter, fig.refused,
			fig.inFlight-fig.inFlightAcked, fig.inFlight, fig.storedNotAcked, took.Round(10*time.Millisecond))
	})
}

// sdMissing answers every subscription fetch with Stripe's 404, so the
// applier ends each event as ignored without a network round trip.
type sdMissing struct{}

func (sdMissing) GetSubscription(_ context.Context, id string) (*stripe.Subscription, error) {
	return nil, &stripe.Error{HTTPStatusCode: 404, Msg: "No such subscription: " + id}
}

// TestShutdownDuringClaimLeavesNothingLeased is the regression test of a
// defect TestShutdownUnderLoad found: when shutdown cancelled the
// applier's context while its claim query was under way, Postgres could
// commit the claim (attempts+1, next_attempt_at = now + lease) while the
// client saw context.Canceled, so the claimed events were never processed
// and waited out the 2-minute lease although the shutdown was graceful.
// Here the context is cancelled at many points of RunOnce; after each
// call, no event may be left claimed and unfinished.
func TestShutdownDuringClaimLeavesNothingLeased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: testenv.DatabaseURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Migrate(ctx, slogDiscard()); err != nil {
		t.Fatal(err)
	}
	a := reconcile.NewApplier(reconcile.ApplierConfig{BatchSize: 5}, d, sdMissing{}, &reconcile.Resolver{})
	for round := range 120 {
		var evs []reconcile.NewEvent
		for i := range 5 {
			evs = append(evs, reconcile.NewEvent{
				ID: fmt.Sprintf("evt_claim_%d_%d", round, i), Type: "customer.subscription.updated",
				Created: time.Now(), Source: reconcile.SourceWebhook, Status: reconcile.StatusPending,
				SubscriptionID: "sub_missing", Payload: json.RawMessage(`{}`),
			})
		}
		if _, err := d.InsertEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Duration(round%40) * 50 * time.Microsecond)
			cancel()
		}()
		a.RunOnce(rctx, shutdownTimeout)
		cancel()
		var leased []string
		if err := d.X().Select(&leased, `SELECT id FROM stripe_webhook_events WHERE status = 'pending' AND attempts > 0`); err != nil {
			t.Fatal(err)
		}
		if len(leased) > 0 {
			t.Fatalf("round %d: RunOnce returned with %d events claimed and unprocessed (%v)", round, len(leased), leased)
		}
		// Whatever this round left pending is claimed by the next ones.
	}
}
