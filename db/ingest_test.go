package db_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
)

func ingestEvent(id, payload string) reconcile.NewEvent {
	return reconcile.NewEvent{
		ID: id, Type: "customer.subscription.updated", Created: time.Now().UTC().Truncate(time.Second),
		Source: reconcile.SourceWebhook, Status: reconcile.StatusPending, Payload: json.RawMessage(payload),
	}
}

// Many requests at once, several delivering the same event: every event is
// stored once, exactly one delivery of each is told "inserted", and an
// event Postgres refuses (a NUL in jsonb) fails alone, without its
// neighbours in the same statement, and so does every copy of it; an event
// whatever its created time is stored.
func TestIngesterSharesCommitsAndAnswersEachRequest(t *testing.T) {
	t.Parallel()
	d := openMigrated(t, testenv.DatabaseURL(t))
	g := d.NewIngester(db.IngestConfig{MaxBatch: 16, Flushers: 2})
	defer g.Close()
	const events, copies = 60, 3
	type answer struct {
		id       string
		inserted bool
		err      error
	}
	answers := make(chan answer, (events+1)*copies+1)
	var wg sync.WaitGroup
	for i := range events {
		for range copies {
			wg.Go(func() {
				id := fmt.Sprintf("evt_ingest_%d", i)
				ok, err := g.InsertEvent(context.Background(), ingestEvent(id, `{"n":1}`))
				answers <- answer{id, ok, err}
			})
		}
	}
	for range copies { // every copy of a refused event is refused, none called a duplicate
		wg.Go(func() {
			ok, err := g.InsertEvent(context.Background(), ingestEvent("evt_ingest_bad", `{"s":"a\u0000b"}`))
			answers <- answer{"evt_ingest_bad", ok, err}
		})
	}
	far := ingestEvent("evt_ingest_far", `{"n":2}`) // a created time Go's JSON cannot write as a date
	far.Created = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	wg.Go(func() {
		ok, err := g.InsertEvent(context.Background(), far)
		answers <- answer{far.ID, ok, err}
	})
	wg.Wait()
	close(answers)
	inserted := map[string]int{}
	for a := range answers {
		switch {
		case a.id == "evt_ingest_bad":
			if !errors.Is(a.err, db.ErrInvalidData) || a.inserted {
				t.Errorf("the event with a NUL: inserted %v, err %v; want ErrInvalidData", a.inserted, a.err)
			}
		case a.err != nil:
			t.Errorf("%s: %v", a.id, a.err)
		case a.id == far.ID && !a.inserted:
			t.Errorf("the event created in year 12000 was not stored")
		case a.inserted:
			inserted[a.id]++
		}
	}
	for i := range events {
		if id := fmt.Sprintf("evt_ingest_%d", i); inserted[id] != 1 {
			t.Errorf("%s reported inserted %d times, want once", id, inserted[id])
		}
	}
	var stored int
	if err := d.X().Get(&stored, `SELECT count(*) FROM stripe_webhook_events WHERE id LIKE 'evt_ingest_%'`); err != nil {
		t.Fatal(err)
	}
	if stored != events+1 {
		t.Fatalf("%d rows stored, want %d", stored, events+1)
	}
}

// The batch metrics count every event once, in batches no larger than
// MaxBatch, with one duration per batch; a lone request is a batch of one,
// and a refused event no batch.
func TestIngesterBatchMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New(prometheus.NewRegistry(), false)
	d := openMigratedWith(t, db.Config{URL: testenv.DatabaseURL(t), Metrics: m})
	g := d.NewIngester(db.IngestConfig{MaxBatch: 8})
	defer g.Close()
	histogram := func(h prometheus.Histogram) *dto.Histogram {
		var out dto.Metric
		if err := h.Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetHistogram()
	}
	if _, err := g.InsertEvent(context.Background(), ingestEvent("evt_batch_alone", `{}`)); err != nil {
		t.Fatal(err)
	}
	if h := histogram(m.WebhookBatchEvents); h.GetSampleCount() != 1 || h.GetSampleSum() != 1 {
		t.Fatalf("after one request: %d batches of %v events in all, want one of 1", h.GetSampleCount(), h.GetSampleSum())
	}
	const events = 50
	var wg sync.WaitGroup
	for i := range events {
		wg.Go(func() {
			if _, err := g.InsertEvent(context.Background(), ingestEvent(fmt.Sprintf("evt_batch_%d", i), `{}`)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	h := histogram(m.WebhookBatchEvents)
	if sum := h.GetSampleSum(); sum != events+1 {
		t.Errorf("%v events counted in batches, want %d", sum, events+1)
	}
	if n := h.GetSampleCount(); n < 1+(events+7)/8 || n > events+1 {
		t.Errorf("%d batches for %d events in batches of at most 8, and one alone", n, events+1)
	}
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 8 && b.GetCumulativeCount() != h.GetSampleCount() {
			t.Errorf("a batch held more than MaxBatch (8) events")
		}
	}
	if got := histogram(m.WebhookBatchDuration).GetSampleCount(); got != h.GetSampleCount() {
		t.Errorf("%d batch durations for %d batches", got, h.GetSampleCount())
	}
	// An event Postgres refuses stores nothing, and counts no batch.
	if _, err := g.InsertEvent(context.Background(), ingestEvent("evt_batch_bad", `{"s":"a\u0000b"}`)); !errors.Is(err, db.ErrInvalidData) {
		t.Fatalf("the event with a NUL: %v, want ErrInvalidData", err)
	}
	if after := histogram(m.WebhookBatchEvents); after.GetSampleCount() != h.GetSampleCount() || after.GetSampleSum() != h.GetSampleSum() {
		t.Errorf("a refused event counted: %d batches of %v events, before it %d of %v",
			after.GetSampleCount(), after.GetSampleSum(), h.GetSampleCount(), h.GetSampleSum())
	}
}

func TestIngesterClosedRefusesAsUnavailable(t *testing.T) {
	t.Parallel()
	d := openMigrated(t, testenv.DatabaseURL(t))
	g := d.NewIngester(db.IngestConfig{})
	g.Close()
	if _, err := g.InsertEvent(context.Background(), ingestEvent("evt_closed", `{}`)); !errors.Is(err, db.ErrUnavailable) {
		t.Fatalf("insert after Close: %v, want ErrUnavailable", err)
	}
}

// Storing events sends no NOTIFY from the inserting transaction; a
// Notifier poked many times in a short while sends one.
func TestNotifierCoalescesAndInsertsDoNotNotify(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	d := openMigrated(t, url)
	l := pq.NewListener(url, time.Millisecond, time.Second, nil)
	defer l.Close()
	if err := l.Listen(db.InboxChannel); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InsertEvent(context.Background(), ingestEvent("evt_quiet", `{}`)); err != nil {
		t.Fatal(err)
	}
	count := func(within time.Duration) int {
		n := 0
		deadline := time.After(within)
		for {
			select {
			case <-l.Notify:
				n++
			case <-deadline:
				return n
			}
		}
	}
	if n := count(300 * time.Millisecond); n != 0 {
		t.Fatalf("%d notifications after a webhook insert, want none", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nt := d.NewNotifier(db.InboxChannel, time.Hour)
	go nt.Run(ctx)
	for range 50 {
		nt.Poke()
	}
	if n := count(500 * time.Millisecond); n != 1 {
		t.Fatalf("%d notifications for 50 pokes within the interval, want 1", n)
	}
}
