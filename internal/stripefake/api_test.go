package stripefake_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
)

func TestUpdateVariants(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	fx := newFixture(t, f)

	tests := []struct {
		name   string
		params *stripe.SubscriptionParams
		check  func(t *testing.T, before, after *stripe.Subscription)
	}{
		{"items[0][price] alone replaces the item", &stripe.SubscriptionParams{
			Items: []*stripe.SubscriptionItemsParams{{Price: stripe.String(fx.annual)}},
		}, func(t *testing.T, before, after *stripe.Subscription) {
			if len(after.Items.Data) != 1 || after.Items.Data[0].ID == before.Items.Data[0].ID ||
				after.Items.Data[0].Price.ID != fx.annual {
				t.Fatalf("items = %+v", after.Items.Data[0])
			}
		}},
		{"pause_collection", &stripe.SubscriptionParams{
			PauseCollection: &stripe.SubscriptionPauseCollectionParams{Behavior: stripe.String("void")},
		}, func(t *testing.T, _, after *stripe.Subscription) {
			if after.PauseCollection == nil || after.PauseCollection.Behavior != "void" || after.Status != "active" {
				t.Fatalf("pause_collection = %+v, status %s", after.PauseCollection, after.Status)
			}
		}},
		{"same price is not a change", &stripe.SubscriptionParams{
			Items: []*stripe.SubscriptionItemsParams{{Price: stripe.String(fx.monthly)}},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := subscribe(t, f, fx.customer, fx.monthly)
			after, err := api.Subscriptions.Update(before.ID, tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, before, after)
			}
		})
	}
}

func TestWebhookEndpointsAPI(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	f.AddWebhookEndpoint("http://127.0.0.1:1/a", "whsec_a", "", nil)
	created, err := api.WebhookEndpoints.New(&stripe.WebhookEndpointParams{
		URL:           stripe.String("http://127.0.0.1:1/b"),
		EnabledEvents: []*string{stripe.String("invoice.paid")},
	})
	if err != nil || created.Secret == "" || created.EnabledEvents[0] != "invoice.paid" {
		t.Fatalf("create endpoint = %+v, %v", created, err)
	}
	it := api.WebhookEndpoints.List(&stripe.WebhookEndpointListParams{})
	var urls []string
	for it.Next() {
		ep := it.WebhookEndpoint()
		if ep.Status != "enabled" || len(ep.EnabledEvents) == 0 {
			t.Fatalf("endpoint %+v", ep)
		}
		urls = append(urls, ep.URL)
	}
	if it.Err() != nil || len(urls) != 2 || urls[0] != "http://127.0.0.1:1/b" {
		t.Fatalf("endpoints = %v, %v", urls, it.Err())
	}
}

// TestWebhookEndpointsPages pages the endpoints newest first with both
// cursors, as stripe-go's auto-pagination and a single page ask.
func TestWebhookEndpointsPages(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	var ids []string // newest first
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		ids = append([]string{f.AddWebhookEndpoint("http://127.0.0.1:1/"+u, "whsec_"+u, "", nil)}, ids...)
	}
	list := func(p *stripe.WebhookEndpointListParams) ([]string, bool, error) {
		it := api.WebhookEndpoints.List(p)
		var got []string
		for it.Next() {
			got = append(got, it.WebhookEndpoint().ID)
		}
		return got, it.Meta() != nil && it.Meta().HasMore, it.Err()
	}

	p := &stripe.WebhookEndpointListParams{}
	p.Limit = stripe.Int64(2)
	if got, _, err := list(p); err != nil || !slices.Equal(got, ids) {
		t.Fatalf("all pages = %v, %v; want %v", got, err, ids)
	}
	p = &stripe.WebhookEndpointListParams{}
	p.Limit, p.Single = stripe.Int64(2), true
	p.StartingAfter = stripe.String(ids[1])
	if got, more, err := list(p); err != nil || !slices.Equal(got, ids[2:4]) || !more {
		t.Fatalf("after %s = %v (has_more %v), %v; want %v", ids[1], got, more, err, ids[2:4])
	}
	p = &stripe.WebhookEndpointListParams{}
	p.Limit, p.Single = stripe.Int64(2), true
	p.EndingBefore = stripe.String(ids[2])
	want := []string{ids[1], ids[0]} // stripe-go walks a backward page oldest first
	if got, more, err := list(p); err != nil || !slices.Equal(got, want) || more {
		t.Fatalf("before %s = %v (has_more %v), %v; want %v", ids[2], got, more, err, want)
	}
	p.EndingBefore = stripe.String(ids[4])
	want = []string{ids[3], ids[2]}
	if got, more, err := list(p); err != nil || !slices.Equal(got, want) || !more {
		t.Fatalf("before %s = %v (has_more %v), %v; want %v", ids[4], got, more, err, want)
	}
	p = &stripe.WebhookEndpointListParams{}
	p.StartingAfter = stripe.String("we_missing")
	_, _, err := list(p)
	if se := stripeError(t, err, http.StatusBadRequest); se.Code != stripe.ErrorCodeResourceMissing {
		t.Fatalf("unknown cursor: code = %q, want resource_missing", se.Code)
	}
}

// TestConcurrentUse drives the fake from several goroutines at once; run
// with -race it checks the locking.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	fx := newFixture(t, f)
	rc, url := newReceiver(t, "whsec_c")
	f.AddWebhookEndpoint(url, "whsec_c", "", nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				sub, err := api.Subscriptions.New(&stripe.SubscriptionParams{
					Customer: stripe.String(fx.customer),
					Items:    []*stripe.SubscriptionItemsParams{{Price: stripe.String(fx.monthly)}},
				})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := f.Renew(sub.ID); err != nil {
					t.Error(err)
				}
				it := api.Subscriptions.List(&stripe.SubscriptionListParams{})
				for it.Next() {
				}
				if it.Err() != nil {
					t.Error(it.Err())
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if _, err := f.DeliverAll(context.Background(), stripefake.DeliverOptions{Concurrency: 2}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if _, err := f.DeliverAll(context.Background(), stripefake.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	ids, _, bad := rc.received()
	if got, want := len(ids), len(f.EventTypes())-3; got != want || bad != 0 {
		t.Fatalf("received %d events (%d bad), want %d", got, bad, want)
	}
	if n := f.SubscriptionCount(); n != 20 {
		t.Fatalf("%d subscriptions", n)
	}
}
