package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

// FuzzSubscriptionPayload feeds arbitrary data.object values of a
// customer.subscription.updated event to the version-tolerant reader and
// Desired, as payload mode does. Whatever comes in: no panic; a payload
// that cannot be read fails with ErrUnreadable or ErrNoItems (the applier
// ignores the event with that reason); a row that is made says what the
// payload says, read here independently: id, status, customer,
// cancel_at_period_end, a price or plan id the payload names, and the
// period at the top level or of one of the items.
//
// Seeds: every object of testdata/stripe-events and of the stripe-mock
// corpus, and the edge cases below.
func FuzzSubscriptionPayload(f *testing.F) {
	for _, obj := range testenv.CorpusEvents(f, true, corpusDir, moreCorpusDir) {
		f.Add(obj)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `"sub_1"`,
		`{"id":"sub_1","object":"subscription","status":"active","customer":"cus_1"}`,
		`{"id":"sub_1","status":"active","customer":{"id":"cus_1","metadata":{"user_id":"u"}},"plan":{"id":"gold","interval":"month"}}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","items":{"data":[{"plan":{"id":"plan_1","interval":"year","interval_count":1}}]}}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","items":{"data":[{"price":"price_1","current_period_start":1,"current_period_end":2},{"price":{"id":"price_2","recurring":{"interval":"month","interval_count":1}},"current_period_start":3,"current_period_end":4}]}}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","current_period_end":1e3,"items":{"data":[{"price":"price_1"}]}}`,
		`{"id":"sub_1","status":"active","customer":"cus_1","metadata":{"user_id":7},"items":{"data":[{"price":"price_1"}]}}`,
		`{"id":"sub_1","object":"invoice","status":"paid","customer":"cus_1"}`,
		`{"ID":"sub_2","id":"sub_1","status":"active","customer":"cus_1","items":{"data":[{"price":"price_1"}]}}`,
	} {
		f.Add([]byte(s))
	}
	plans, err := reconcile.NewPlans(reconcile.PlanEntry{Price: "price_2", Plan: "maquina", Period: reconcile.PeriodAnnual})
	if err != nil {
		f.Fatal(err)
	}
	r := &reconcile.Resolver{Plans: plans}
	f.Fuzz(func(t *testing.T, obj []byte) {
		readOnArrival(t, r, obj)
		sub, err := r.SubscriptionFromObject(obj)
		if err != nil {
			if sub != nil || !errors.Is(err, reconcile.ErrUnreadable) {
				t.Fatalf("error %v (subscription %v) is not ErrUnreadable", err, sub != nil)
			}
			return
		}
		row, err := r.Desired(context.Background(), sub, time.Unix(1, 0), false)
		if err != nil {
			if !errors.Is(err, reconcile.ErrNoItems) {
				t.Fatalf("Desired: %v is not ErrNoItems", err)
			}
			return
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(obj))
		dec.UseNumber()
		if dec.Decode(&m) != nil || !lowercaseKeys(m) {
			return // only Stripe's own spelling of keys is compared
		}
		if row.StripeSubscriptionID != m["id"] || row.Status != m["status"] {
			t.Fatalf("row %s %s from id %v status %v", row.StripeSubscriptionID, row.Status, m["id"], m["status"])
		}
		if c := refID(m["customer"]); row.StripeCustomerID != c {
			t.Fatalf("row customer %q, payload %q", row.StripeCustomerID, c)
		}
		if b, _ := m["cancel_at_period_end"].(bool); row.CancelAtPeriodEnd != b {
			t.Fatalf("row cancel_at_period_end %v, payload %v", row.CancelAtPeriodEnd, m["cancel_at_period_end"])
		}
		named := map[string]bool{refID(m["plan"]): true}
		var ends, itemEnds []int64
		items, _ := m["items"].(map[string]any)
		data, _ := items["data"].([]any)
		for _, it := range data {
			item, _ := it.(map[string]any)
			named[refID(item["price"])], named[refID(item["plan"])] = true, true
			itemEnds = append(itemEnds, number(item["current_period_end"]))
		}
		if e := number(m["current_period_end"]); e != 0 || number(m["current_period_start"]) != 0 {
			ends = append(ends, e)
		} else {
			ends = itemEnds
		}
		if row.StripePriceID == nil || *row.StripePriceID == "" || !named[*row.StripePriceID] {
			t.Fatalf("row price %v is not one the payload names (%v)", row.StripePriceID, named)
		}
		if row.CurrentPeriodEnd != nil {
			found := false
			for _, e := range ends {
				found = found || row.CurrentPeriodEnd.Unix() == e
			}
			if !found {
				t.Fatalf("row period end %v is none of the payload's %v", row.CurrentPeriodEnd.Unix(), ends)
			}
		}
	})
}

// readOnArrival checks that the webhook handler's reading of a
// subscription event (ReadSubscriptionEvent, payload mode) names the
// subscription Envelope.SubscriptionID names, and that the object it hands
// on is exactly what reading the stored payload later gives.
func readOnArrival(t *testing.T, r *reconcile.Resolver, obj []byte) {
	body := append([]byte(`{"id":"evt_f","object":"event","type":"customer.subscription.updated","created":1,"data":{"object":`), obj...)
	env, err := reconcile.ReadEnvelope(append(body, "}}"...))
	if err != nil {
		return
	}
	id, read := r.ReadSubscriptionEvent(env)
	if want := env.SubscriptionID(); id != want {
		t.Fatalf("read on arrival: subscription %q, the stored payload names %q", id, want)
	}
	later, err := r.SubscriptionFromObject(env.Data.Object)
	switch {
	case read != nil && (err != nil || !reflect.DeepEqual(read, later)):
		t.Fatalf("read on arrival: %+v; read later: %+v (%v)", read, later, err)
	case read == nil && err == nil && later.Object == "subscription":
		t.Fatalf("a readable subscription was not handed on: %+v", later)
	}
}

// lowercaseKeys reports whether every key of v, at any depth, is ASCII
// without capitals (encoding/json matches struct fields case-insensitively).
func lowercaseKeys(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			for i := 0; i < len(k); i++ {
				if k[i] >= 0x80 || (k[i] >= 'A' && k[i] <= 'Z') {
					return false
				}
			}
			if !lowercaseKeys(e) {
				return false
			}
		}
	case []any:
		for _, e := range x {
			if !lowercaseKeys(e) {
				return false
			}
		}
	}
	return true
}

// refID reads a reference as the payload has it: an id or an object's id.
func refID(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		s, _ := x["id"].(string)
		return s
	}
	return ""
}

func number(v any) int64 {
	n, _ := v.(json.Number)
	i, _ := strconv.ParseInt(string(n), 10, 64)
	return i
}
