package stripefake_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
)

func TestFaultsSurfaceAsStripeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		faults  stripefake.Faults
		status  int
		errType stripe.ErrorType
		code    stripe.ErrorCode
	}{
		{"error rate", stripefake.Faults{ErrorRate: 1}, http.StatusInternalServerError, stripe.ErrorTypeAPI, ""},
		{"rate limit", stripefake.Faults{RateLimitRate: 1}, http.StatusTooManyRequests, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeRateLimit},
		{"fail next 503", stripefake.Faults{FailNext: 1, FailNextCode: 503}, http.StatusServiceUnavailable, stripe.ErrorTypeAPI, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, api := newFake(t, stripefake.Options{})
			fx := newFixture(t, f)
			sub := subscribe(t, f, fx.customer, fx.monthly)
			f.SetFaults(tt.faults)
			_, err := api.Subscriptions.Get(sub.ID, nil)
			se := stripeError(t, err, tt.status)
			if se.Type != tt.errType || se.Code != tt.code {
				t.Fatalf("error type %s code %q, want %s %q", se.Type, se.Code, tt.errType, tt.code)
			}
			st := f.Stats()
			if st.ByStatus[tt.status] != 1 || st.ByRoute["GET /v1/subscriptions/{id}"] != 1 || st.Injected != 1 {
				t.Fatalf("stats = %+v", st)
			}
			f.SetFaults(stripefake.Faults{})
			if _, err := api.Subscriptions.Get(sub.ID, nil); err != nil {
				t.Fatalf("after clearing faults: %v", err)
			}
		})
	}
}

func TestFailNextCountsDown(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	f.SetFaults(stripefake.Faults{FailNext: 2})
	var statuses []int
	for range 3 {
		_, err := api.Balance.Get(nil)
		if err != nil {
			statuses = append(statuses, stripeError(t, err, http.StatusInternalServerError).HTTPStatusCode)
		} else {
			statuses = append(statuses, http.StatusOK)
		}
	}
	if !slices.Equal(statuses, []int{500, 500, 200}) {
		t.Fatalf("statuses = %v", statuses)
	}
	if left := f.CurrentFaults().FailNext; left != 0 {
		t.Fatalf("FailNext left %d", left)
	}
}

func TestFaultsDeterministicFromSeed(t *testing.T) {
	t.Parallel()
	run := func() []bool {
		f, api := newFake(t, stripefake.Options{Seed: 42})
		f.SetFaults(stripefake.Faults{ErrorRate: 0.3, RateLimitRate: 0.3})
		var out []bool
		for range 40 {
			_, err := api.Balance.Get(nil)
			out = append(out, err == nil)
		}
		return out
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different faults")
	}
	if !slices.Contains(a, true) || !slices.Contains(a, false) {
		t.Fatalf("rates 0.3+0.3 over 40 requests gave %v", a)
	}
}

func TestLatencyAndShouldRetryHeader(t *testing.T) {
	t.Parallel()
	f, _ := newFake(t, stripefake.Options{})
	f.SetFaults(stripefake.Faults{Latency: 50 * time.Millisecond, RateLimitRate: 1, ShouldRetry: true})
	req, err := http.NewRequest(http.MethodGet, f.URL()+"/v1/balance", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+f.APIKey())
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
		t.Fatalf("answered after %v, before the 50ms latency", elapsed)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Stripe-Should-Retry") != "true" ||
		resp.Header.Get("Request-Id") == "" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
}
