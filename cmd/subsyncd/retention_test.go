package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/subsync/subsync/internal/testenv"
)

// serve prunes at start what EVENT_RETENTION lets go, keeps the rest, and
// counts what it deleted in /metrics.
func TestServePrunesOldEvents(t *testing.T) {
	t.Parallel()
	dbURL := testenv.DatabaseURL(t)
	if err := run(context.Background(), []string{"migrate"}, []string{"DATABASE_URL=" + dbURL}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	x := sqlx.MustConnect("postgres", dbURL)
	defer x.Close()
	x.MustExec(`INSERT INTO stripe_webhook_events (id, type, stripe_created_at, status, processed_at, payload)
		SELECT 'evt_old_' || i, 'invoice.paid', now() - interval '60 days', 'applied', now() - interval '59 days', '{}'
		FROM generate_series(1, 3) i`)
	x.MustExec(`INSERT INTO stripe_webhook_events (id, type, stripe_created_at, status, next_attempt_at, payload)
		VALUES ('evt_old_failed', 'invoice.paid', now() - interval '60 days', 'failed', now() + interval '1 day', '{}')`)

	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	env := []string{"DATABASE_URL=" + dbURL, "STRIPE_SECRET_KEY=sk_test_x", "STRIPE_WEBHOOK_SECRET=whsec_x",
		"STRIPE_API_BASE=http://127.0.0.1:1", "RECONCILE_EVENTS_SCHEDULE=", "RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
		"EVENT_RETENTION=1000h", "LISTEN_ADDR=" + listen, "METRICS_ADDR=" + metricsAddr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env, io.Discard, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	testenv.WaitTCP(t, metricsAddr, 30*time.Second)
	want := `subsync_pruned_rows_total{table="stripe_webhook_events"} 3`
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var left []string
	if err := x.Select(&left, `SELECT id FROM stripe_webhook_events`); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != "evt_old_failed" {
		t.Fatalf("events left after pruning: %v, want only the failed one", left)
	}
}
