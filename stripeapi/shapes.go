package stripeapi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/jsondecode"
)

// Stripe renders an object in the API version of the reader: a webhook in
// its endpoint's version, a listed event in the version it was created
// with, a request in the version the client pins. The shapes that matter
// to a subscription row changed three times:
//
//   - before 2018-02-05 a subscription had one top-level plan and, in the
//     oldest versions, no items;
//   - before Prices (2020-08-27 made them the default) an item carried only
//     plan, whose interval and interval_count are the price's recurring;
//   - from 2025-03-31.basil the billing period lives on each item
//     (items.data[].current_period_start/end), and an invoice names its
//     subscription under parent.subscription_details.subscription, its
//     lines under parent.subscription_item_details.subscription.
//
// The wire types below read every one of those shapes; stripe-go v76's
// types read only 2023-10-16's.

// ErrUnreadable means an object is not a subscription this reader can
// make a row of: retrying cannot help.
var ErrUnreadable = errors.New("unreadable subscription")

// wireRecurring is a price's recurring part.
type wireRecurring struct {
	Interval      string `json:"interval"`
	IntervalCount int64  `json:"interval_count"`
}

// wirePrice is a price, or a plan read as one: a plan has its interval at
// the top level.
type wirePrice struct {
	ID            string         `json:"id"`
	Recurring     *wireRecurring `json:"recurring"`
	Interval      string         `json:"interval"`       // plans only
	IntervalCount int64          `json:"interval_count"` // plans only
}

// UnmarshalJSON reads a price object or, unexpanded, its id.
func (p *wirePrice) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return jsondecode.Unmarshal(b, &p.ID)
	}
	type plain wirePrice
	return jsondecode.Unmarshal(b, (*plain)(p))
}

// price returns p as a stripe-go price: a plan's interval becomes the
// price's recurring interval.
func (p *wirePrice) price() *stripe.Price {
	if p == nil || p.ID == "" {
		return nil
	}
	out := &stripe.Price{ID: p.ID, Type: stripe.PriceTypeOneTime}
	switch {
	case p.Recurring != nil:
		out.Recurring = &stripe.PriceRecurring{
			Interval:      stripe.PriceRecurringInterval(p.Recurring.Interval),
			IntervalCount: p.Recurring.IntervalCount,
		}
	case p.Interval != "":
		out.Recurring = &stripe.PriceRecurring{
			Interval:      stripe.PriceRecurringInterval(p.Interval),
			IntervalCount: max(p.IntervalCount, 1),
		}
	}
	if out.Recurring != nil {
		out.Type = stripe.PriceTypeRecurring
	}
	return out
}

type wireItem struct {
	ID                 string     `json:"id"`
	Price              *wirePrice `json:"price"`
	Plan               *wirePrice `json:"plan"`
	CurrentPeriodStart int64      `json:"current_period_start"` // basil and later
	CurrentPeriodEnd   int64      `json:"current_period_end"`   // basil and later
}

// wireCustomer is a customer id or an expanded customer.
type wireCustomer struct {
	ID       string
	Metadata map[string]string
	Deleted  bool
	Expanded bool
}

// UnmarshalJSON reads a customer id or object.
func (c *wireCustomer) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return jsondecode.Unmarshal(b, &c.ID)
	}
	var o struct {
		ID       string            `json:"id"`
		Metadata map[string]string `json:"metadata"`
		Deleted  bool              `json:"deleted"`
	}
	if err := jsondecode.Unmarshal(b, &o); err != nil {
		return err
	}
	*c = wireCustomer{ID: o.ID, Metadata: o.Metadata, Deleted: o.Deleted, Expanded: o.ID != ""}
	return nil
}

// wireSubscription is a subscription of any API version, reduced to what a
// row of user_subscriptions is made of.
type wireSubscription struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	Created            int64             `json:"created"`
	Status             string            `json:"status"`
	CurrentPeriodStart int64             `json:"current_period_start"` // before basil
	CurrentPeriodEnd   int64             `json:"current_period_end"`   // before basil
	CancelAtPeriodEnd  bool              `json:"cancel_at_period_end"`
	CancelAt           int64             `json:"cancel_at"`
	CanceledAt         int64             `json:"canceled_at"`
	EndedAt            int64             `json:"ended_at"`
	Customer           *wireCustomer     `json:"customer"`
	Metadata           map[string]string `json:"metadata"`
	Livemode           bool              `json:"livemode"`
	Plan               *wirePrice        `json:"plan"` // before 2018-02-05
	Items              struct {
		Data []wireItem `json:"data"`
	} `json:"items"`
}

// DecodeSubscription reads a subscription object rendered in any API
// version into stripe-go's type, filling in what that type lacks: an item
// that has only a plan gets the plan as its price; a subscription with
// only a top-level plan gets one item of it; a subscription without a
// top-level period gets its plan item's (the first item whose price
// planned says is a plan, else the first with a price), else the latest
// over its items. planned may be nil.
//
// It refuses, with ErrUnreadable, what is not a subscription or lacks its
// id, status or customer.
func DecodeSubscription(raw []byte, planned func(priceID string) bool) (*stripe.Subscription, error) {
	var w wireSubscription
	if err := jsondecode.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	switch {
	case w.Object != "" && w.Object != "subscription":
		return nil, fmt.Errorf("%w: object is %q, not subscription", ErrUnreadable, clipText(w.Object))
	case w.ID == "":
		return nil, fmt.Errorf("%w: no id", ErrUnreadable)
	case w.Status == "":
		return nil, fmt.Errorf("%w: %s has no status", ErrUnreadable, clipText(w.ID))
	case w.Customer == nil || w.Customer.ID == "":
		return nil, fmt.Errorf("%w: %s has no customer", ErrUnreadable, clipText(w.ID))
	}
	return w.subscription(planned), nil
}

// subscription converts w; see DecodeSubscription.
func (w *wireSubscription) subscription(planned func(string) bool) *stripe.Subscription {
	sub := &stripe.Subscription{
		ID:                 w.ID,
		Object:             w.Object,
		Created:            w.Created,
		Status:             stripe.SubscriptionStatus(w.Status),
		CurrentPeriodStart: w.CurrentPeriodStart,
		CurrentPeriodEnd:   w.CurrentPeriodEnd,
		CancelAtPeriodEnd:  w.CancelAtPeriodEnd,
		CancelAt:           w.CancelAt,
		CanceledAt:         w.CanceledAt,
		EndedAt:            w.EndedAt,
		Metadata:           w.Metadata,
		Livemode:           w.Livemode,
		Items:              &stripe.SubscriptionItemList{Data: make([]*stripe.SubscriptionItem, 0, max(len(w.Items.Data), 1))},
	}
	if c := w.Customer; c != nil {
		sub.Customer = &stripe.Customer{ID: c.ID, Deleted: c.Deleted}
		if c.Expanded {
			sub.Customer.Metadata = c.Metadata
			if sub.Customer.Metadata == nil {
				sub.Customer.Metadata = map[string]string{}
			}
		}
	}
	items := w.Items.Data
	hasPrice := false
	for i := range items {
		it := &items[i]
		p := it.Price.price()
		if p == nil {
			p = it.Plan.price()
		}
		hasPrice = hasPrice || p != nil
		sub.Items.Data = append(sub.Items.Data, &stripe.SubscriptionItem{ID: it.ID, Price: p})
	}
	if !hasPrice {
		if p := w.Plan.price(); p != nil {
			sub.Items.Data = append(sub.Items.Data, &stripe.SubscriptionItem{Price: p})
		}
	}
	if sub.CurrentPeriodStart == 0 && sub.CurrentPeriodEnd == 0 {
		sub.CurrentPeriodStart, sub.CurrentPeriodEnd = itemPeriod(items, sub.Items.Data, planned)
	}
	return sub
}

// itemPeriod returns the period of the plan item when it has one, else the
// latest over the items (by end).
func itemPeriod(items []wireItem, conv []*stripe.SubscriptionItem, planned func(string) bool) (start, end int64) {
	plan := -1
	for i := range items {
		if conv[i].Price == nil {
			continue
		}
		if planned != nil && planned(conv[i].Price.ID) {
			plan = i
			break
		}
		if plan < 0 {
			plan = i
		}
	}
	if plan >= 0 && (items[plan].CurrentPeriodStart != 0 || items[plan].CurrentPeriodEnd != 0) {
		return items[plan].CurrentPeriodStart, items[plan].CurrentPeriodEnd
	}
	for _, it := range items {
		if it.CurrentPeriodEnd > end || (it.CurrentPeriodEnd == end && it.CurrentPeriodStart > start) {
			start, end = it.CurrentPeriodStart, it.CurrentPeriodEnd
		}
	}
	return start, end
}

// InvoiceSubscriptionID returns the subscription an invoice object names,
// in any API version: the top-level subscription (before basil), else
// parent.subscription_details.subscription (basil and later), else the
// first line that names one (parent.subscription_item_details.subscription
// or parent.invoice_item_details.subscription from basil on, else the
// line's subscription). "" means a one-off invoice.
func InvoiceSubscriptionID(inv map[string]any) string {
	if id := idOf(inv["subscription"]); id != "" {
		return id
	}
	if id := idOf(dig(inv, "parent", "subscription_details", "subscription")); id != "" {
		return id
	}
	lines, _ := dig(inv, "lines", "data").([]any)
	for _, l := range lines {
		line, _ := l.(map[string]any)
		for _, id := range []string{
			idOf(dig(line, "parent", "subscription_item_details", "subscription")),
			idOf(dig(line, "parent", "invoice_item_details", "subscription")),
			idOf(line["subscription"]),
		} {
			if id != "" {
				return id
			}
		}
	}
	return ""
}

// dig follows keys through nested objects; nil when one is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// idOf reads a reference: an id string or an expanded object's id.
func idOf(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case map[string]any:
		id, _ := s["id"].(string)
		return id
	}
	return ""
}

// clipText bounds a value quoted in an error message.
func clipText(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}
