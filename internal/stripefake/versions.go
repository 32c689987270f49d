package stripefake

import (
	"encoding/json"
)

// basilVersion is the first API version ("2025-03-31.basil") in which
// subscriptions lost current_period_start/end (moved to their items) and
// invoices lost subscription (moved to parent.subscription_details).
const basilVersion = "2025-03-31"

// isBasilOrLater tells whether an API version renders objects in the basil
// shape.
func isBasilOrLater(version string) bool {
	if len(version) < len(basilVersion) {
		return false
	}
	return version[:len(basilVersion)] >= basilVersion
}

// prePricesVersion bounds the versions rendered in the shape of events
// recorded before Prices existed (testdata/stripe-events has 2018-11-08
// ones): subscription items carry only their plan, and the subscription
// its one plan at the top level (removed in 2020-08-27). The fake ties
// that shape to the version; Stripe tied the price field to its launch.
const prePricesVersion = "2019-01-01"

// isPrePrices tells whether an API version renders the pre-Prices shape.
func isPrePrices(version string) bool {
	return version != "" && version < prePricesVersion
}

// renderObject returns raw, an object of the given kind in the canonical
// 2023-10-16 shape, as a reader of API version version sees it. Only the
// changes that matter to subscription sync are modelled.
func renderObject(kind string, raw []byte, version string) []byte {
	if isPrePrices(version) && kind == "subscription" {
		return toPrePricesSubscription(raw)
	}
	if !isBasilOrLater(version) {
		return raw
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	switch kind {
	case "subscription":
		toBasilSubscription(m)
	case "invoice":
		toBasilInvoice(m)
	default:
		return raw
	}
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}

func toBasilSubscription(m map[string]json.RawMessage) {
	start, end := m["current_period_start"], m["current_period_end"]
	delete(m, "current_period_start")
	delete(m, "current_period_end")
	var items map[string]json.RawMessage
	if json.Unmarshal(m["items"], &items) != nil {
		return
	}
	var data []map[string]json.RawMessage
	if json.Unmarshal(items["data"], &data) != nil {
		return
	}
	for _, it := range data {
		it["current_period_start"] = start
		it["current_period_end"] = end
	}
	items["data"], _ = json.Marshal(data)
	m["items"], _ = json.Marshal(items)
}

func toBasilInvoice(m map[string]json.RawMessage) {
	sub := m["subscription"]
	details := m["subscription_details"]
	delete(m, "subscription")
	delete(m, "subscription_details")
	if len(sub) == 0 || string(sub) == "null" {
		m["parent"] = json.RawMessage("null")
		return
	}
	var md json.RawMessage = []byte("{}")
	var d map[string]json.RawMessage
	if json.Unmarshal(details, &d) == nil && d["metadata"] != nil {
		md = d["metadata"]
	}
	parent := map[string]any{
		"type":          "subscription_details",
		"quote_details": nil,
		"subscription_details": map[string]any{
			"metadata":     md,
			"subscription": sub,
		},
	}
	m["parent"], _ = json.Marshal(parent)
	toBasilLines(m)
}

// toBasilLines moves each invoice line's subscription and
// subscription_item under parent.subscription_item_details.
func toBasilLines(m map[string]json.RawMessage) {
	var lines map[string]json.RawMessage
	var data []map[string]json.RawMessage
	if json.Unmarshal(m["lines"], &lines) != nil || json.Unmarshal(lines["data"], &data) != nil {
		return
	}
	for _, l := range data {
		sub, item := l["subscription"], l["subscription_item"]
		delete(l, "subscription")
		delete(l, "subscription_item")
		if len(sub) == 0 || string(sub) == "null" {
			l["parent"] = json.RawMessage("null")
			continue
		}
		l["parent"], _ = json.Marshal(map[string]any{
			"type":                 "subscription_item_details",
			"invoice_item_details": nil,
			"subscription_item_details": map[string]any{
				"invoice_item": nil, "proration": l["proration"], "proration_details": l["proration_details"],
				"subscription": sub, "subscription_item": item,
			},
		})
	}
	lines["data"], _ = json.Marshal(data)
	m["lines"], _ = json.Marshal(lines)
}

// toPrePricesSubscription drops each item's price and puts the first
// item's plan at the top level.
func toPrePricesSubscription(raw []byte) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	var items map[string]json.RawMessage
	var data []map[string]json.RawMessage
	if json.Unmarshal(m["items"], &items) != nil || json.Unmarshal(items["data"], &data) != nil {
		return raw
	}
	m["plan"] = json.RawMessage("null")
	for i, it := range data {
		if i == 0 && it["plan"] != nil {
			m["plan"] = it["plan"]
		}
		delete(it, "price")
	}
	items["data"], _ = json.Marshal(data)
	m["items"], _ = json.Marshal(items)
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}
