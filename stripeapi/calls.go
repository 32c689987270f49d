package stripeapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// maxPageSize is the largest page Stripe's list endpoints return.
const maxPageSize = 100

// maxEventTypes is how many types Stripe accepts in one events list query.
const maxEventTypes = 20

// errEmptyID is returned before any request when an id is empty: stripe-go
// would otherwise call the list endpoint.
var errEmptyID = errors.New("empty id")

// GetSubscription fetches a subscription. Its items carry their full price
// objects, so nothing is expanded. A missing subscription yields an error
// wrapping ErrNotFound.
func (c *Client) GetSubscription(ctx context.Context, id string) (*stripe.Subscription, error) {
	return getByID(c, "subscription", id, func(id string) (*stripe.Subscription, error) {
		return c.api.Subscriptions.Get(id, &stripe.SubscriptionParams{Params: stripe.Params{Context: ctx}})
	})
}

// GetCustomer fetches a customer. A deleted customer is returned with
// Deleted set, not as an error.
func (c *Client) GetCustomer(ctx context.Context, id string) (*stripe.Customer, error) {
	return getByID(c, "customer", id, func(id string) (*stripe.Customer, error) {
		return c.api.Customers.Get(id, &stripe.CustomerParams{Params: stripe.Params{Context: ctx}})
	})
}

// GetPrice fetches a price (its Recurring field gives interval and count).
func (c *Client) GetPrice(ctx context.Context, id string) (*stripe.Price, error) {
	return getByID(c, "price", id, func(id string) (*stripe.Price, error) {
		return c.api.Prices.Get(id, &stripe.PriceParams{Params: stripe.Params{Context: ctx}})
	})
}

// GetInvoice fetches an invoice; its Subscription is unexpanded (ID only).
func (c *Client) GetInvoice(ctx context.Context, id string) (*stripe.Invoice, error) {
	return getByID(c, "invoice", id, func(id string) (*stripe.Invoice, error) {
		return c.api.Invoices.Get(id, &stripe.InvoiceParams{Params: stripe.Params{Context: ctx}})
	})
}

// getByID fetches the object of kind what with id through fetch; an empty
// id is refused before any request, since Stripe would answer it with a
// list.
func getByID[T any](c *Client, what, id string, fetch func(id string) (T, error)) (T, error) {
	var zero T
	if id == "" {
		return zero, fmt.Errorf("get %s: %w", what, errEmptyID)
	}
	v, err := fetch(id)
	if err != nil {
		return zero, c.fail(err, "get %s %s", what, id)
	}
	return v, nil
}

// SubscriptionPageQuery selects one page of subscriptions.
type SubscriptionPageQuery struct {
	// Status filters by status; "" means "all" (canceled included).
	Status string
	// CreatedGTE and CreatedLT bound the creation time; zero means
	// unbounded. They are rounded outwards to whole seconds.
	CreatedGTE, CreatedLT time.Time
	// StartingAfter is the cursor: the ID of the last subscription of the
	// previous page; "" for the first page.
	StartingAfter string
	// Limit is the page size, 1 to 100; 0 means 100.
	Limit int
	// Planned tells which prices are plans, so that a subscription whose
	// period is only on its items (API versions from basil on) gets its
	// plan item's: see DecodeSubscription. Nil means the first item's.
	// Only ListSubscriptionsPageSlim reads it.
	Planned func(priceID string) bool
}

// params are the list request's parameters for q.
func (q SubscriptionPageQuery) params(ctx context.Context) (*stripe.SubscriptionListParams, error) {
	if q.Limit < 0 || q.Limit > maxPageSize {
		return nil, fmt.Errorf("list subscriptions: limit %d out of range 1..%d", q.Limit, maxPageSize)
	}
	p := &stripe.SubscriptionListParams{}
	p.Context = ctx
	p.Limit = stripe.Int64(int64(cmp.Or(q.Limit, maxPageSize)))
	p.Status = stripe.String(cmp.Or(q.Status, "all"))
	if q.StartingAfter != "" {
		p.StartingAfter = stripe.String(q.StartingAfter)
	}
	if r := createdRange(q.CreatedGTE, q.CreatedLT); r != nil {
		p.CreatedRange = r
	}
	return p, nil
}

// ListSubscriptionsPage returns one page of subscriptions, newest first, and
// whether more follow. Continue with StartingAfter set to the ID of the
// page's last element.
func (c *Client) ListSubscriptionsPage(ctx context.Context, q SubscriptionPageQuery) ([]*stripe.Subscription, bool, error) {
	p, err := q.params(ctx)
	if err != nil {
		return nil, false, err
	}
	p.Single = true
	it := c.api.Subscriptions.List(p)
	var page []*stripe.Subscription
	for it.Next() {
		page = append(page, it.Subscription())
	}
	if err := it.Err(); err != nil {
		return nil, false, c.fail(err, "list subscriptions")
	}
	list := it.SubscriptionList()
	return page, list != nil && list.HasMore, nil
}

// ListEvents calls fn for every event of the given types (all types when
// empty; at most 20) created at or after since (all retained events when
// zero; since is rounded down to the second), newest first as Stripe lists
// them, fetching pages of 100 as needed. It stops at the first error of fn
// and returns that error unchanged.
func (c *Client) ListEvents(ctx context.Context, types []string, since time.Time, fn func(*stripe.Event) error) error {
	if len(types) > maxEventTypes {
		return fmt.Errorf("list events: %d types, Stripe accepts at most %d", len(types), maxEventTypes)
	}
	p := &stripe.EventListParams{}
	p.Context = ctx
	p.Limit = stripe.Int64(maxPageSize)
	if len(types) > 0 {
		p.Types = stripe.StringSlice(types)
	}
	if r := createdRange(since, time.Time{}); r != nil {
		p.CreatedRange = r
	}
	it := c.api.Events.List(p)
	for it.Next() {
		if err := fn(it.Event()); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return c.fail(err, "list events")
	}
	return nil
}

// ListWebhookEndpoints returns every webhook endpoint of the account.
func (c *Client) ListWebhookEndpoints(ctx context.Context) ([]*stripe.WebhookEndpoint, error) {
	p := &stripe.WebhookEndpointListParams{}
	p.Context = ctx
	p.Limit = stripe.Int64(maxPageSize)
	it := c.api.WebhookEndpoints.List(p)
	var out []*stripe.WebhookEndpoint
	for it.Next() {
		out = append(out, it.WebhookEndpoint())
	}
	if err := it.Err(); err != nil {
		return nil, c.fail(err, "list webhook endpoints")
	}
	return out, nil
}

// CheckKey verifies the key with GET /v1/balance, which any valid secret
// key may read (a restricted key needs the Balance read permission). A
// rejected key (401) yields an error wrapping ErrInvalidKey.
func (c *Client) CheckKey(ctx context.Context) error {
	p := &stripe.BalanceParams{}
	p.Context = ctx
	if _, err := c.api.Balance.Get(p); err != nil {
		return c.fail(err, "check key")
	}
	return nil
}

// createdRange builds created[gte]/created[lt], rounding outwards to whole
// seconds; nil when both bounds are zero.
func createdRange(gte, lt time.Time) *stripe.RangeQueryParams {
	if gte.IsZero() && lt.IsZero() {
		return nil
	}
	r := &stripe.RangeQueryParams{}
	if !gte.IsZero() {
		r.GreaterThanOrEqual = gte.Unix()
	}
	if !lt.IsZero() {
		r.LesserThan = lt.Unix()
		if lt.Nanosecond() != 0 {
			r.LesserThan++
		}
	}
	return r
}
