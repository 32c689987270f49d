package stripeapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
)

const testKey = "sk_test_51SuperSecretKeyThatMustNeverLeak0123456789"

type testEnv struct {
	c    *Client
	m    *metrics.Metrics
	logs *testenv.Buffer
}

// newTestClient builds a client for base with fast retries, a generous
// rate limit, metrics on a private registry and debug logs captured.
func newTestClient(t *testing.T, base string, mutate func(*Config)) testEnv {
	t.Helper()
	logs := &testenv.Buffer{}
	m := metrics.New(prometheus.NewRegistry(), false)
	cfg := Config{
		Key:        testKey,
		APIBase:    base,
		RateLimit:  1000,
		Burst:      100,
		MaxRetries: 3,
		MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:    m,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return testEnv{c: c, m: m, logs: logs}
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_test")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// stripeErr is a Stripe-shaped error body.
func stripeErr(typ, code, msg string) map[string]any {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	return map[string]any{"error": e}
}

// list is a Stripe-shaped list object.
func list(url string, hasMore bool, data ...any) map[string]any {
	if data == nil {
		data = []any{}
	}
	return map[string]any{"object": "list", "url": url, "has_more": hasMore, "data": data}
}

func obj(kind, id string) map[string]any {
	return map[string]any{"id": id, "object": kind}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := Config{Key: testKey}
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"missing key", func(c *Config) { c.Key = "" }, "Config.Key"},
		{"publishable key", func(c *Config) { c.Key = "pk_test_" + testKey[8:] }, "Config.Key"},
		{"key with newline", func(c *Config) { c.Key = testKey + "\n" }, "Config.Key"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "Config.RateLimit"},
		{"negative burst", func(c *Config) { c.Burst = -1 }, "Config.Burst"},
		{"negative min backoff", func(c *Config) { c.MinBackoff = -time.Second }, "Config.MinBackoff"},
		{"min above max", func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }, "Config.MinBackoff"},
		{"bad base", func(c *Config) { c.APIBase = "127.0.0.1:12111" }, "Config.APIBase"},
		{"negative attempt timeout", func(c *Config) { c.AttemptTimeout = -1 }, "Config.AttemptTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
			if strings.Contains(err.Error(), testKey[8:20]) {
				t.Errorf("error %q leaks the key", err)
			}
		})
	}
	for _, base := range []string{"", "http://127.0.0.1:12111", "http://127.0.0.1:12111/v1", "https://api.example.test/"} {
		cfg := ok
		cfg.APIBase = base
		if _, err := New(cfg); err != nil {
			t.Errorf("New(APIBase %q): %v", base, err)
		}
	}
}

func TestAPIBaseWithV1Suffix(t *testing.T) {
	t.Parallel()
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		writeJSON(w, 200, obj("price", "price_1"))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL+"/v1/", nil)
	if _, err := env.c.GetPrice(t.Context(), "price_1"); err != nil {
		t.Fatal(err)
	}
	if path != "/v1/prices/price_1" {
		t.Errorf("path = %q, want /v1/prices/price_1", path)
	}
}

func TestOpName(t *testing.T) {
	t.Parallel()
	tests := []struct{ method, path, want string }{
		{"GET", "/v1/subscriptions/sub_123", "subscriptions.get"},
		{"GET", "/v1/subscriptions", "subscriptions.list"},
		{"GET", "/v1/subscriptions/search", "subscriptions.search"},
		{"POST", "/v1/subscriptions/sub_123", "subscriptions.update"},
		{"DELETE", "/v1/subscriptions/sub_123", "subscriptions.delete"},
		{"GET", "/v1/events", "events.list"},
		{"GET", "/v1/customers/cus_1", "customers.get"},
		{"POST", "/v1/customers", "customers.create"},
		{"GET", "/v1/prices/price_1", "prices.get"},
		{"GET", "/v1/invoices/in_1", "invoices.get"},
		{"GET", "/v1/webhook_endpoints", "webhook_endpoints.list"},
		{"GET", "/v1/balance", "balance.get"},
		{"GET", "/v1/balance/history", "other"},
		{"GET", "/v1/charges/ch_1", "other"},
		{"GET", "/v1/subscriptions/sub_1/items/x", "other"},
		{"GET", "/healthz", "other"},
	}
	for _, tt := range tests {
		if got := opName(tt.method, tt.path); got != tt.want {
			t.Errorf("opName(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}
