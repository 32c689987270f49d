package stripeapi

import (
	"bytes"
	"context"
	"go/build"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76"
)

// stripeMockInstall is how to get the stripe-mock that speaks the API
// version stripe-go v76 pins (2023-10-16).
const stripeMockInstall = "go install github.com/stripe/stripe-mock@v0.183.0"

// startStripeMock runs stripe-mock on free loopback ports for the duration
// of the test and returns its HTTP base URL.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("stripe-mock")
	if err != nil {
		bin = filepath.Join(build.Default.GOPATH, "bin", "stripe-mock")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("stripe-mock not found in PATH nor at %s; install it with: %s", bin, stripeMockInstall)
		}
	}
	httpPort, httpsPort := freePort(t), freePort(t)
	var out lockedBuffer
	cmd := exec.Command(bin, "-strict-version-check",
		"-http-addr", "127.0.0.1:"+strconv.Itoa(httpPort),
		"-https-addr", "127.0.0.1:"+strconv.Itoa(httpsPort))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("stripe-mock output:\n%s", out.String())
		}
	})

	addr := "127.0.0.1:" + strconv.Itoa(httpPort)
	deadline := time.Now().Add(safety)
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return "http://" + addr
		}
		select {
		case <-exited:
			t.Fatalf("stripe-mock exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock did not listen on %s:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAgainstStripeMock checks every request the client makes against
// Stripe's OpenAPI description, as served by stripe-mock with strict
// version checking.
func TestAgainstStripeMock(t *testing.T) {
	t.Parallel()
	base := startStripeMock(t)
	env := newTestClient(t, base, func(c *Config) { c.Key = "sk_test_123" })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := env.c

	if err := c.CheckKey(ctx); err != nil {
		t.Errorf("CheckKey: %v", err)
	}
	if s, err := c.GetSubscription(ctx, "sub_123"); err != nil || s.ID == "" {
		t.Errorf("GetSubscription: %v", err)
	} else if len(s.Items.Data) > 0 && s.Items.Data[0].Price == nil {
		t.Error("subscription item without its price")
	}
	if cu, err := c.GetCustomer(ctx, "cus_123"); err != nil || cu.ID == "" {
		t.Errorf("GetCustomer: %v", err)
	}
	if p, err := c.GetPrice(ctx, "price_123"); err != nil || p.ID == "" {
		t.Errorf("GetPrice: %v", err)
	}
	if in, err := c.GetInvoice(ctx, "in_123"); err != nil || in.ID == "" {
		t.Errorf("GetInvoice: %v", err)
	}
	page, _, err := c.ListSubscriptionsPage(WithPriority(ctx, PriorityLow), SubscriptionPageQuery{
		CreatedGTE:    time.Now().Add(-24 * time.Hour),
		CreatedLT:     time.Now(),
		StartingAfter: "sub_123",
	})
	if err != nil || len(page) == 0 {
		t.Errorf("ListSubscriptionsPage: %d subscriptions, %v", len(page), err)
	}
	if _, _, err := c.ListSubscriptionsPage(ctx, SubscriptionPageQuery{Status: "active", Limit: 3}); err != nil {
		t.Errorf("ListSubscriptionsPage(active): %v", err)
	}
	events := 0
	err = c.ListEvents(WithPriority(ctx, PriorityLow),
		[]string{"customer.subscription.updated", "invoice.paid"}, time.Now().Add(-720*time.Hour),
		func(*stripe.Event) error { events++; return nil })
	if err != nil || events == 0 {
		t.Errorf("ListEvents: %d events, %v", events, err)
	}
	if eps, err := c.ListWebhookEndpoints(ctx); err != nil || len(eps) == 0 {
		t.Errorf("ListWebhookEndpoints: %d endpoints, %v", len(eps), err)
	}

	for _, op := range []string{"balance.get", "subscriptions.get", "customers.get", "prices.get",
		"invoices.get", "subscriptions.list", "events.list", "webhook_endpoints.list"} {
		if got := testutil.ToFloat64(env.m.StripeRequests.WithLabelValues(op, "200")); got < 1 {
			t.Errorf("stripe_requests_total{%s,200} = %v, want ≥ 1", op, got)
		}
	}

}
