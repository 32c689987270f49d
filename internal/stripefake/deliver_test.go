package stripefake_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/subsync/subsync/internal/stripefake"
)

// receiver is a webhook endpoint that verifies signatures like a real
// consumer would, and can be told to fail the first attempts.
type receiver struct {
	secret string

	mu       sync.Mutex
	ids      []string // verified event ids, in arrival order
	versions []string
	bad      int // requests whose signature did not verify
	failN    int // answer 500 to this many next requests
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	evt, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), rc.secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rc.failN > 0 {
		rc.failN--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	rc.ids = append(rc.ids, evt.ID)
	rc.versions = append(rc.versions, evt.APIVersion)
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) received() (ids, versions []string, bad int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.ids), slices.Clone(rc.versions), rc.bad
}

func newReceiver(t *testing.T, secret string) (*receiver, string) {
	t.Helper()
	rc := &receiver{secret: secret}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

// makeEvents creates a customer, two prices and n subscriptions: 3+3n events.
func makeEvents(t *testing.T, f *stripefake.Server, n int) {
	t.Helper()
	fx := newFixture(t, f)
	for range n {
		subscribe(t, f, fx.customer, fx.monthly)
	}
}

func TestDeliverAllSignedInOrder(t *testing.T) {
	t.Parallel()
	f, _ := newFake(t, stripefake.Options{Seed: 11})
	rc, url := newReceiver(t, "whsec_test")
	f.AddWebhookEndpoint(url, "whsec_test", "", nil)
	other, otherURL := newReceiver(t, "whsec_other")
	f.AddWebhookEndpoint(otherURL, "whsec_other", "", []string{"customer.subscription.created"})
	makeEvents(t, f, 3)

	st, err := f.DeliverAll(context.Background(), stripefake.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := f.Events()
	if st.Delivered != len(all)+3 || st.Sent != st.Delivered || st.Failed != 0 {
		t.Fatalf("stats = %+v, want %d delivered", st, len(all)+3)
	}
	ids, versions, bad := rc.received()
	want := make([]string, len(all))
	for i, e := range all {
		want[i] = e.ID
	}
	if bad != 0 || !slices.Equal(ids, want) {
		t.Fatalf("receiver got %d events (%d bad signatures), want all %d oldest first", len(ids), bad, len(want))
	}
	if versions[0] != stripe.APIVersion {
		t.Fatalf("api_version = %s", versions[0])
	}
	if ids, _, _ := other.received(); len(ids) != 3 {
		t.Fatalf("filtered endpoint got %d events, want the 3 subscription.created", len(ids))
	}
	for _, e := range f.Events() {
		if e.PendingWebhooks != 0 {
			t.Fatalf("event %s still pending %d", e.ID, e.PendingWebhooks)
		}
	}

	// Nothing is pending any more; new events are.
	again, err := f.DeliverAll(context.Background(), stripefake.DeliverOptions{})
	if err != nil || again.Sent != 0 {
		t.Fatalf("second run = %+v, %v", again, err)
	}
}

func TestDeliverAllChaos(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  stripefake.DeliverOptions
		failN int
		check func(t *testing.T, st stripefake.DeliverStats, events int, ids []string)
	}{
		{"duplicates", stripefake.DeliverOptions{DuplicateRate: 0.5, Shuffle: true, Concurrency: 4},
			0, func(t *testing.T, st stripefake.DeliverStats, events int, ids []string) {
				if st.Duplicates == 0 || len(ids) != events+st.Duplicates || st.Delivered != events {
					t.Fatalf("stats %+v, received %d of %d events", st, len(ids), events)
				}
				if uniq := len(slices.Compact(slices.Sorted(slices.Values(ids)))); uniq != events {
					t.Fatalf("%d distinct events received, want %d", uniq, events)
				}
			}},
		{"drops", stripefake.DeliverOptions{DropRate: 0.5},
			0, func(t *testing.T, st stripefake.DeliverStats, events int, ids []string) {
				if st.Dropped == 0 || st.Dropped+len(ids) != events || st.Delivered != len(ids) {
					t.Fatalf("stats %+v, received %d of %d", st, len(ids), events)
				}
			}},
		{"retry like stripe", stripefake.DeliverOptions{RetryLikeStripe: true, RetryBackoff: time.Millisecond},
			2, func(t *testing.T, st stripefake.DeliverStats, events int, ids []string) {
				if st.Retries != 2 || st.Non2xx != 2 || st.Delivered != events || len(ids) != events {
					t.Fatalf("stats %+v, received %d of %d", st, len(ids), events)
				}
			}},
		{"no retry leaves failures pending", stripefake.DeliverOptions{},
			2, func(t *testing.T, st stripefake.DeliverStats, events int, ids []string) {
				if st.Failed != 2 || st.Non2xx != 2 || len(ids) != events-2 {
					t.Fatalf("stats %+v, received %d of %d", st, len(ids), events)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, _ := newFake(t, stripefake.Options{Seed: 5})
			rc, url := newReceiver(t, "whsec_x")
			rc.failN = tt.failN
			f.AddWebhookEndpoint(url, "whsec_x", "", nil)
			makeEvents(t, f, 10)
			st, err := f.DeliverAll(context.Background(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			ids, _, bad := rc.received()
			if bad != 0 {
				t.Fatalf("%d bad signatures", bad)
			}
			tt.check(t, st, len(f.Events()), ids)
		})
	}
}

func TestDeliverOneInEndpointVersion(t *testing.T) {
	t.Parallel()
	f, _ := newFake(t, stripefake.Options{})
	rc, url := newReceiver(t, "whsec_v")
	f.AddWebhookEndpoint(url, "whsec_v", "2025-03-31.basil", []string{"*"})
	makeEvents(t, f, 1)
	var created *stripe.Event
	for _, e := range f.Events() {
		if e.Type == "customer.subscription.created" {
			created = e
		}
	}
	status, err := f.Deliver(context.Background(), created)
	if err != nil || status != http.StatusOK {
		t.Fatalf("Deliver = %d, %v", status, err)
	}
	_, versions, _ := rc.received()
	if len(versions) != 1 || versions[0] != "2025-03-31.basil" {
		t.Fatalf("versions received = %v", versions)
	}
}

func TestSignPayloadVerifies(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"id":"evt_1","object":"event","api_version":"2023-10-16","type":"invoice.paid","data":{"object":{}}}`)
	now := time.Now()
	tests := []struct {
		name    string
		header  string
		wantErr bool
	}{
		{"good", stripefake.SignPayload(payload, "whsec_a", now), false},
		{"wrong secret", stripefake.SignPayload(payload, "whsec_b", now), true},
		{"too old", stripefake.SignPayload(payload, "whsec_a", now.Add(-time.Hour)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := webhook.ConstructEvent(payload, tt.header, "whsec_a")
			if (err != nil) != tt.wantErr {
				t.Fatalf("ConstructEvent err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestAutoDeliver(t *testing.T) {
	t.Parallel()
	f, _ := newFake(t, stripefake.Options{})
	rc, url := newReceiver(t, "whsec_auto")
	f.AddWebhookEndpoint(url, "whsec_auto", "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.AutoDeliver(ctx, stripefake.DeliverOptions{}, 0) }()
	makeEvents(t, f, 2)
	want := len(f.Events())
	deadline := time.Now().Add(5 * time.Second)
	for {
		ids, _, _ := rc.received()
		if len(ids) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("auto delivery got %d of %d events", len(ids), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
