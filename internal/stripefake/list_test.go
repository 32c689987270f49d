package stripefake_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/subsync/subsync/internal/stripefake"
)

// listPage fetches one page of subscriptions without auto-pagination.
func listPage(t *testing.T, api *client.API, p *stripe.SubscriptionListParams) ([]string, bool) {
	t.Helper()
	p.Single = true
	it := api.Subscriptions.List(p)
	var ids []string
	for it.Next() {
		ids = append(ids, it.Subscription().ID)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return ids, it.Meta().HasMore
}

// seed250 creates 250 subscriptions, three per second of a fake clock (so
// that ties on created are exercised), and cancels every tenth. It returns
// all ids in the order the API lists them (newest first, then by id).
func seed250(t *testing.T, f *stripefake.Server, fx fixture) (all, live []string) {
	t.Helper()
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	type row struct {
		id      string
		created int64
	}
	var rows []row
	for i := range 250 {
		f.SetClock(frozenClock(start.Add(time.Duration(i/3) * time.Second)))
		price := fx.monthly
		if i%2 == 1 {
			price = fx.annual
		}
		sub := subscribe(t, f, fx.customer, price)
		if i%10 == 0 {
			if _, err := f.CancelSubscription(sub.ID); err != nil {
				t.Fatal(err)
			}
		}
		rows = append(rows, row{sub.ID, sub.Created})
	}
	slices.SortFunc(rows, func(a, b row) int {
		if a.created != b.created {
			return int(b.created - a.created)
		}
		if a.id > b.id {
			return -1
		}
		return 1
	})
	canceled := map[string]bool{}
	for _, r := range rows {
		all = append(all, r.id)
	}
	for _, s := range f.Subscriptions() {
		if s.Status == stripe.SubscriptionStatusCanceled {
			canceled[s.ID] = true
		}
	}
	for _, id := range all {
		if !canceled[id] {
			live = append(live, id)
		}
	}
	return all, live
}

func TestListSubscriptionsPagination(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{Seed: 3})
	fx := newFixture(t, f)
	all, live := seed250(t, f, fx)
	if len(all) != 250 || len(live) != 225 {
		t.Fatalf("seeded %d, %d live", len(all), len(live))
	}

	t.Run("pages of 100 with status=all", func(t *testing.T) {
		t.Parallel()
		var got []string
		var hasMore []bool
		p := &stripe.SubscriptionListParams{Status: stripe.String("all")}
		p.Limit = stripe.Int64(100)
		for {
			ids, more := listPage(t, api, p)
			got = append(got, ids...)
			hasMore = append(hasMore, more)
			if !more {
				break
			}
			p = &stripe.SubscriptionListParams{Status: stripe.String("all")}
			p.Limit = stripe.Int64(100)
			p.StartingAfter = stripe.String(ids[len(ids)-1])
		}
		if !slices.Equal(hasMore, []bool{true, true, false}) {
			t.Fatalf("has_more per page = %v", hasMore)
		}
		if !slices.Equal(got, all) {
			t.Fatal("pages do not list every subscription newest first, then by id")
		}
	})

	t.Run("default hides canceled, iterator follows has_more", func(t *testing.T) {
		t.Parallel()
		p := &stripe.SubscriptionListParams{}
		p.Limit = stripe.Int64(100)
		it := api.Subscriptions.List(p)
		var got []string
		for it.Next() {
			got = append(got, it.Subscription().ID)
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, live) {
			t.Fatalf("default list has %d, want the %d not canceled", len(got), len(live))
		}
	})

	t.Run("ending_before walks back", func(t *testing.T) {
		t.Parallel()
		// The API answers newest first; stripe-go's iterator reverses a
		// backward page so that it walks away from the cursor.
		backward := func(ids []string) []string { out := slices.Clone(ids); slices.Reverse(out); return out }
		p := &stripe.SubscriptionListParams{Status: stripe.String("all")}
		p.Limit = stripe.Int64(5)
		p.EndingBefore = stripe.String(all[20])
		ids, more := listPage(t, api, p)
		if !slices.Equal(ids, backward(all[15:20])) || !more {
			t.Fatalf("ending_before page = %v more=%v, want %v more=true", ids, more, all[15:20])
		}
		p.EndingBefore = stripe.String(all[3])
		ids, more = listPage(t, api, p)
		if !slices.Equal(ids, backward(all[:3])) || more {
			t.Fatalf("first page backwards = %v more=%v", ids, more)
		}
	})

	tests := []struct {
		name   string
		params func() *stripe.SubscriptionListParams
		want   int
	}{
		{"status canceled", func() *stripe.SubscriptionListParams {
			return &stripe.SubscriptionListParams{Status: stripe.String("canceled")}
		}, 25},
		{"status active", func() *stripe.SubscriptionListParams {
			return &stripe.SubscriptionListParams{Status: stripe.String("active")}
		}, 225},
		{"price annual, all", func() *stripe.SubscriptionListParams {
			return &stripe.SubscriptionListParams{Price: stripe.String(fx.annual), Status: stripe.String("all")}
		}, 125},
		{"customer", func() *stripe.SubscriptionListParams {
			return &stripe.SubscriptionListParams{Customer: stripe.String(fx.customer), Status: stripe.String("all")}
		}, 250},
		{"created window", func() *stripe.SubscriptionListParams {
			base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Unix()
			return &stripe.SubscriptionListParams{Status: stripe.String("all"),
				CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: base + 10, LesserThan: base + 20}}
		}, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.params()
			p.Limit = stripe.Int64(100)
			it := api.Subscriptions.List(p)
			n := 0
			for it.Next() {
				n++
			}
			if err := it.Err(); err != nil || n != tt.want {
				t.Fatalf("listed %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}

func TestListEmptyAndInvoices(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	ids, more := listPage(t, api, &stripe.SubscriptionListParams{})
	if len(ids) != 0 || more {
		t.Fatalf("empty list = %v, %v", ids, more)
	}
	fx := newFixture(t, f)
	sub := subscribe(t, f, fx.customer, fx.monthly)
	if _, err := f.Renew(sub.ID); err != nil {
		t.Fatal(err)
	}
	it := api.Invoices.List(&stripe.InvoiceListParams{Subscription: stripe.String(sub.ID)})
	var reasons []string
	for it.Next() {
		inv := it.Invoice()
		if inv.Subscription == nil || inv.Subscription.ID != sub.ID || !inv.Paid {
			t.Fatalf("invoice %+v", inv)
		}
		reasons = append(reasons, string(inv.BillingReason))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if len(reasons) != 2 || !slices.Contains(reasons, "subscription_cycle") || !slices.Contains(reasons, "subscription_create") {
		t.Fatalf("invoice reasons = %v", reasons)
	}
	pit := api.Prices.List(&stripe.PriceListParams{LookupKeys: []*string{stripe.String("m")}})
	n := 0
	for pit.Next() {
		if pit.Price().ID != fx.monthly {
			t.Fatalf("lookup_keys matched %s", pit.Price().ID)
		}
		n++
	}
	if pit.Err() != nil || n != 1 {
		t.Fatalf("prices by lookup key: %d, %v", n, pit.Err())
	}
}
