package reconcile

import (
	"fmt"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/stripeapi"
)

// ErrUnreadable means an event's object is not a subscription a row can be
// made of (no id, status or customer; not an object at all): the event is
// ignored with the reason, and no row is written.
var ErrUnreadable = stripeapi.ErrUnreadable

// SubscriptionFromPayload reads the subscription an event carries, whatever
// API version it was rendered in (see stripeapi.DecodeSubscription): the
// period from the items when the subscription has none, a plan as the
// price when an item has no price, a lone top-level plan as the one item.
// The plan item is chosen as Desired chooses it, so the period read is the
// plan's.
func (r *Resolver) SubscriptionFromPayload(ev *stripe.Event) (*stripe.Subscription, error) {
	if ev == nil || ev.Data == nil || len(ev.Data.Raw) == 0 {
		return nil, fmt.Errorf("%w: event without data.object", ErrUnreadable)
	}
	return r.SubscriptionFromObject(ev.Data.Raw)
}

// SubscriptionFromObject reads a subscription object of any API version,
// as SubscriptionFromPayload does.
func (r *Resolver) SubscriptionFromObject(raw []byte) (*stripe.Subscription, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: event without data.object", ErrUnreadable)
	}
	return stripeapi.DecodeSubscription(raw, r.planned)
}

// planned reports whether a price id maps to a plan.
func (r *Resolver) planned(priceID string) bool {
	_, ok := r.Plans.Lookup(priceID)
	return ok
}

// subscriptionOfObject is SubscriptionIDOf's reading of a data.object: an
// invoice's subscription in any API version, or the subscription itself.
func subscriptionOfObject(typ string, obj map[string]any) string {
	if IsInvoiceEvent(typ) {
		return clip(stripeapi.InvoiceSubscriptionID(obj))
	}
	if o, _ := obj["object"].(string); o != "subscription" {
		return ""
	}
	id, _ := obj["id"].(string)
	return clip(id)
}
