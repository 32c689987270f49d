package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

// daemon is a `subsyncd serve` running in the test process.
type daemon struct {
	listen, metrics string
	stderr          *testenv.Buffer
	cancel          context.CancelFunc
	done            chan error
}

// startServeForTest runs `subsyncd serve` with env (plus free listener
// addresses) and waits until /healthz answers.
func startServeForTest(t *testing.T, env []string) *daemon {
	t.Helper()
	d := &daemon{
		listen:  fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		metrics: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		stderr:  &testenv.Buffer{},
		done:    make(chan error, 1),
	}
	env = append(env, "LISTEN_ADDR="+d.listen, "METRICS_ADDR="+d.metrics)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- run(ctx, []string{"serve"}, env, io.Discard, d.stderr) }()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("serve exited early: %v\n%s", err, d.stderr.String())
		default:
		}
		if resp, err := http.Get("http://" + d.listen + "/healthz"); err == nil {
			resp.Body.Close()
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve did not answer /healthz\n%s", d.stderr.String())
	return nil
}

// stop cancels the daemon's context (as SIGTERM does) and returns run's
// result.
func (d *daemon) stop(t *testing.T) error {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop\n%s", d.stderr.String())
		return nil
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeAppliesSignedWebhooksEndToEnd(t *testing.T) {
	fake := stripefake.New(stripefake.Options{Seed: 7})
	t.Cleanup(fake.Close)
	annual, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 573100, Interval: "year", ProductName: "Máquina"})
	if err != nil {
		t.Fatal(err)
	}
	monthly, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 57300, Interval: "month", ProductName: "Máquina"})
	if err != nil {
		t.Fatal(err)
	}
	dbURL := testenv.DatabaseURL(t)
	const secret = "whsec_e2e_secret_value"
	d := startServeForTest(t, []string{
		"DATABASE_URL=" + dbURL,
		"STRIPE_SECRET_KEY=" + fake.APIKey(),
		"STRIPE_API_BASE=" + fake.URL(),
		"STRIPE_WEBHOOK_SECRET=whsec_old_one," + secret,
		"STRIPE_PRICE_MAQUINA_ANUAL=" + annual.ID,
		"STRIPE_PRICE_MAQUINA_MENSAL=" + monthly.ID,
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
		"LOG_LEVEL=debug",
	})
	fake.AddWebhookEndpoint("http://"+d.listen+"/webhooks/stripe", secret, "", nil)

	if code, body := get(t, "http://"+d.listen+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	var subs []string
	for i := range 5 {
		cus, err := fake.CreateCustomer(stripefake.CustomerParams{Metadata: map[string]string{"user_id": fmt.Sprint("user-", i)}})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := fake.CreateSubscription(stripefake.SubscriptionParams{Customer: cus.ID, Price: monthly.ID})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub.ID)
	}
	if _, err := fake.UpdateSubscriptionPrice(subs[0], annual.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.CancelSubscription(subs[1]); err != nil {
		t.Fatal(err)
	}
	st, err := fake.DeliverAll(context.Background(), stripefake.DeliverOptions{Shuffle: true, DuplicateRate: 0.3, Concurrency: 4})
	if err != nil || st.Failed > 0 || st.Non2xx > 0 {
		t.Fatalf("deliveries: %+v err %v\n%s", st, err, d.stderr.String())
	}

	x := sqlx.MustConnect("postgres", dbURL)
	defer x.Close()
	testenv.WaitFor(t, "every handled event applied", func() bool {
		var left int
		x.Get(&left, `SELECT count(*) FROM stripe_webhook_events WHERE status IN ('pending','failed')`)
		var rows int
		x.Get(&rows, `SELECT count(*) FROM user_subscriptions`)
		return left == 0 && rows == len(subs)
	})
	type row struct {
		ID     string  `db:"stripe_subscription_id"`
		User   *string `db:"user_id"`
		Plan   *string `db:"plan_id"`
		Period string  `db:"billing_period"`
		Status string  `db:"status"`
	}
	var rows []row
	if err := x.Select(&rows, `SELECT stripe_subscription_id, user_id, plan_id, billing_period, status FROM user_subscriptions`); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		sub, err := fake.Subscription(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantPeriod := "monthly"
		if sub.Items.Data[0].Price.ID == annual.ID {
			wantPeriod = "annual"
		}
		if r.Status != string(sub.Status) || r.Period != wantPeriod || r.Plan == nil || *r.Plan != "maquina" || r.User == nil {
			t.Errorf("row %+v differs from Stripe (status %s, price %s)", r, sub.Status, sub.Items.Data[0].Price.ID)
		}
	}

	code, metrics := get(t, "http://"+d.metrics+"/metrics")
	if code != 200 || !strings.Contains(metrics, `subsync_webhook_requests_total{outcome="accepted"}`) ||
		!strings.Contains(metrics, "go_goroutines") || !strings.Contains(metrics, "process_resident_memory_bytes") {
		t.Fatalf("/metrics = %d, missing expected series", code)
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
	logs := d.stderr.String()
	for _, secretish := range []string{secret, "whsec_old_one", fake.APIKey()} {
		if strings.Contains(logs, secretish) || strings.Contains(metrics, secretish) {
			t.Fatalf("a secret reached the logs or /metrics: %q", secretish)
		}
	}
	if !strings.Contains(logs, `"event_id"`) || !strings.Contains(logs, `"subscription_id"`) {
		t.Fatal("event log lines lack event_id/subscription_id")
	}
}

func TestCommandLine(t *testing.T) {
	dbURL := "postgres://postgres:topsecretpw@127.0.0.1:1/none?sslmode=disable"
	cases := []struct {
		name     string
		args     []string
		env      []string
		code     int
		mentions string
	}{
		{"no command", nil, nil, 2, "no command"},
		{"unknown command", []string{"frobnicate"}, nil, 2, "frobnicate"},
		{"serve needs DATABASE_URL", []string{"serve"}, []string{"STRIPE_SECRET_KEY=sk_test_x", "STRIPE_WEBHOOK_SECRET=whsec_x"}, 2, "DATABASE_URL"},
		{"serve needs the webhook secret", []string{"serve"}, []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_x"}, 2, "STRIPE_WEBHOOK_SECRET"},
		{"bad key prefix", []string{"serve"}, []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=pk_live_leakme", "STRIPE_WEBHOOK_SECRET=whsec_x"}, 2, "STRIPE_SECRET_KEY"},
		{"bad tolerance", []string{"serve"}, []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_x", "STRIPE_WEBHOOK_SECRET=whsec_x", "STRIPE_WEBHOOK_TOLERANCE=soon"}, 2, "STRIPE_WEBHOOK_TOLERANCE"},
		{"bad cron", []string{"serve"}, []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_x", "STRIPE_WEBHOOK_SECRET=whsec_x", "RECONCILE_SUBSCRIPTIONS_SCHEDULE=every day"}, 2, "RECONCILE_SUBSCRIPTIONS_SCHEDULE"},
		{"bad apply mode", []string{"serve"}, []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_x", "STRIPE_WEBHOOK_SECRET=whsec_x", "WEBHOOK_APPLY_MODE=guess"}, 2, "WEBHOOK_APPLY_MODE"},
		{"bad price variable", []string{"serve"}, []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_x", "STRIPE_WEBHOOK_SECRET=whsec_x", "STRIPE_PRICE_MAQUINA_WEEKLY=price_1"}, 2, "STRIPE_PRICE_MAQUINA_WEEKLY"},
		{"flag overrides env", []string{"serve", "--webhook-apply-mode", "nope"}, []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_x", "STRIPE_WEBHOOK_SECRET=whsec_x", "WEBHOOK_APPLY_MODE=payload"}, 2, "WEBHOOK_APPLY_MODE"},
		{"unparseable DATABASE_URL", []string{"migrate"}, []string{"DATABASE_URL=postgres://postgres:topsecretpw@127.0.0.1:port/none"}, 2, "DATABASE_URL: not a valid postgres URL"},
		{"bad PLANS_FILE", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL, "PLANS_FILE=/nonexistent/plans.yaml"}, 2, "PLANS_FILE"},
		{"event retention under Stripe's 30 days", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL, "EVENT_RETENTION=720h"}, 2, "EVENT_RETENTION: \"720h\" is not a duration of at least 744h"},
		{"history retention not a duration", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL, "RECONCILE_HISTORY_RETENTION=forever"}, 2, "RECONCILE_HISTORY_RETENTION"},
		{"apply workers", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL, "APPLY_WORKERS=0"}, 2, "APPLY_WORKERS"},
		{"apply batch size", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL, "APPLY_BATCH_SIZE=lots"}, 2, "APPLY_BATCH_SIZE"},
		{"unknown flag", []string{"migrate", "--no-such-flag"}, []string{"DATABASE_URL=" + dbURL}, 2, "no-such-flag"},
		{"database down", []string{"migrate"}, []string{"DATABASE_URL=" + dbURL}, 1, "127.0.0.1:1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), c.args, c.env, &out, &errOut)
			code := exitCode(err, &errOut)
			all := out.String() + errOut.String()
			if code != c.code || !strings.Contains(all, c.mentions) {
				t.Fatalf("exit %d (want %d), output %q should mention %q", code, c.code, all, c.mentions)
			}
			for _, secret := range []string{"topsecretpw", "leakme"} {
				if strings.Contains(all, secret) {
					t.Fatalf("output leaks a secret: %q", all)
				}
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"subsyncd", "2023-10-16", "go1."} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("version output %q lacks %q", out.String(), want)
		}
	}
}

func TestMigrateAndStatus(t *testing.T) {
	env := []string{"DATABASE_URL=" + testenv.DatabaseURL(t)}
	var out bytes.Buffer
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 { // two processes starting at once
		wg.Go(func() { errs[i] = run(context.Background(), []string{"migrate"}, env, io.Discard, io.Discard) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent migrate: %v / %v", errs[0], errs[1])
	}
	if err := run(context.Background(), []string{"migrate", "status"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "pending") || !strings.Contains(out.String(), "00001_inbox_and_subscriptions.sql") {
		t.Fatalf("migrate status:\n%s", out.String())
	}
}
