package stripeapi

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/testenv"
)

// TestAgainstStripeMock checks every request the client makes against
// Stripe's OpenAPI description, as served by stripe-mock with strict
// version checking.
func TestAgainstStripeMock(t *testing.T) {
	t.Parallel()
	base := testenv.StartStripeMock(t)
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
	// The sweep's request, as it sends it: the same query, the page
	// decoded by subsync.
	slim, _, err := c.ListSubscriptionsPageSlim(WithPriority(ctx, PriorityLow), SubscriptionPageQuery{
		Status:        "all",
		CreatedGTE:    time.Now().Add(-24 * time.Hour),
		CreatedLT:     time.Now(),
		StartingAfter: "sub_123",
		Limit:         100,
		Planned:       func(string) bool { return true },
	})
	if err != nil || len(slim) != len(page) || len(slim) > 0 && (slim[0].ID != page[0].ID || slim[0].Customer == nil) {
		t.Errorf("ListSubscriptionsPageSlim: %d subscriptions (%d listed in full), %v", len(slim), len(page), err)
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
