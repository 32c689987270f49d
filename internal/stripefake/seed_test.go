package stripefake_test

import (
	"bytes"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
)

func TestSeedSubscriptions(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		opts       stripefake.SeedOptions
		wantEvents bool
		wantListed int // by the default list, which hides ended subscriptions
	}{
		{"silent with spread", stripefake.SeedOptions{
			Spread:   400 * 24 * time.Hour,
			Statuses: []string{"active", "active", "canceled", "past_due", "trialing", "incomplete_expired"},
		}, false, 80},
		{"with events", stripefake.SeedOptions{
			WithEvents: true,
			Statuses:   []string{"active", "active", "canceled", "past_due", "trialing", "paused"},
		}, true, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, api := newFake(t, stripefake.Options{Clock: frozenClock(now)})
			fx := newFixture(t, f)
			before := len(f.EventTypes())
			tt.opts.Prices = []string{fx.monthly, fx.annual}
			ids, err := f.SeedSubscriptions(120, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != 120 || f.SubscriptionCount() != 120 {
				t.Fatalf("seeded %d ids, %d stored", len(ids), f.SubscriptionCount())
			}
			events := len(f.EventTypes()) - before
			if !tt.wantEvents && events != 0 || tt.wantEvents && events < 4*120 {
				t.Fatalf("seeding emitted %d events", events)
			}
			counts := map[stripe.SubscriptionStatus]int{}
			for _, s := range f.Subscriptions() {
				counts[s.Status]++
				// Silent seeding advances periods to contain now; FailPayment
				// (with events) bills the next period instead.
				if !tt.wantEvents && (s.CurrentPeriodStart > now.Unix() || s.CurrentPeriodEnd <= now.Unix()) {
					t.Fatalf("%s (%s) period %d..%d does not contain now", s.ID, s.Status, s.CurrentPeriodStart, s.CurrentPeriodEnd)
				}
				if s.Metadata["user_id"] == "" {
					t.Fatalf("%s has no user_id", s.ID)
				}
			}
			if counts["active"] != 40 || counts["canceled"] != 20 || counts["past_due"] != 20 || counts["trialing"] != 20 {
				t.Fatalf("statuses = %v", counts)
			}
			it := api.Subscriptions.List(&stripe.SubscriptionListParams{ListParams: stripe.ListParams{Limit: stripe.Int64(100)}})
			n := 0
			for it.Next() {
				n++
			}
			if err := it.Err(); err != nil || n != tt.wantListed {
				t.Fatalf("default list = %d, %v; want the %d not ended", n, err, tt.wantListed)
			}
		})
	}
}

// seed100k returns a listening fake holding 100,000 subscriptions.
func seed100k(b *testing.B) *stripefake.Server {
	b.Helper()
	f := stripefake.New(stripefake.Options{Seed: 1})
	b.Cleanup(f.Close)
	pr, err := f.CreatePrice(stripefake.PriceParams{UnitAmount: 100, Interval: "month"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.SeedSubscriptions(100_000, stripefake.SeedOptions{Prices: []string{pr.ID}, Spread: 365 * 24 * time.Hour}); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkSeed100k measures bulk seeding.
func BenchmarkSeed100k(b *testing.B) {
	cpu := processCPU()
	for b.Loop() {
		seed100k(b)
	}
	b.ReportMetric((processCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkListAll100k lists 100,000 subscriptions in pages of 100 over
// HTTP, the way a full reconciliation sweep pages (status=all,
// starting_after), reading each page's last id without decoding the rest:
// what it measures is the fake's cost, not stripe-go's decoding.
func BenchmarkListAll100k(b *testing.B) {
	f := seed100k(b)
	client := &http.Client{}
	var buf bytes.Buffer
	get := func(cursor string) ([]byte, error) {
		url := f.URL() + "/v1/subscriptions?status=all&limit=100"
		if cursor != "" {
			url += "&starting_after=" + cursor
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+f.APIKey())
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		return buf.Bytes(), err
	}
	marker := []byte(`{"id":"sub_`)
	cpu := processCPU()
	for b.Loop() {
		n, cursor := 0, ""
		for {
			body, err := get(cursor)
			if err != nil {
				b.Fatal(err)
			}
			n += bytes.Count(body, marker)
			last := bytes.LastIndex(body, marker)
			if last < 0 || !bytes.Contains(body[len(body)-80:], []byte(`"has_more":true`)) {
				break
			}
			cursor = string(body[last+7 : last+7+28])
		}
		if n != 100_000 {
			b.Fatalf("listed %d", n)
		}
	}
	b.ReportMetric((processCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(f.Stats().Requests)/float64(b.N), "pages/op")
}

// processCPU returns the CPU time (user and system) this process used: on a
// shared machine a steadier figure than wall-clock time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Seeding with Prerender changes when a subscription's JSON is rendered,
// not what is served: two fakes seeded alike, one prerendered, list the
// same bytes.
func TestPrerenderedSeedListsTheSame(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC)
	list := func(prerender bool) []byte {
		f, _ := newFake(t, stripefake.Options{Clock: frozenClock(now), Seed: 42})
		fx := newFixture(t, f)
		if _, err := f.SeedSubscriptions(60, stripefake.SeedOptions{
			Prices: []string{fx.monthly, fx.annual}, Spread: 90 * 24 * time.Hour,
			Statuses: []string{"active", "canceled", "trialing"}, Prerender: prerender,
		}); err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodGet, f.URL()+"/v1/subscriptions?status=all&limit=100", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		if _, err := body.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("list: %d %v: %s", resp.StatusCode, err, body.Bytes())
		}
		return body.Bytes()
	}
	lazy, pre := list(false), list(true)
	if n := bytes.Count(lazy, []byte(`"object":"subscription"`)); n != 60 {
		t.Fatalf("listed %d subscriptions, want 60", n)
	}
	if !bytes.Equal(lazy, pre) {
		t.Fatalf("prerendered listing differs:\n%s\nlazy:\n%s", pre, lazy)
	}
}
