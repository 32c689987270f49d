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

// renderObject returns raw, an object of the given kind in the canonical
// 2023-10-16 shape, as a reader of API version version sees it. Only the
// changes that matter to subscription sync are modelled.
func renderObject(kind string, raw []byte, version string) []byte {
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
}
