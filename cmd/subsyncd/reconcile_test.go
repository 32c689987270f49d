package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

// recEnv is a Stripe fake with two mapped prices and the environment that
// points subsyncd at it and at a fresh database.
type recEnv struct {
	fake            *stripefake.Server
	annual, monthly string
	dbURL           string
	env             []string
}

func newRecEnv(t *testing.T) *recEnv {
	t.Helper()
	fake := stripefake.New(stripefake.Options{Seed: 11})
	t.Cleanup(fake.Close)
	e := &recEnv{fake: fake, dbURL: testenv.DatabaseURL(t)}
	for _, p := range []struct {
		dst      *string
		interval string
	}{{&e.annual, "year"}, {&e.monthly, "month"}} {
		pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 5000, Interval: p.interval, ProductName: "Máquina"})
		if err != nil {
			t.Fatal(err)
		}
		*p.dst = pr.ID
	}
	e.env = []string{
		"DATABASE_URL=" + e.dbURL,
		"STRIPE_SECRET_KEY=" + fake.APIKey(),
		"STRIPE_API_BASE=" + fake.URL(),
		"STRIPE_RATE_LIMIT=1000",
		"STRIPE_PRICE_MAQUINA_ANUAL=" + e.annual,
		"STRIPE_PRICE_MAQUINA_MENSAL=" + e.monthly,
		"LOG_LEVEL=warn",
	}
	return e
}

func (e *recEnv) seed(t *testing.T, n int) []string {
	t.Helper()
	ids, err := e.fake.SeedSubscriptions(n, stripefake.SeedOptions{
		Prices: []string{e.annual, e.monthly}, Statuses: []string{"active", "canceled", "trialing"}, Spread: 400 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// cli runs subsyncd with args and returns stdout, stderr and the exit code.
func (e *recEnv) cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, e.env, &out, &errOut)
	code := exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

// jsonLines decodes one object per line, checking the order of its keys.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("line %q is not an object: %v", line, err)
		}
		var order []string
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			order = append(order, key.(string))
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		want := []string{"job", "dry_run", "scanned", "drifted", "fixed", "errors", "duration_seconds"}
		if strings.Join(order[:len(want)], ",") != strings.Join(want, ",") || order[len(order)-1] != "drift" {
			t.Fatalf("keys %v, want %v … drift", order, want)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestReconcileCommandJSON(t *testing.T) {
	e := newRecEnv(t)
	ids := e.seed(t, 150)
	out, errOut, code := e.cli(t, "reconcile", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	objs := jsonLines(t, out)
	if len(objs) != 2 || objs[0]["job"] != "events" || objs[1]["job"] != "subscriptions" {
		t.Fatalf("output:\n%s", out)
	}
	subs := objs[1]
	if subs["scanned"] != 150.0 || subs["drifted"] != 150.0 || subs["fixed"] != 150.0 || subs["errors"] != 0.0 || subs["dry_run"] != false {
		t.Fatalf("subscriptions object %v", subs)
	}
	if drift := subs["drift"].([]any); len(drift) != 150 {
		t.Fatalf("%d drift entries", len(drift))
	}

	x := sqlx.MustConnect("postgres", e.dbURL)
	defer x.Close()
	x.MustExec(`UPDATE user_subscriptions SET status = 'unpaid', plan_id = NULL WHERE stripe_subscription_id = $1`, ids[3])
	x.MustExec(`DELETE FROM user_subscriptions WHERE stripe_subscription_id = $1`, ids[7])
	out, errOut, code = e.cli(t, "reconcile", "--job", "subscriptions", "--dry-run", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	objs = jsonLines(t, out)
	got := objs[0]
	if len(objs) != 1 || got["dry_run"] != true || got["drifted"] != 2.0 || got["fixed"] != 0.0 {
		t.Fatalf("dry run object %v", got)
	}
	want := map[string]string{ids[3]: "plan_id,status", ids[7]: "missing_in_db"}
	for _, d := range got["drift"].([]any) {
		d := d.(map[string]any)
		var fields []string
		for _, f := range d["fields"].([]any) {
			fields = append(fields, f.(string))
		}
		id := d["stripe_subscription_id"].(string)
		if want[id] != strings.Join(fields, ",") {
			t.Fatalf("drift of %s: %v, want %s", id, fields, want[id])
		}
		delete(want, id)
	}
	if len(want) > 0 {
		t.Fatalf("drift not reported: %v", want)
	}
	var status string
	x.Get(&status, `SELECT status FROM user_subscriptions WHERE stripe_subscription_id = $1`, ids[3])
	if status != "unpaid" {
		t.Fatal("the dry run changed a row")
	}
}

func TestReconcileCommandText(t *testing.T) {
	e := newRecEnv(t)
	ids := e.seed(t, 20)
	if _, errOut, code := e.cli(t, "reconcile", "--job", "subscriptions"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	x := sqlx.MustConnect("postgres", e.dbURL)
	defer x.Close()
	x.MustExec(`UPDATE user_subscriptions SET cancel_at_period_end = true WHERE stripe_subscription_id = $1`, ids[0])
	out, errOut, code := e.cli(t, "reconcile", "--job", "all")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"events: succeeded: scanned 0, drifted 0, fixed 0, errors 0",
		"subscriptions: succeeded: scanned 20, drifted 1, fixed 1, errors 0",
		"SUBSCRIPTION", "FIELD", "TABLE VALUE", "STRIPE VALUE",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, ids[0]) {
			row = strings.Join(strings.Fields(l), " ")
		}
	}
	if row != ids[0]+" cancel_at_period_end true false" {
		t.Fatalf("drift row %q", row)
	}
}

func TestReconcileCommandUsage(t *testing.T) {
	e := newRecEnv(t)
	cases := []struct {
		name     string
		args     []string
		mentions string
	}{
		{"bad job", []string{"reconcile", "--job", "invoices"}, "--job"},
		{"bad format", []string{"reconcile", "--format", "xml"}, "--format"},
		{"extra argument", []string{"reconcile", "now"}, "no argument"},
		{"unknown flag", []string{"reconcile", "--fast"}, "fast"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := e.cli(t, c.args...)
			if code != 2 || !strings.Contains(out+errOut, c.mentions) {
				t.Fatalf("exit %d, output %q lacks %q", code, out+errOut, c.mentions)
			}
		})
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"reconcile"}, []string{"DATABASE_URL=" + e.dbURL}, &out, &errOut)
	if code := exitCode(err, &errOut); code != 2 || !strings.Contains(errOut.String(), "STRIPE_SECRET_KEY") {
		t.Fatalf("without a key: exit %d %s", code, errOut.String())
	}
}

func TestReconcileCommandTwoAtOnce(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			e := newRecEnv(t)
			e.seed(t, 30)
			// Migrate first, so that both runs race for the job and not for
			// the migration lock.
			if _, errOut, code := e.cli(t, "migrate"); code != 0 {
				t.Fatal(errOut)
			}
			e.env = append(e.env, "AUTO_MIGRATE=false")
			e.fake.SetFaults(stripefake.Faults{Latency: time.Second}) // the first run holds the lock a while
			outs := make([]string, 2)
			codes := make([]int, 2)
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() { outs[i], _, codes[i] = e.cli(t, "reconcile", "--job", "subscriptions", "--format", format) })
			}
			wg.Wait()
			if codes[0] != 0 || codes[1] != 0 {
				t.Fatalf("exit codes %v\n%s\n%s", codes, outs[0], outs[1])
			}
			skipped := 0
			for _, out := range outs {
				switch format {
				case "text":
					if strings.Contains(out, "skipped: another replica is running job subscriptions") {
						skipped++
					}
				case "json":
					if jsonLines(t, out)[0]["skipped"] == true {
						skipped++
					}
				}
			}
			if skipped != 1 {
				t.Fatalf("%d runs skipped, want 1:\n%s\n%s", skipped, outs[0], outs[1])
			}
		})
	}
}

func TestReconcileCommandFailedRunExits1(t *testing.T) {
	e := newRecEnv(t)
	e.seed(t, 5)
	// A 400 is not retried, so the run fails at once (exhausted retries
	// are shown in the reconcile package's tests).
	e.fake.SetFaults(stripefake.Faults{FailNext: 1, FailNextCode: 400})
	out, errOut, code := e.cli(t, "reconcile", "--job", "subscriptions", "--format", "json")
	if code != 1 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	obj := jsonLines(t, out)[0]
	if msg, _ := obj["error"].(string); !strings.Contains(msg, "400") {
		t.Fatalf("object %v lacks the error", obj)
	}
	x := sqlx.MustConnect("postgres", e.dbURL)
	defer x.Close()
	var status string
	x.Get(&status, `SELECT status FROM reconcile_runs WHERE job = 'subscriptions'`)
	if status != "failed" {
		t.Fatalf("run recorded as %q", status)
	}
}

// statusRecorder is a reverse proxy to stripe-mock that remembers every
// answer it relayed.
type statusRecorder struct {
	mu      sync.Mutex
	answers []string // "GET /v1/balance 200"
}

func (s *statusRecorder) proxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.answers = append(s.answers, fmt.Sprintf("%s %s %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (s *statusRecorder) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.answers...)
}

// TestStripeMockConformance runs reconcile and check against stripe-mock
// (strict version check): every request the daemon makes must be one it
// accepts.
func TestStripeMockConformance(t *testing.T) {
	rec := &statusRecorder{}
	base := rec.proxy(t, testenv.StartStripeMock(t))
	env := []string{
		"DATABASE_URL=" + testenv.DatabaseURL(t),
		"STRIPE_SECRET_KEY=sk_test_123",
		"STRIPE_API_BASE=" + base,
		"STRIPE_PRICE_MAQUINA_MENSAL=price_1OPouiJN5vQBdWExAQaqTooZ",
		"LOG_LEVEL=warn",
	}
	steps := [][]string{
		{"reconcile", "--job", "all", "--format", "json"},
		{"reconcile", "--job", "all", "--dry-run"},
		{"check"},
	}
	for _, args := range steps {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, env, &out, &errOut)
		if code := exitCode(err, &errOut); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s\nanswers: %v", args, code, out.String(), errOut.String(), rec.all())
		}
		t.Logf("%v:\n%s", args, out.String())
	}
	answers := rec.all()
	seen := map[string]bool{}
	for _, a := range answers {
		f := strings.Fields(a)
		if f[2] != "200" {
			t.Errorf("stripe-mock answered %s", a)
		}
		seen[f[0]+" "+f[1]] = true
	}
	for _, want := range []string{"GET /v1/events", "GET /v1/subscriptions", "GET /v1/balance", "GET /v1/webhook_endpoints"} {
		if !seen[want] {
			t.Errorf("no %s request was made: %v", want, answers)
		}
	}
	t.Logf("%d requests, all accepted: %v", len(answers), seen)
}

// TestServeRunsScheduledJobs runs the daemon with a sweep every second:
// runs are recorded, the interval is exported, and shutdown waits for them.
func TestServeRunsScheduledJobs(t *testing.T) {
	e := newRecEnv(t)
	e.seed(t, 10)
	d := startServeForTest(t, append(e.env,
		"STRIPE_WEBHOOK_SECRET=whsec_sched",
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=@every 1s",
	))

	x := sqlx.MustConnect("postgres", e.dbURL)
	defer x.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		_ = x.Get(&n, `SELECT count(*) FROM reconcile_runs WHERE job = 'subscriptions' AND status = 'succeeded'`)
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled sweep succeeded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, body := get(t, "http://"+d.metrics+"/metrics")
	for _, want := range []string{
		`subsync_reconcile_interval_seconds{job_name="subscriptions"} 1`,
		`subsync_reconcile_interval_seconds{job_name="events"} 0`,
		`subsync_reconcile_runs_total{job_name="subscriptions",outcome="succeeded"}`,
		`subsync_reconcile_last_success_timestamp_seconds{job_name="subscriptions"}`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	var running int
	x.Get(&running, `SELECT count(*) FROM reconcile_runs WHERE status = 'running'`)
	if running != 0 {
		t.Fatalf("%d runs left running after shutdown", running)
	}
}
