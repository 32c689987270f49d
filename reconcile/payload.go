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

// SubscriptionFromObject reads an event's data.object as a subscription,
// whatever the API version it was rendered in (stripeapi.DecodeSubscription,
// with the plan item chosen as Desired chooses it). An object it cannot read
// is ErrUnreadable.
func (r *Resolver) SubscriptionFromObject(raw []byte) (*stripe.Subscription, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: event without data.object", ErrUnreadable)
	}
	return stripeapi.DecodeSubscription(raw, r.planned)
}

// ReadSubscriptionEvent is env.SubscriptionID and, for a subscription
// event whose object r can read, the subscription it read, for
// NewEvent.Object: in payload mode the object is then read once, where the
// event arrives. The subscription is nil when r cannot read it; whoever
// applies the event reads it again and meets the same error.
func (r *Resolver) ReadSubscriptionEvent(env Envelope) (string, *stripe.Subscription) {
	if !Handled(env.Type) || IsInvoiceEvent(env.Type) {
		return env.SubscriptionID(), nil
	}
	sub, err := r.SubscriptionFromObject(env.Data.Object)
	if err != nil || sub.Object != "subscription" {
		return env.SubscriptionID(), nil
	}
	return clip(sub.ID), sub
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
