package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/reconcile"
)

// FuzzDecodeEvent feeds arbitrary bytes to DecodeEvent, the parser every
// webhook body and catch-up event goes through. Whatever comes in: no
// panic; an error is ErrNotAnEvent and comes without an event; an event
// that decodes has an evt_ id of at most 255 bytes, a type, a positive
// created time and a data.object; SubscriptionIDOf never panics and returns
// at most 255 bytes, valid UTF-8 when the body was.
//
// Seeds: testdata/fuzz/FuzzDecodeEvent (real event shapes of API versions
// 2023-10-16 and basil, and the edge cases below).
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`{"id":"evt_1","type":"customer.subscription.updated","created":1,"data":{"object":{"object":"subscription","id":"sub_1"}}}`,
		`{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"object":"invoice","subscription":"sub_1"}}}`,
		`{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"object":"invoice","subscription":{"id":"sub_1"}}}}`,
		`{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"parent":{"subscription_details":{"subscription":"sub_1"}}}}}`,
		`{"id":"evt_1","object":"charge","type":"x","created":1,"data":{"object":{}}}`,
		`{"id":"evt_1","type":"x","created":-1,"data":{"object":{}}}`,
		`{"id":"evt_1","type":"x","created":1,"data":null}`,
		`{"id":"evt_1","type":"x","created":1,"data":{"object":null}}`,
		`{"id":"evt_1","type":"x","created":1,"data":{"object":[]}}`,
		`{"id":"evt_1","type":"customer.subscription.created","created":1,"data":{"object":{"object":"subscription","id":42}}}`,
		`{"id":"evt_` + strings.Repeat("é", 125) + `","type":"x","created":1,"data":{"object":{}}}`,
		`{"id":"evt_1","type":"customer.subscription.updated","created":1,"data":{"object":{"object":"subscription","id":"sub_` + strings.Repeat("é", 126) + `"}}}`,
		`{"id":"evt_1","type":"x","created":1e30,"data":{"object":{}}}`,
		`{"id":"evt_1","type":"x","created":1,"data":{"object":{"a":` + strings.Repeat("[", 10001) + `}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := reconcile.DecodeEvent(body)
		env, envErr := reconcile.ReadEnvelope(body)
		// The light reader of the webhook and apply paths agrees with the
		// full decoder on every event the full decoder accepts, spelt as
		// Stripe spells keys (a struct field matches a key in any case, a
		// map lookup does not).
		var m any
		lower := json.Unmarshal(body, &m) == nil && lowercaseKeys(m)
		if err == nil && lower && (envErr != nil || env.ID != ev.ID || env.Type != string(ev.Type) ||
			env.Created != ev.Created || env.SubscriptionID() != reconcile.SubscriptionIDOf(ev)) {
			t.Fatalf("ReadEnvelope (%+v, %v) disagrees with DecodeEvent (%s %s, subscription %q)",
				env, envErr, ev.ID, ev.Type, reconcile.SubscriptionIDOf(ev))
		}
		if envErr != nil && !errors.Is(envErr, reconcile.ErrNotAnEvent) {
			t.Fatalf("ReadEnvelope error %v is not ErrNotAnEvent", envErr)
		}
		if err != nil {
			if ev != nil {
				t.Fatalf("DecodeEvent returned an event with error %v", err)
			}
			if !errors.Is(err, reconcile.ErrNotAnEvent) {
				t.Fatalf("error %v is not ErrNotAnEvent", err)
			}
			return
		}
		switch {
		case ev == nil:
			t.Fatal("nil event without error")
		case !strings.HasPrefix(ev.ID, "evt_") || len(ev.ID) > 255:
			t.Fatalf("decoded id %q", ev.ID)
		case ev.Type == "" || len(ev.Type) > 255:
			t.Fatalf("decoded type %q", ev.Type)
		case ev.Created <= 0:
			t.Fatalf("decoded created %d", ev.Created)
		case ev.Data == nil || ev.Data.Object == nil:
			t.Fatal("decoded event without data.object")
		}
		sub := reconcile.SubscriptionIDOf(ev)
		if len(sub) > 255 {
			t.Fatalf("subscription id of %d bytes", len(sub))
		}
		if utf8.Valid(body) && !utf8.ValidString(sub) {
			t.Fatalf("subscription id %q is not valid UTF-8 although the body is", sub)
		}
		// The applier decodes the stored payload again: the same bytes
		// must give the same answer.
		again, err := reconcile.DecodeEvent(body)
		if err != nil || again.ID != ev.ID || reconcile.SubscriptionIDOf(again) != sub {
			t.Fatalf("second decode differs: %v", err)
		}
	})
}

// Fixed plan mapping of FuzzDesired.
const (
	fzPriceAnnual  = "price_mq_y"
	fzPriceMonthly = "price_mq_m"
)

// fzCustomers answers GetCustomer from fuzzed data.
type fzCustomers struct {
	cus *stripe.Customer // nil: 404
}

func (c fzCustomers) GetCustomer(_ context.Context, id string) (*stripe.Customer, error) {
	if c.cus == nil {
		return nil, &stripe.Error{HTTPStatusCode: 404, Msg: "No such customer: " + id}
	}
	cp := *c.cus
	cp.ID = id
	return &cp, nil
}

// fzInterval maps a fuzzed byte to a recurring interval, including values
// Stripe never sends.
func fzInterval(b uint8) stripe.PriceRecurringInterval {
	return []stripe.PriceRecurringInterval{"year", "month", "week", "day", "", "fortnight"}[int(b)%6]
}

// fzPrice builds the price of an item: nil, without recurring, or with the
// fuzzed id, interval and count.
func fzPrice(id string, interval uint8, count int64, shape uint8) *stripe.Price {
	switch shape % 8 {
	case 0:
		return nil
	case 1:
		return &stripe.Price{ID: id}
	}
	return &stripe.Price{ID: id, Recurring: &stripe.PriceRecurring{Interval: fzInterval(interval), IntervalCount: count}}
}

// FuzzDesired builds a stripe.Subscription from fuzzed fields (items count,
// price ids, intervals and interval counts, metadata user id and its
// length, status, customer) or, when raw decodes to one, from fuzzed JSON,
// and checks Resolver.Desired: no panic; billing_period is monthly, annual
// or other; plan_id is set iff the chosen price is mapped (and then the
// mapping gives the period, else the interval does); the user id is never
// longer than 500 bytes and comes from the subscription's metadata when a
// usable one is there; ErrNoItems iff no item carries a price.
func FuzzDesired(f *testing.F) {
	f.Add([]byte(nil), "sub_1", uint8(1), fzPriceAnnual, uint8(0), int64(1), uint8(2), "", uint8(0), int64(0), uint8(2), "u1", uint16(0), "active", "cus_1", "", false, uint8(0))
	f.Add([]byte(nil), "sub_1", uint8(2), "price_addon", uint8(1), int64(1), uint8(2), fzPriceMonthly, uint8(0), int64(1), uint8(2), "", uint16(0), "past_due", "cus_1", "u2", false, uint8(0))
	f.Add([]byte(nil), "sub_1", uint8(1), "price_x", uint8(1), int64(3), uint8(2), "", uint8(0), int64(0), uint8(2), "x", uint16(10240), "active", "cus_1", "", false, uint8(1))
	f.Add([]byte(nil), "sub_1", uint8(0), "", uint8(0), int64(0), uint8(0), "", uint8(0), int64(0), uint8(0), "u", uint16(0), "canceled", "", "", true, uint8(2))
	f.Add([]byte(nil), "sub_1", uint8(3), "price_x", uint8(0), int64(1), uint8(0), fzPriceAnnual, uint8(0), int64(2), uint8(1), "", uint16(501), "incomplete", "cus_1", "u3", false, uint8(3))
	f.Add([]byte(`{"id":"sub_j","object":"subscription","status":"active","customer":"cus_j","metadata":{"user_id":"uj"},`+
		`"items":{"data":[{"price":{"id":"price_mq_y","recurring":{"interval":"month","interval_count":1}}}]}}`),
		"", uint8(0), "", uint8(0), int64(0), uint8(0), "", uint8(0), int64(0), uint8(0), "", uint16(0), "", "", "", false, uint8(0))
	f.Add([]byte(`{"id":"sub_j","items":{"data":[null,{"price":null},{"price":{"id":"price_x"}}]}}`),
		"", uint8(0), "", uint8(0), int64(0), uint8(0), "", uint8(0), int64(0), uint8(0), "", uint16(0), "", "", "", false, uint8(0))
	f.Add([]byte(`{"id":"sub_j","customer":{"id":"cus_e","metadata":{"user_id":"from-expanded"}},"items":{"data":[{"price":{"id":"p"}}]}}`),
		"", uint8(0), "", uint8(0), int64(0), uint8(0), "", uint8(0), int64(0), uint8(0), "", uint16(0), "", "", "", false, uint8(0))

	plans, err := reconcile.NewPlans(
		reconcile.PlanEntry{Price: fzPriceAnnual, Plan: "maquina", Period: reconcile.PeriodAnnual},
		reconcile.PlanEntry{Price: fzPriceMonthly, Plan: "maquina", Period: reconcile.PeriodMonthly},
	)
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)

	f.Fuzz(func(t *testing.T, raw []byte, subID string, nItems uint8,
		priceA string, intervalA uint8, countA int64, shapeA uint8,
		priceB string, intervalB uint8, countB int64, shapeB uint8,
		userID string, userLen uint16, status, customer, customerUser string, known bool, customerMode uint8) {
		if userLen > 0 && userID != "" {
			userID = strings.Repeat(userID, int(userLen)/len(userID)+1)[:userLen]
		}
		var sub *stripe.Subscription
		if len(raw) > 0 {
			var s stripe.Subscription
			if json.Unmarshal(raw, &s) == nil {
				sub = &s
			}
		}
		if sub == nil {
			sub = &stripe.Subscription{
				ID: subID, Status: stripe.SubscriptionStatus(status), Metadata: map[string]string{"user_id": userID},
				CurrentPeriodStart: countA, CurrentPeriodEnd: countB, CancelAtPeriodEnd: known,
			}
			if customer != "" {
				sub.Customer = &stripe.Customer{ID: customer}
			}
			if nItems%5 != 4 { // 4: no item list at all
				sub.Items = &stripe.SubscriptionItemList{}
				for i := range int(nItems % 5) {
					switch i % 3 {
					case 0:
						sub.Items.Data = append(sub.Items.Data, &stripe.SubscriptionItem{Price: fzPrice(priceA, intervalA, countA, shapeA)})
					case 1:
						sub.Items.Data = append(sub.Items.Data, &stripe.SubscriptionItem{Price: fzPrice(priceB, intervalB, countB, shapeB)})
					default:
						sub.Items.Data = append(sub.Items.Data, nil)
					}
				}
			}
		}
		var cus fzCustomers
		switch customerMode % 3 {
		case 1:
			cus.cus = &stripe.Customer{Metadata: map[string]string{"user_id": customerUser}}
		case 2:
			cus.cus = &stripe.Customer{Deleted: true, Metadata: map[string]string{"user_id": customerUser}}
		}
		r := &reconcile.Resolver{Plans: plans, Customers: cus}

		row, err := r.Desired(context.Background(), sub, at, known)

		var priced []*stripe.SubscriptionItem
		if sub.Items != nil {
			for _, it := range sub.Items.Data {
				if it != nil && it.Price != nil {
					priced = append(priced, it)
				}
			}
		}
		if sub.ID == "" {
			if err == nil || errors.Is(err, reconcile.ErrNoItems) {
				t.Fatalf("subscription without id: err = %v", err)
			}
			return
		}
		if noItems := errors.Is(err, reconcile.ErrNoItems); noItems != (len(priced) == 0) {
			t.Fatalf("ErrNoItems = %v with %d priced items (err %v)", noItems, len(priced), err)
		}
		if err != nil && !errors.Is(err, reconcile.ErrNoItems) {
			// The only other failure is the customer lookup.
			if cus.cus != nil || !strings.Contains(err.Error(), "customer") {
				t.Fatalf("unexpected error %v", err)
			}
		}
		if len(priced) == 0 {
			return
		}
		// The chosen price: the first mapped one, else the first item's.
		chosen := priced[0].Price
		for _, it := range priced {
			if _, ok := plans.Lookup(it.Price.ID); ok {
				chosen = it.Price
				break
			}
		}
		switch row.BillingPeriod {
		case reconcile.PeriodMonthly, reconcile.PeriodAnnual, reconcile.PeriodOther:
		default:
			t.Fatalf("billing_period %q", row.BillingPeriod)
		}
		if row.StripePriceID == nil || *row.StripePriceID != chosen.ID {
			t.Fatalf("price %v, want %q", row.StripePriceID, chosen.ID)
		}
		if pl, mapped := plans.Lookup(chosen.ID); mapped {
			if row.PlanID == nil || *row.PlanID != pl.ID || row.BillingPeriod != pl.Period {
				t.Fatalf("mapped price %s: plan %v period %s, want %s/%s", chosen.ID, row.PlanID, row.BillingPeriod, pl.ID, pl.Period)
			}
		} else if row.PlanID != nil || row.BillingPeriod != reconcile.PeriodOf(chosen) {
			t.Fatalf("unmapped price %s: plan %v period %s, want nil/%s", chosen.ID, row.PlanID, row.BillingPeriod, reconcile.PeriodOf(chosen))
		}
		if row.UserID != nil && len(*row.UserID) > 500 {
			t.Fatalf("user id of %d bytes", len(*row.UserID))
		}
		if meta := sub.Metadata["user_id"]; meta != "" && len(meta) <= 500 {
			if row.UserID == nil || *row.UserID != meta {
				t.Fatalf("user id %v, want the subscription's %q", row.UserID, meta)
			}
		}
		if row.UserID != nil && *row.UserID == "" {
			t.Fatal("user id set to the empty string")
		}
		if row.StripeSubscriptionID != sub.ID || row.Status != string(sub.Status) || !row.StripeStateAt.Equal(at.Truncate(time.Microsecond)) {
			t.Fatalf("row %+v does not carry the subscription's id, status and state time", row)
		}
	})
}

// Regression (found by FuzzDecodeEvent): a subscription id clipped to 255
// bytes in the middle of a character made the stored text invalid UTF-8,
// which Postgres refuses (22021), so the whole catch-up batch failed.
func TestSubscriptionIDOfClipsOnACharacterBoundary(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"customer.subscription.updated","created":1,` +
		`"data":{"object":{"object":"subscription","id":"sub_` + strings.Repeat("é", 126) + `"}}}`)
	ev, err := reconcile.DecodeEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := reconcile.SubscriptionIDOf(ev); len(got) > 255 || !utf8.ValidString(got) || !strings.HasPrefix(got, "sub_é") {
		t.Fatalf("SubscriptionIDOf = %q (%d bytes)", got, len(got))
	}
}

// Regression (found by FuzzDesired): when the first item had no price, a
// subscription whose later item had one was refused with ErrNoItems.
func TestDesiredSkipsItemsWithoutPrice(t *testing.T) {
	sub := &stripe.Subscription{ID: "sub_1", Status: "active", Metadata: map[string]string{"user_id": "u1"},
		Items: &stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{nil, {}, {Price: &stripe.Price{ID: "price_x",
			Recurring: &stripe.PriceRecurring{Interval: "year", IntervalCount: 1}}}}}}
	row, err := (&reconcile.Resolver{}).Desired(context.Background(), sub, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	if *row.StripePriceID != "price_x" || row.BillingPeriod != reconcile.PeriodAnnual || row.PlanID != nil {
		t.Fatalf("row = price %v plan %v period %s", *row.StripePriceID, row.PlanID, row.BillingPeriod)
	}
}
