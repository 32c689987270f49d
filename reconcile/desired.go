package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// ErrNoItems means a subscription carries no item, so no plan can be
// derived from it. Retrying cannot help.
var ErrNoItems = errors.New("subscription has no items")

// CustomerGetter fetches a customer; the Stripe client implements it.
type CustomerGetter interface {
	GetCustomer(ctx context.Context, id string) (*stripe.Customer, error)
}

// Resolver computes desired rows. Every writer (applier, catch-up, sweep)
// uses the same Resolver, so they agree on what a subscription means.
type Resolver struct {
	Plans       Plans
	MetadataKey string         // metadata key holding the user id; default "user_id"
	Customers   CustomerGetter // may be nil: no customer fallback
}

func (r *Resolver) key() string {
	if r.MetadataKey == "" {
		return "user_id"
	}
	return r.MetadataKey
}

// maxUserIDLen bounds a user id taken from metadata. Stripe allows 500
// characters in a metadata value; anything longer is not an id.
const maxUserIDLen = 500

// Desired computes the row user_subscriptions should hold for sub, as of
// stateAt (the time of the Stripe state sub reflects). The user id comes from
// the subscription's metadata, else from the customer's (fetched, unless
// knownUser says the stored row already has one and so keeps it), else it is
// left nil so the stored one is kept.
func (r *Resolver) Desired(ctx context.Context, sub *stripe.Subscription, stateAt time.Time, knownUser bool) (Subscription, error) {
	if sub == nil || sub.ID == "" {
		return Subscription{}, errors.New("subscription without id")
	}
	item := r.planItem(sub)
	if item == nil || item.Price == nil {
		return Subscription{}, fmt.Errorf("subscription %s: %w", sub.ID, ErrNoItems)
	}
	row := Subscription{
		StripeSubscriptionID: sub.ID,
		StripePriceID:        ptr(item.Price.ID),
		Status:               string(sub.Status),
		CurrentPeriodStart:   unixPtr(sub.CurrentPeriodStart),
		CurrentPeriodEnd:     unixPtr(sub.CurrentPeriodEnd),
		CancelAtPeriodEnd:    sub.CancelAtPeriodEnd,
		CanceledAt:           unixPtr(sub.CanceledAt),
		StripeStateAt:        stateAt.UTC().Truncate(time.Microsecond),
	}
	if sub.Customer != nil {
		row.StripeCustomerID = sub.Customer.ID
	}
	if pl, ok := r.Plans.Lookup(item.Price.ID); ok {
		row.PlanID = ptr(pl.ID)
		row.BillingPeriod = pl.Period
	} else {
		row.BillingPeriod = PeriodOf(item.Price)
	}
	if uid := validUserID(sub.Metadata[r.key()]); uid != "" {
		row.UserID = ptr(uid)
		return row, nil
	}
	if knownUser || r.Customers == nil || row.StripeCustomerID == "" {
		return row, nil
	}
	if sub.Customer != nil && sub.Customer.Metadata != nil {
		if uid := validUserID(sub.Customer.Metadata[r.key()]); uid != "" {
			row.UserID = ptr(uid)
		}
		return row, nil
	}
	cus, err := r.Customers.GetCustomer(ctx, row.StripeCustomerID)
	if err != nil {
		return row, fmt.Errorf("subscription %s: customer %s: %w", sub.ID, row.StripeCustomerID, err)
	}
	if !cus.Deleted {
		if uid := validUserID(cus.Metadata[r.key()]); uid != "" {
			row.UserID = ptr(uid)
		}
	}
	return row, nil
}

// planItem picks the item that defines the plan: the first whose price is
// mapped, else the first item that has a price.
func (r *Resolver) planItem(sub *stripe.Subscription) *stripe.SubscriptionItem {
	if sub.Items == nil || len(sub.Items.Data) == 0 {
		return nil
	}
	var first *stripe.SubscriptionItem
	for _, it := range sub.Items.Data {
		if it != nil && it.Price != nil {
			if _, ok := r.Plans.Lookup(it.Price.ID); ok {
				return it
			}
			if first == nil {
				first = it
			}
		}
	}
	return first
}

// PeriodOf derives the billing period from a price's recurring interval:
// one year is annual, one month is monthly, anything else is other.
func PeriodOf(p *stripe.Price) string {
	if p == nil || p.Recurring == nil {
		return PeriodOther
	}
	switch {
	case p.Recurring.Interval == stripe.PriceRecurringIntervalYear && p.Recurring.IntervalCount == 1:
		return PeriodAnnual
	case p.Recurring.Interval == stripe.PriceRecurringIntervalMonth && p.Recurring.IntervalCount == 1:
		return PeriodMonthly
	}
	return PeriodOther
}

func validUserID(s string) string {
	if len(s) > maxUserIDLen {
		return ""
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func unixPtr(sec int64) *time.Time {
	if sec == 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}
