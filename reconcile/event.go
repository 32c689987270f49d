package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

// HandledTypes are the event types subsyncd applies; every other type is
// stored as ignored.
var HandledTypes = []string{
	"customer.subscription.created",
	"customer.subscription.updated",
	"customer.subscription.deleted",
	"customer.subscription.paused",
	"customer.subscription.resumed",
	"customer.subscription.trial_will_end",
	"customer.subscription.pending_update_applied",
	"customer.subscription.pending_update_expired",
	"invoice.payment_succeeded",
	"invoice.paid",
	"invoice.payment_failed",
}

// Handled reports whether events of type t are applied.
func Handled(t string) bool {
	for _, h := range HandledTypes {
		if h == t {
			return true
		}
	}
	return false
}

// IsInvoiceEvent reports whether t is applied through the invoice's
// subscription.
func IsInvoiceEvent(t string) bool { return strings.HasPrefix(t, "invoice.") }

// ErrNotAnEvent means a body is not a Stripe event.
var ErrNotAnEvent = errors.New("not a Stripe event")

// DecodeEvent parses a Stripe event leniently: whatever its API version,
// it only needs an evt_ id, a type, a created time and a data.object.
func DecodeEvent(body []byte) (*stripe.Event, error) {
	var ev stripe.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAnEvent, err)
	}
	if err := checkEventHead(ev.ID, string(ev.Type), ev.Object, ev.Created, ev.Data != nil && ev.Data.Object != nil); err != nil {
		return nil, err
	}
	return &ev, nil
}

// SubscriptionIDOf returns the subscription an event is about: the object
// itself for subscription events, the invoice's subscription for invoice
// events (named at the top level before API version basil, under
// parent.subscription_details or by the lines' parents from basil on);
// "" when there is none (a one-off invoice).
func SubscriptionIDOf(ev *stripe.Event) string {
	if ev == nil || ev.Data == nil {
		return ""
	}
	return subscriptionOfObject(string(ev.Type), ev.Data.Object)
}

// clip cuts s to at most 255 bytes without splitting a character, so that
// what is stored in a text column stays valid UTF-8.
func clip(s string) string {
	if len(s) > 255 {
		return strings.ToValidUTF8(s[:255], "")
	}
	return s
}
