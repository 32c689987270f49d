package stripefake_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/subsync/subsync/internal/stripefake"
)

// listEvents lists every event matching p, following pages.
func listEvents(t *testing.T, api *client.API, p *stripe.EventListParams) []*stripe.Event {
	t.Helper()
	it := api.Events.List(p)
	var out []*stripe.Event
	for it.Next() {
		out = append(out, it.Event())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestListEventsFilters(t *testing.T) {
	t.Parallel()
	base := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	f, api := newFake(t, stripefake.Options{Clock: frozenClock(base)})
	fx := newFixture(t, f) // 2 price.created + customer.created at base
	var subs []string
	for i := range 4 { // at base+1s .. base+4s, four events each
		f.SetClock(frozenClock(base.Add(time.Duration(i+1) * time.Second)))
		subs = append(subs, subscribe(t, f, fx.customer, fx.monthly).ID)
	}
	f.SetClock(frozenClock(base.Add(10 * time.Second)))
	if _, err := f.SetCancelAtPeriodEnd(subs[0], true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.FailPayment(subs[1]); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		params func() *stripe.EventListParams
		want   []string // types, newest first
	}{
		{"types[] repeated", func() *stripe.EventListParams {
			return &stripe.EventListParams{Types: []*string{
				stripe.String("customer.subscription.updated"), stripe.String("invoice.payment_failed"),
			}}
		}, []string{"customer.subscription.updated", "invoice.payment_failed", "customer.subscription.updated"}},
		{"type wildcard", func() *stripe.EventListParams {
			return &stripe.EventListParams{Type: stripe.String("customer.subscription.*")}
		}, []string{"customer.subscription.updated", "customer.subscription.updated",
			"customer.subscription.created", "customer.subscription.created",
			"customer.subscription.created", "customer.subscription.created"}},
		{"created gt and lte", func() *stripe.EventListParams {
			return &stripe.EventListParams{
				Type:         stripe.String("customer.subscription.created"),
				CreatedRange: &stripe.RangeQueryParams{GreaterThan: base.Unix() + 1, LesserThanOrEqual: base.Unix() + 3},
			}
		}, []string{"customer.subscription.created", "customer.subscription.created"}},
		{"created exact", func() *stripe.EventListParams {
			return &stripe.EventListParams{Created: stripe.Int64(base.Unix())}
		}, []string{"customer.created", "price.created", "price.created"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := listEvents(t, api, tt.params())
			types := eventTypes(got)
			// Within one second the order is by id; compare as multisets there.
			if !sameBySecond(got, tt.want) {
				t.Fatalf("types = %v, want %v", types, tt.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Created > got[i-1].Created {
					t.Fatalf("not newest first at %d", i)
				}
			}
		})
	}

	t.Run("paging with small limit sees every event once", func(t *testing.T) {
		t.Parallel()
		p := &stripe.EventListParams{}
		p.Limit = stripe.Int64(3)
		got := listEvents(t, api, p)
		all := f.Events()
		if len(got) != len(all) {
			t.Fatalf("listed %d, fake holds %d", len(got), len(all))
		}
		seen := map[string]bool{}
		for _, e := range got {
			if seen[e.ID] {
				t.Fatalf("event %s listed twice", e.ID)
			}
			seen[e.ID] = true
		}
	})

	t.Run("type and types together is a 400", func(t *testing.T) {
		t.Parallel()
		it := api.Events.List(&stripe.EventListParams{Type: stripe.String("a"), Types: []*string{stripe.String("b")}})
		it.Next()
		stripeError(t, it.Err(), http.StatusBadRequest)
	})
}

// sameBySecond compares event types to want ignoring order among events of
// the same second.
func sameBySecond(got []*stripe.Event, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := 0; i < len(got); {
		j := i
		for j < len(got) && got[j].Created == got[i].Created {
			j++
		}
		a := eventTypes(got[i:j])
		b := slices.Clone(want[i:j])
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			return false
		}
		i = j
	}
	return true
}

func TestEventsRetentionAndShape(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f, api := newFake(t, stripefake.Options{Clock: frozenClock(start)})
	fx := newFixture(t, f)
	sub := subscribe(t, f, fx.customer, fx.monthly)

	evts := listEvents(t, api, &stripe.EventListParams{Type: stripe.String("customer.subscription.created")})
	if len(evts) != 1 {
		t.Fatalf("%d subscription.created events", len(evts))
	}
	e := evts[0]
	if e.APIVersion != stripe.APIVersion || e.Livemode || e.Object != "event" || e.Data.Object["id"] != sub.ID ||
		e.Data.Object["customer"] != fx.customer || e.Data.Object["object"] != "subscription" {
		t.Fatalf("event = %+v object %v", e, e.Data.Object)
	}
	if got, err := api.Events.Get(e.ID, nil); err != nil || got.ID != e.ID {
		t.Fatalf("GET event = %v, %v", got, err)
	}

	f.SetClock(frozenClock(start.Add(31 * 24 * time.Hour)))
	if _, err := f.Renew(sub.ID); err != nil {
		t.Fatal(err)
	}
	listed := listEvents(t, api, &stripe.EventListParams{})
	if got := eventTypes(listed); len(got) != 3 || slices.Contains(got, "customer.subscription.created") {
		t.Fatalf("after 31 days the API lists %v, want only the renewal's 3 events", got)
	}
	_, err := api.Events.Get(e.ID, nil)
	stripeError(t, err, http.StatusNotFound)
	if n := len(f.Events()); n != 9 {
		t.Fatalf("Events() = %d, want all 9 regardless of retention", n)
	}
}

func TestBasilEventsAndVersionedReads(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{APIVersion: "2025-03-31.basil"})
	fx := newFixture(t, f)
	sub := subscribe(t, f, fx.customer, fx.monthly)

	evts := f.Events()
	var created, paid *stripe.Event
	for _, e := range evts {
		switch e.Type {
		case "customer.subscription.created":
			created = e
		case "invoice.paid":
			paid = e
		}
	}
	if created.APIVersion != "2025-03-31.basil" {
		t.Fatalf("api_version = %s", created.APIVersion)
	}
	if _, ok := created.Data.Object["current_period_end"]; ok {
		t.Fatal("basil subscription still has a top-level current_period_end")
	}
	if got := created.GetObjectValue("items", "data", "0", "current_period_end"); got == "" {
		t.Fatal("basil subscription item has no current_period_end")
	}
	if got := paid.GetObjectValue("parent", "subscription_details", "subscription"); got != sub.ID {
		t.Fatalf("basil invoice parent.subscription_details.subscription = %q", got)
	}
	// stripe-go pins 2023-10-16 in its Stripe-Version header: reads keep the
	// old shape.
	got, err := api.Subscriptions.Get(sub.ID, nil)
	if err != nil || got.CurrentPeriodEnd == 0 {
		t.Fatalf("GET with 2023-10-16 = period end %d, %v", got.CurrentPeriodEnd, err)
	}
}
