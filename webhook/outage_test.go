package webhook_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
)

// TestHandlerDatabaseStopped: with Postgres down the handler answers 503
// with Retry-After (Stripe retries) and writes nothing; once Postgres is
// back, the redelivered event is accepted, not taken for a duplicate, and
// stored exactly once.
func TestHandlerDatabaseStopped(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	f := newFixture(t, fixtureConfig{databaseURL: pg.URL()})
	body := readTestdata(t, fileSubUpdated)

	pg.Stop(t)
	res := f.post(t, body)
	if res.code != http.StatusServiceUnavailable {
		t.Fatalf("with Postgres stopped: %d %s, want 503", res.code, res.body)
	}
	if res.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if body := res.json(t); body["error"] == "" || len(body) != 1 {
		t.Errorf("body = %v, want one non-empty \"error\"", body)
	}
	f.wantOutcomes(t, map[string]float64{metrics.OutcomeUnavailable: 1})
	if n := f.notify.Load(); n != 0 {
		t.Errorf("Notify called %d times for an event that was not stored", n)
	}

	pg.Start(t)
	// Nothing of the failed attempt is in the table.
	if n := f.rowCount(t); n != 0 {
		t.Fatalf("after the outage stripe_webhook_events has %d rows, want 0", n)
	}

	// Stripe redelivers. A pooled connection that died with the server
	// may cost one more 503 (the driver cannot know whether a statement
	// that failed mid-flight ran), so redeliver as Stripe would, a few
	// times, until the answer is not a 503.
	unavailable := 1
	for attempt := 0; ; attempt++ {
		res = f.post(t, body)
		if res.code != http.StatusServiceUnavailable || attempt == 10 {
			break
		}
		unavailable++
		time.Sleep(50 * time.Millisecond) // Stripe's backoff, shortened
	}
	if res.code != http.StatusOK || res.json(t)["status"] != "accepted" {
		t.Fatalf("after Postgres came back: %d %s, want 200 accepted", res.code, res.body)
	}
	f.wantStored(t, *subUpdated.stored(body))
	f.wantOutcomes(t, map[string]float64{metrics.OutcomeUnavailable: float64(unavailable), metrics.OutcomeAccepted: 1})
	if n := f.notify.Load(); n != 1 {
		t.Errorf("Notify called %d times, want 1", n)
	}
	if unavailable > 1 {
		t.Logf("%d redeliveries got a 503 after Postgres restarted", unavailable-1)
	}
}
