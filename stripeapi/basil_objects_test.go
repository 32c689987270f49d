package stripeapi_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	stripe82 "github.com/stripe/stripe-go/v82"
)

// This file builds basil-era objects with stripe-go v82's own types (it
// pins API version 2025-08-27.basil) and renders them as Stripe sends them.
//
// json.Marshal of a v82 struct gives the basil field set: a Subscription
// has no current_period_*, a SubscriptionItem has them, an Invoice names
// its subscription only under parent.subscription_details, a line under
// parent.subscription_item_details. No field is omitempty: an unset
// reference marshals as null, an unset number as 0, which the reader takes
// as absent, as Stripe's null.
//
// One difference matters. v82 has no MarshalJSON for its resources, so an
// expandable reference (a *Customer, a *Subscription) always marshals as
// an object, even when only its ID is set; v82 reads both forms ("the
// resulting property may be an id or the full struct if it was expanded",
// Subscription.UnmarshalJSON), and Stripe sends the id unless the field is
// expanded ("ID of the customer who owns the subscription",
// Subscription.Customer). The reader must not take an id for an expanded
// customer (it would then not fetch the customer for its metadata), so
// sentAs renders the references named as ids, as Stripe sends them.

// basilPrice is a licensed recurring price.
func basilPrice(id string, interval stripe82.PriceRecurringInterval, count int64) *stripe82.Price {
	return &stripe82.Price{
		ID: id, Object: "price", Active: true, Currency: stripe82.CurrencyUSD,
		Type: stripe82.PriceTypeRecurring, UnitAmount: 1500, Product: &stripe82.Product{ID: "prod_" + id},
		Recurring: &stripe82.PriceRecurring{
			Interval: interval, IntervalCount: count, UsageType: stripe82.PriceRecurringUsageTypeLicensed,
		},
	}
}

// basilItem is an item of subscription subID with its own period, as
// items have from basil on.
func basilItem(id, subID string, price *stripe82.Price, start, end int64) *stripe82.SubscriptionItem {
	return &stripe82.SubscriptionItem{
		ID: id, Object: "subscription_item", Subscription: subID, Created: start,
		Price: price, Quantity: 1, CurrentPeriodStart: start, CurrentPeriodEnd: end,
		Metadata: map[string]string{},
	}
}

// basilSub is a subscription of customer cus_basil with items; the
// customer is an id unless the case expands it.
func basilSub(id string, status stripe82.SubscriptionStatus, items ...*stripe82.SubscriptionItem) *stripe82.Subscription {
	for _, it := range items {
		it.Subscription = id
	}
	return &stripe82.Subscription{
		ID: id, Object: "subscription", Status: status, Created: 1756300000, StartDate: 1756300000,
		BillingCycleAnchor: 1756300000, Currency: stripe82.CurrencyUSD,
		CollectionMethod: stripe82.SubscriptionCollectionMethodChargeAutomatically,
		Customer:         &stripe82.Customer{ID: "cus_basil"},
		Metadata:         map[string]string{"user_id": "7f1c2d3e-0000-4000-8000-000000000001"},
		Items: &stripe82.SubscriptionItemList{
			ListMeta: stripe82.ListMeta{URL: "/v1/subscription_items?subscription=" + id},
			Data:     items,
		},
	}
}

// basilInvoice is a paid invoice of customer cus_basil with lines.
func basilInvoice(id string, parent *stripe82.InvoiceParent, lines ...*stripe82.InvoiceLineItem) *stripe82.Invoice {
	for _, l := range lines {
		l.Invoice = id
	}
	return &stripe82.Invoice{
		ID: id, Object: "invoice", Status: stripe82.InvoiceStatusPaid, Created: 1756300100,
		Currency: stripe82.CurrencyUSD, Customer: &stripe82.Customer{ID: "cus_basil"},
		AmountDue: 1500, AmountPaid: 1500, Parent: parent,
		Lines: &stripe82.InvoiceLineItemList{
			ListMeta: stripe82.ListMeta{URL: "/v1/invoices/" + id + "/lines"},
			Data:     lines,
		},
	}
}

// subscriptionParent is the parent of an invoice that sub generated.
func subscriptionParent(sub *stripe82.Subscription) *stripe82.InvoiceParent {
	return &stripe82.InvoiceParent{
		Type: stripe82.InvoiceParentTypeSubscriptionDetails,
		SubscriptionDetails: &stripe82.InvoiceParentSubscriptionDetails{
			Subscription: sub, Metadata: map[string]string{},
		},
	}
}

// subscriptionLine is a line billed for subscription item itemID of subID.
func subscriptionLine(id, subID, itemID string) *stripe82.InvoiceLineItem {
	return &stripe82.InvoiceLineItem{
		ID: id, Object: "line_item", Amount: 1500, Currency: stripe82.CurrencyUSD, Quantity: 1,
		Period: &stripe82.Period{Start: 1756300000, End: 1758978400},
		Parent: &stripe82.InvoiceLineItemParent{
			Type: stripe82.InvoiceLineItemParentTypeSubscriptionItemDetails,
			SubscriptionItemDetails: &stripe82.InvoiceLineItemParentSubscriptionItemDetails{
				Subscription: subID, SubscriptionItem: itemID,
			},
		},
	}
}

// invoiceItemLine is a line billed for invoice item ii, which belongs to
// subscription subID ("" for a one-off item).
func invoiceItemLine(id, ii, subID string) *stripe82.InvoiceLineItem {
	return &stripe82.InvoiceLineItem{
		ID: id, Object: "line_item", Amount: 900, Currency: stripe82.CurrencyUSD, Quantity: 1,
		Period: &stripe82.Period{Start: 1756300100, End: 1756300100},
		Parent: &stripe82.InvoiceLineItemParent{
			Type: stripe82.InvoiceLineItemParentTypeInvoiceItemDetails,
			InvoiceItemDetails: &stripe82.InvoiceLineItemParentInvoiceItemDetails{
				InvoiceItem: ii, Subscription: subID,
			},
		},
	}
}

// sentAs marshals v and replaces the expandable references at the given
// dotted paths (a number indexes a list) by their ids, as Stripe sends
// them unexpanded. It fails if a path does not hold a marshalled object:
// that would mean v82 no longer marshals references as objects.
func sentAs(t *testing.T, v any, ids ...string) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 {
		return b
	}
	var root any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	for _, path := range ids {
		keys := strings.Split(path, ".")
		parent := root
		for _, k := range keys[:len(keys)-1] {
			parent = step(parent, k)
		}
		m, _ := parent.(map[string]any)
		last := keys[len(keys)-1]
		obj, ok := m[last].(map[string]any)
		if !ok {
			t.Fatalf("%s: %T, not a marshalled object", path, m[last])
		}
		m[last] = obj["id"]
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// step goes one key (or list index) into a decoded JSON value.
func step(v any, k string) any {
	if l, ok := v.([]any); ok {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(l) {
			return nil
		}
		return l[i]
	}
	m, _ := v.(map[string]any)
	return m[k]
}
