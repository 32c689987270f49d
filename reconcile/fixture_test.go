package reconcile_test

import (
	"cmp"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// newFake starts a Stripe fake seeded with seed and closes it when the
// test ends.
func newFake(t testing.TB, seed int64) *stripefake.Server {
	t.Helper()
	fake := stripefake.New(stripefake.Options{Seed: seed})
	t.Cleanup(fake.Close)
	return fake
}

// fakeClient is a Stripe client on fake. cfg may set metrics, limits and
// retries; by default it allows 1000 requests a second and never retries.
func fakeClient(t testing.TB, fake *stripefake.Server, cfg stripeapi.Config) *stripeapi.Client {
	t.Helper()
	cfg.Key, cfg.APIBase = fake.APIKey(), fake.URL()
	cfg.RateLimit = cmp.Or(cfg.RateLimit, 1000)
	cfg.MaxRetries = cmp.Or(cfg.MaxRetries, -1)
	c, err := stripeapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mustPlans builds the price mapping of entries.
func mustPlans(t testing.TB, entries ...reconcile.PlanEntry) reconcile.Plans {
	t.Helper()
	plans, err := reconcile.NewPlans(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return plans
}

// pendingSub is a Stripe fake holding one subscription of user-1 on a
// mapped monthly price, with the event of its creation stored pending in a
// database, as the webhook handler would have left it.
type pendingSub struct {
	fake    *stripefake.Server
	plans   reconcile.Plans
	sub     *stripe.Subscription
	eventID string
}

// newPendingSub creates the subscription on a fake seeded with seed and
// stores its customer.subscription.created event in d.
func newPendingSub(t testing.TB, d *db.DB, seed int64) *pendingSub {
	t.Helper()
	p := &pendingSub{fake: newFake(t, seed)}
	price, err := p.fake.CreatePrice(stripefake.PriceParams{UnitAmount: 57300, Interval: "month", ProductName: "maquina"})
	if err != nil {
		t.Fatal(err)
	}
	p.plans = mustPlans(t, reconcile.PlanEntry{Price: price.ID, Plan: "maquina", Period: reconcile.PeriodMonthly})
	cus, err := p.fake.CreateCustomer(stripefake.CustomerParams{})
	if err != nil {
		t.Fatal(err)
	}
	p.sub, err = p.fake.CreateSubscription(stripefake.SubscriptionParams{Customer: cus.ID, Price: price.ID,
		Metadata: map[string]string{"user_id": "user-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range p.fake.Events() {
		if string(ev.Type) != "customer.subscription.created" {
			continue
		}
		body, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		p.eventID = ev.ID
		if _, err := d.InsertEvent(context.Background(), reconcile.NewEvent{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0),
			Source: reconcile.SourceWebhook, Status: reconcile.StatusPending, SubscriptionID: p.sub.ID, Payload: body}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// applier is an applier on d with a client of its own on the fake.
func (p *pendingSub) applier(t testing.TB, d *db.DB, cfg reconcile.ApplierConfig) *reconcile.Applier {
	t.Helper()
	client := fakeClient(t, p.fake, stripeapi.Config{Metrics: cfg.Metrics})
	return reconcile.NewApplier(cfg, d, client, &reconcile.Resolver{Plans: p.plans, Customers: client})
}

// advisoryLocksHeld counts the advisory locks granted in d's database.
func advisoryLocksHeld(t testing.TB, d *db.DB) int {
	t.Helper()
	var n int
	if err := d.X().Get(&n, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		return -1
	}
	return n
}
