package stripeapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76"
)

func TestRetries429Then200(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			writeJSON(w, http.StatusTooManyRequests, stripeErr("invalid_request_error", "rate_limit", "Too many requests"))
			return
		}
		writeJSON(w, 200, obj("subscription", "sub_123"))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL, nil)

	sub, err := env.c.GetSubscription(t.Context(), "sub_123")
	if err != nil {
		t.Fatalf("GetSubscription: %v", err)
	}
	if sub.ID != "sub_123" {
		t.Errorf("ID = %q", sub.ID)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
	for code, want := range map[string]float64{"429": 1, "200": 1} {
		if got := testutil.ToFloat64(env.m.StripeRequests.WithLabelValues("subscriptions.get", code)); got != want {
			t.Errorf("stripe_requests_total{subscriptions.get,%s} = %v, want %v", code, got, want)
		}
	}
	if n := testutil.CollectAndCount(env.m.StripeLimiterWait); n != 1 {
		t.Errorf("limiter wait series = %d, want 1 (high)", n)
	}
	if !strings.Contains(env.logs.String(), "retrying") {
		t.Errorf("no retry logged:\n%s", env.logs)
	}
}

func TestRetries5xxExhausted(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		writeJSON(w, http.StatusInternalServerError, stripeErr("api_error", "", "boom"))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL, func(c *Config) { c.MaxRetries = 2 })

	_, err := env.c.GetCustomer(t.Context(), "cus_1")
	if err == nil {
		t.Fatal("want an error")
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3 (1 + 2 retries)", n)
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode() != 500 {
		t.Fatalf("error %v is not an APIError with status 500", err)
	}
	var se *stripe.Error
	if !errors.As(err, &se) || se.Type != stripe.ErrorTypeAPI {
		t.Errorf("error %v does not unwrap to the stripe-go error", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "get customer cus_1: ") || !strings.Contains(msg, "500") {
		t.Errorf("error = %q, want the op and the status", msg)
	}
	if got := testutil.ToFloat64(env.m.StripeRequests.WithLabelValues("customers.get", "500")); got != 3 {
		t.Errorf("stripe_requests_total{customers.get,500} = %v, want 3", got)
	}
}

func TestPOSTNeverRetried(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Stripe-Should-Retry", "true")
			writeJSON(w, status, stripeErr("api_error", "", "nope"))
		}))
		env := newTestClient(t, srv.URL, nil)
		p := &stripe.CustomerParams{Email: stripe.String("a@example.com")}
		p.Context = t.Context()
		if _, err := env.c.API().Customers.New(p); err == nil {
			t.Errorf("status %d: want an error", status)
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("status %d: POST sent %d times, want 1", status, n)
		}
		if got := testutil.ToFloat64(env.m.StripeRequests.WithLabelValues("customers.create", strconv.Itoa(status))); got != 1 {
			t.Errorf("stripe_requests_total{customers.create,%d} = %v, want 1", status, got)
		}
		srv.Close()
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		n := len(arrivals)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, stripeErr("invalid_request_error", "rate_limit", "slow down"))
			return
		}
		writeJSON(w, 200, obj("invoice", "in_1"))
	}))
	defer srv.Close()
	// MinBackoff stays tiny: the delay must come from the header.
	env := newTestClient(t, srv.URL, func(c *Config) { c.MaxBackoff = 5 * time.Second })

	if _, err := env.c.GetInvoice(t.Context(), "in_1"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(arrivals))
	}
	if gap := arrivals[1].Sub(arrivals[0]); gap < time.Second {
		t.Errorf("retry came %v after a Retry-After: 1, want ≥ 1s", gap)
	}
}

func TestRetryDelayDecisions(t *testing.T) {
	t.Parallel()
	tr := &transport{minBackoff: time.Millisecond, maxBackoff: 50 * time.Millisecond}
	resp := func(status int, h ...string) *http.Response {
		r := &http.Response{StatusCode: status, Header: http.Header{}}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	tests := []struct {
		name      string
		resp      *http.Response
		err       error
		wantRetry bool
		wantDelay time.Duration // exact when > 0
	}{
		{"200", resp(200), nil, false, 0},
		{"400", resp(400), nil, false, 0},
		{"404", resp(404), nil, false, 0},
		{"409", resp(409), nil, false, 0},
		{"429", resp(429), nil, true, 0},
		{"500", resp(500), nil, true, 0},
		{"503", resp(503), nil, true, 0},
		{"500 should-retry false", resp(500, "Stripe-Should-Retry", "false"), nil, false, 0},
		{"429 should-retry false", resp(429, "Stripe-Should-Retry", "false"), nil, false, 0},
		{"409 should-retry true", resp(409, "Stripe-Should-Retry", "true"), nil, true, 0},
		{"200 should-retry true", resp(200, "Stripe-Should-Retry", "true"), nil, false, 0},
		{"retry-after capped", resp(429, "Retry-After", "3600"), nil, true, 50 * time.Millisecond},
		{"connection error", nil, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true, 0},
	}
	for _, tt := range tests {
		d, retry := tr.retryDelay(0, tt.resp, tt.err)
		if retry != tt.wantRetry {
			t.Errorf("%s: retry = %v, want %v", tt.name, retry, tt.wantRetry)
		}
		if tt.wantDelay > 0 && d != tt.wantDelay {
			t.Errorf("%s: delay = %v, want %v", tt.name, d, tt.wantDelay)
		}
		if d < 0 || d > tr.maxBackoff {
			t.Errorf("%s: delay %v outside [0, %v]", tt.name, d, tr.maxBackoff)
		}
	}

	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"2": 2 * time.Second, "0.5": 500 * time.Millisecond, "0": 0,
		now.Add(3 * time.Second).Format(http.TimeFormat): 3 * time.Second,
	} {
		if got, ok := retryAfter(v, now); !ok || got != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "soon", "-1", "NaN"} {
		if _, ok := retryAfter(v, now); ok {
			t.Errorf("retryAfter(%q) accepted", v)
		}
	}
}

func TestShouldRetryFalseNotRetried(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Stripe-Should-Retry", "false")
		writeJSON(w, http.StatusServiceUnavailable, stripeErr("api_error", "", "do not retry"))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL, nil)
	if _, err := env.c.GetSubscription(t.Context(), "sub_1"); err == nil {
		t.Fatal("want an error")
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestShouldRetryTrueRetried(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Stripe-Should-Retry", "true")
			writeJSON(w, http.StatusConflict, stripeErr("invalid_request_error", "lock_timeout", "locked"))
			return
		}
		writeJSON(w, 200, obj("subscription", "sub_1"))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL, nil)
	if _, err := env.c.GetSubscription(t.Context(), "sub_1"); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		cancel()
		writeJSON(w, http.StatusInternalServerError, stripeErr("api_error", "", "boom"))
	}))
	defer srv.Close()
	// A long backoff: only the cancellation can end the wait.
	env := newTestClient(t, srv.URL, func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
	_, err := env.c.GetSubscription(ctx, "sub_1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestConnectionErrorsRetriedAndCounted(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	l.Close() // nothing listens there any more: connection refused

	env := newTestClient(t, base, func(c *Config) { c.MaxRetries = 2 })
	err = env.c.CheckKey(t.Context())
	if err == nil {
		t.Fatal("want an error")
	}
	if !strings.HasPrefix(err.Error(), "check key: ") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("error = %q", err)
	}
	if got := testutil.ToFloat64(env.m.StripeRequests.WithLabelValues("balance.get", "error")); got != 3 {
		t.Errorf("stripe_requests_total{balance.get,error} = %v, want 3", got)
	}
	assertNoKey(t, err.Error(), env.logs.String())
}

func TestKeyNeverLeaks(t *testing.T) {
	t.Parallel()
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		// A hostile or buggy server echoing the key must not get it logged.
		key := strings.TrimPrefix(gotAuth, "Bearer ")
		writeJSON(w, http.StatusUnauthorized, stripeErr("invalid_request_error", "", "Invalid API Key provided: "+key))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL, nil)

	err := env.c.CheckKey(t.Context())
	if !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("err = %v, want ErrInvalidKey", err)
	}
	if gotAuth != "Bearer "+testKey {
		t.Errorf("Authorization = %q, the key was not sent", gotAuth)
	}
	if got := testutil.ToFloat64(env.m.StripeRequests.WithLabelValues("balance.get", "401")); got != 1 {
		t.Errorf("stripe_requests_total{balance.get,401} = %v, want 1 (never retried)", got)
	}
	if env.logs.String() == "" {
		t.Error("expected stripe-go debug logs to check")
	}
	assertNoKey(t, err.Error(), env.logs.String())
}

func assertNoKey(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, testKey) || strings.Contains(s, testKey[8:]) {
			t.Errorf("the key leaked into %q", s)
		}
	}
}
