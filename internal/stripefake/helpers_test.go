package stripefake_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/subsync/subsync/internal/stripefake"
)

// newFake starts a fake and returns it with a stripe-go client aimed at it.
func newFake(t *testing.T, opts stripefake.Options) (*stripefake.Server, *client.API) {
	t.Helper()
	f := stripefake.New(opts)
	t.Cleanup(f.Close)
	return f, f.Client()
}

// frozenClock returns a clock that always answers at.
func frozenClock(at time.Time) func() time.Time { return func() time.Time { return at } }

// fixture is a customer and two prices (monthly and annual) to subscribe to.
type fixture struct {
	customer string
	monthly  string
	annual   string
}

func newFixture(t *testing.T, f *stripefake.Server) fixture {
	t.Helper()
	m, err := f.CreatePrice(stripefake.PriceParams{UnitAmount: 29700, Currency: "brl", Interval: "month", LookupKey: "m"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.CreatePrice(stripefake.PriceParams{Product: m.Product.ID, UnitAmount: 285100, Currency: "brl", Interval: "year"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.CreateCustomer(stripefake.CustomerParams{Email: "ana@example.com", Metadata: map[string]string{"user_id": "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{customer: c.ID, monthly: m.ID, annual: a.ID}
}

// subscribe creates a subscription through the fake's helper.
func subscribe(t *testing.T, f *stripefake.Server, customer, price string) *stripe.Subscription {
	t.Helper()
	sub, err := f.CreateSubscription(stripefake.SubscriptionParams{Customer: customer, Price: price})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// stripeError asserts err is a *stripe.Error with that HTTP status.
func stripeError(t *testing.T, err error, status int) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want *stripe.Error with status %d", err, err, status)
	}
	if se.HTTPStatusCode != status {
		t.Fatalf("HTTP status = %d (%s), want %d", se.HTTPStatusCode, se.Msg, status)
	}
	return se
}

// eventTypes returns the types of events, in order.
func eventTypes(evts []*stripe.Event) []string {
	out := make([]string, len(evts))
	for i, e := range evts {
		out[i] = string(e.Type)
	}
	return out
}
