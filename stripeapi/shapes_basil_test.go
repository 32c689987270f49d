package stripeapi_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"testing"

	stripe "github.com/stripe/stripe-go/v76"
	stripe82 "github.com/stripe/stripe-go/v82"

	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// basilVersion is the API version stripe-go v82.5.1 pins and describes.
const basilVersion = "2025-08-27.basil"

// t0 is the start of the basil-era periods below (2025-08-27).
const t0 = 1756300000

const day = 86400

// basilSubCase is a subscription built with stripe-go v82's types.
type basilSubCase struct {
	name    string
	sub     *stripe82.Subscription
	ids     []string // references sent as ids (see sentAs)
	planned string   // a price mapped to a plan; "" for none
	period  int      // the item whose period the reader must return
}

func basilSubCases() []basilSubCase {
	one := func(id string, status stripe82.SubscriptionStatus, interval stripe82.PriceRecurringInterval, count int64) *stripe82.Subscription {
		return basilSub(id, status, basilItem("si_"+id, id, basilPrice("price_"+id, interval, count), t0, t0+30*day))
	}
	// Three items of different periods: the mapped item (1) is neither
	// the first nor the one that ends last (2).
	several := func() *stripe82.Subscription {
		return basilSub("sub_basil_items", stripe82.SubscriptionStatusActive,
			basilItem("si_seats", "", basilPrice("price_seats", stripe82.PriceRecurringIntervalMonth, 1), t0+10*day, t0+40*day),
			basilItem("si_plan", "", basilPrice("price_plan", stripe82.PriceRecurringIntervalMonth, 3), t0, t0+90*day),
			basilItem("si_storage", "", basilPrice("price_storage", stripe82.PriceRecurringIntervalYear, 1), t0+20*day, t0+385*day),
		)
	}
	expanded := one("sub_basil_expanded", stripe82.SubscriptionStatusActive, stripe82.PriceRecurringIntervalYear, 1)
	expanded.Customer = &stripe82.Customer{
		ID: "cus_basil", Object: "customer", Created: t0 - day, Email: "basil@example.com",
		Metadata: map[string]string{"user_id": "7f1c2d3e-0000-4000-8000-000000000002"},
	}
	expanded.Metadata = map[string]string{}
	atPeriodEnd := one("sub_basil_at_period_end", stripe82.SubscriptionStatusActive, stripe82.PriceRecurringIntervalMonth, 1)
	atPeriodEnd.CancelAtPeriodEnd, atPeriodEnd.CancelAt, atPeriodEnd.CanceledAt = true, t0+30*day, t0+3*day
	atPeriodEnd.CancellationDetails = &stripe82.SubscriptionCancellationDetails{
		Reason: stripe82.SubscriptionCancellationDetailsReasonCancellationRequested,
	}
	canceled := one("sub_basil_canceled", stripe82.SubscriptionStatusCanceled, stripe82.PriceRecurringIntervalMonth, 1)
	canceled.CanceledAt, canceled.EndedAt = t0+5*day, t0+5*day
	canceled.CancellationDetails = &stripe82.SubscriptionCancellationDetails{
		Reason: stripe82.SubscriptionCancellationDetailsReasonCancellationRequested,
	}
	trialing := one("sub_basil_trialing", stripe82.SubscriptionStatusTrialing, stripe82.PriceRecurringIntervalMonth, 1)
	trialing.TrialStart, trialing.TrialEnd = t0, t0+14*day

	cases := []basilSubCase{
		{name: "one item", sub: one("sub_basil_one", stripe82.SubscriptionStatusActive, stripe82.PriceRecurringIntervalMonth, 1), ids: []string{"customer"}},
		{name: "several items, the mapped price's period", sub: several(), ids: []string{"customer"}, planned: "price_plan", period: 1},
		{name: "several items, none mapped: the first priced item's period", sub: several(), ids: []string{"customer"}},
		{name: "expanded customer", sub: expanded},
		{name: "cancel at period end", sub: atPeriodEnd, ids: []string{"customer"}},
		{name: "canceled", sub: canceled, ids: []string{"customer"}},
		{name: "trialing", sub: trialing, ids: []string{"customer"}},
	}
	for _, s := range []stripe82.SubscriptionStatus{
		stripe82.SubscriptionStatusPastDue, stripe82.SubscriptionStatusPaused, stripe82.SubscriptionStatusIncomplete,
		stripe82.SubscriptionStatusIncompleteExpired, stripe82.SubscriptionStatusUnpaid,
	} {
		sub := one("sub_basil_"+string(s), s, stripe82.PriceRecurringIntervalWeek, 2)
		cases = append(cases, basilSubCase{name: string(s), sub: sub, ids: []string{"customer"}})
	}
	return cases
}

// plannedFunc says only price id is mapped to a plan; nil when id is "".
func plannedFunc(id string) func(string) bool {
	if id == "" {
		return nil
	}
	return func(p string) bool { return p == id }
}

// readFields is what a row of user_subscriptions is made of.
type readFields struct {
	ID, Status, Customer          string
	CustomerMetadata, Metadata    map[string]string
	Created                       int64
	Livemode, CancelAtPeriodEnd   bool
	CancelAt, CanceledAt, EndedAt int64
	PeriodStart, PeriodEnd        int64
	Items                         []itemFields
}

// itemFields is what is read of one item: its price and recurring interval.
type itemFields struct {
	ID, Price, Interval string
	IntervalCount       int64
}

// want is what c's v82 object says.
func (c basilSubCase) want() readFields {
	s := c.sub
	p := s.Items.Data[c.period]
	r := readFields{
		ID: s.ID, Status: string(s.Status), Customer: s.Customer.ID, Metadata: s.Metadata,
		Created: s.Created, Livemode: s.Livemode, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		CancelAt: s.CancelAt, CanceledAt: s.CanceledAt, EndedAt: s.EndedAt,
		PeriodStart: p.CurrentPeriodStart, PeriodEnd: p.CurrentPeriodEnd,
	}
	if !slices.Contains(c.ids, "customer") {
		r.CustomerMetadata = s.Customer.Metadata
	}
	for _, it := range s.Items.Data {
		r.Items = append(r.Items, itemFields{it.ID, it.Price.ID, string(it.Price.Recurring.Interval), it.Price.Recurring.IntervalCount})
	}
	return r
}

// read is what the reader made of a subscription.
func read(s *stripe.Subscription) readFields {
	r := readFields{
		ID: s.ID, Status: string(s.Status), Metadata: s.Metadata,
		Created: s.Created, Livemode: s.Livemode, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		CancelAt: s.CancelAt, CanceledAt: s.CanceledAt, EndedAt: s.EndedAt,
		PeriodStart: s.CurrentPeriodStart, PeriodEnd: s.CurrentPeriodEnd,
	}
	if s.Customer != nil {
		r.Customer, r.CustomerMetadata = s.Customer.ID, s.Customer.Metadata
	}
	for _, it := range s.Items.Data {
		f := itemFields{ID: it.ID}
		if it.Price != nil {
			f.Price = it.Price.ID
			if it.Price.Recurring != nil {
				f.Interval, f.IntervalCount = string(it.Price.Recurring.Interval), it.Price.Recurring.IntervalCount
			}
		}
		r.Items = append(r.Items, f)
	}
	return r
}

// TestReaderAgainstStripeGoV82 checks the version-tolerant reader against
// a second description of the basil shapes from Stripe, independent of
// the recorded events and of stripe-mock: stripe-go v82's types. Each
// subscription is built with them, rendered as Stripe sends it, and must
// read back as exactly what the v82 object says: id, status, customer
// (and its metadata only when expanded), metadata, cancel fields, the
// price and recurring interval of every item, and the period of the plan
// item (the first whose price is mapped, else the first with a price: the
// item the row takes its price from).
func TestReaderAgainstStripeGoV82(t *testing.T) {
	t.Parallel()
	if stripe82.APIVersion != basilVersion {
		t.Fatalf("stripe-go v82 pins %s, want %s", stripe82.APIVersion, basilVersion)
	}
	for _, c := range basilSubCases() {
		t.Run(c.name, func(t *testing.T) {
			raw := sentAs(t, c.sub, c.ids...)
			basilShaped(t, raw)
			got, err := stripeapi.DecodeSubscription(raw, plannedFunc(c.planned))
			if err != nil {
				t.Fatal(err)
			}
			if have, want := read(got), c.want(); !reflect.DeepEqual(have, want) {
				t.Fatalf("read  %+v\nwant  %+v\nfrom %s", have, want, raw)
			}
		})
	}
}

// basilShaped fails unless raw has the basil shape this test is about:
// the period only on the items.
func basilShaped(t *testing.T, raw []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	_, start := m["current_period_start"]
	_, end := m["current_period_end"]
	items, _ := step(step(m, "items"), "data").([]any)
	if start || end || len(items) == 0 {
		t.Fatalf("not a basil subscription (top-level period or no items): %s", raw)
	}
	for _, it := range items {
		if _, ok := it.(map[string]any)["current_period_end"]; !ok {
			t.Fatalf("an item has no current_period_end: %s", raw)
		}
	}
}

// basilInvoiceCase is an invoice built with stripe-go v82's types.
type basilInvoiceCase struct {
	name string
	inv  *stripe82.Invoice
	ids  []string // references sent as ids (see sentAs)
	want string   // the subscription it names; "" for none
}

func basilInvoiceCases() []basilInvoiceCase {
	sub := basilSubCases()[0].sub
	oneOff := invoiceItemLine("il_oneoff", "ii_oneoff", "")
	quoted := &stripe82.InvoiceParent{
		Type:         stripe82.InvoiceParentTypeQuoteDetails,
		QuoteDetails: &stripe82.InvoiceParentQuoteDetails{Quote: "qt_basil"},
	}
	lineSub := &stripe82.InvoiceLineItem{ID: "il_sub", Object: "line_item", Amount: 1500,
		Currency: stripe82.CurrencyUSD, Subscription: &stripe82.Subscription{ID: sub.ID}}
	return []basilInvoiceCase{
		{
			name: "parent names the subscription by id",
			inv:  basilInvoice("in_basil_parent_id", subscriptionParent(&stripe82.Subscription{ID: sub.ID}), subscriptionLine("il_1", sub.ID, "si_1")),
			ids:  []string{"customer", "parent.subscription_details.subscription"}, want: sub.ID,
		},
		{
			name: "parent names the subscription expanded",
			inv:  basilInvoice("in_basil_parent_obj", subscriptionParent(sub), subscriptionLine("il_2", sub.ID, "si_1")),
			ids:  []string{"customer"}, want: sub.ID,
		},
		{
			name: "only a subscription item line's parent names it",
			inv:  basilInvoice("in_basil_line", nil, invoiceItemLine("il_3", "ii_3", ""), subscriptionLine("il_4", sub.ID, "si_1")),
			ids:  []string{"customer"}, want: sub.ID,
		},
		{
			name: "only an invoice item line's parent names it",
			inv:  basilInvoice("in_basil_ii_line", nil, invoiceItemLine("il_5", "ii_5", sub.ID)),
			ids:  []string{"customer"}, want: sub.ID,
		},
		{
			name: "only a line's subscription names it",
			inv:  basilInvoice("in_basil_line_sub", nil, lineSub),
			ids:  []string{"customer", "lines.data.0.subscription"}, want: sub.ID,
		},
		{name: "one-off invoice", inv: basilInvoice("in_basil_oneoff", nil, oneOff), ids: []string{"customer"}},
		{name: "invoice of a quote", inv: basilInvoice("in_basil_quote", quoted, invoiceItemLine("il_6", "ii_6", "")), ids: []string{"customer"}},
	}
}

// TestInvoiceReaderAgainstStripeGoV82 checks InvoiceSubscriptionID on
// basil invoices built with stripe-go v82's types: the subscription is
// found under parent.subscription_details (an id or expanded), else in a
// line, and a one-off invoice names none.
func TestInvoiceReaderAgainstStripeGoV82(t *testing.T) {
	t.Parallel()
	for _, c := range basilInvoiceCases() {
		t.Run(c.name, func(t *testing.T) {
			raw := sentAs(t, c.inv, c.ids...)
			inv := asMap(t, raw)
			if _, ok := inv["subscription"]; ok {
				t.Fatalf("not a basil invoice (top-level subscription): %s", raw)
			}
			if got := stripeapi.InvoiceSubscriptionID(inv); got != c.want {
				t.Fatalf("InvoiceSubscriptionID = %q, want %q\nfrom %s", got, c.want, raw)
			}
		})
	}
}

// TestBasilEventsOfStripeGoV82 wraps each object above in a stripe-go v82
// event of API version 2025-08-27.basil, of each handled type that carries
// it, and checks that the daemon's event reader finds its subscription,
// and, for subscription events, reads the object as above. The handled
// types must all be event types v82 knows.
func TestBasilEventsOfStripeGoV82(t *testing.T) {
	t.Parallel()
	known := []stripe82.EventType{
		stripe82.EventTypeCustomerSubscriptionCreated, stripe82.EventTypeCustomerSubscriptionUpdated,
		stripe82.EventTypeCustomerSubscriptionDeleted, stripe82.EventTypeCustomerSubscriptionPaused,
		stripe82.EventTypeCustomerSubscriptionResumed, stripe82.EventTypeCustomerSubscriptionTrialWillEnd,
		stripe82.EventTypeCustomerSubscriptionPendingUpdateApplied, stripe82.EventTypeCustomerSubscriptionPendingUpdateExpired,
		stripe82.EventTypeInvoicePaymentSucceeded, stripe82.EventTypeInvoicePaid, stripe82.EventTypeInvoicePaymentFailed,
	}
	n := 0
	event := func(t *testing.T, typ string, raw []byte) *stripe.Event {
		t.Helper()
		n++
		body, err := json.Marshal(stripe82.Event{
			ID: "evt_basil_" + strconv.Itoa(n), Object: "event", APIVersion: basilVersion,
			Created: t0 + int64(n), Type: stripe82.EventType(typ), PendingWebhooks: 1,
			Request: &stripe82.EventRequest{ID: "req_basil"}, Data: &stripe82.EventData{Raw: raw},
		})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := reconcile.DecodeEvent(body)
		if err != nil {
			t.Fatalf("%s: %v\n%s", typ, err, body)
		}
		return ev
	}
	for _, typ := range reconcile.HandledTypes {
		if !slices.Contains(known, stripe82.EventType(typ)) {
			t.Errorf("handled type %s is not a stripe-go v82 event type", typ)
		}
		if reconcile.IsInvoiceEvent(typ) {
			for _, c := range basilInvoiceCases() {
				ev := event(t, typ, sentAs(t, c.inv, c.ids...))
				if got := reconcile.SubscriptionIDOf(ev); got != c.want {
					t.Errorf("%s, %s: SubscriptionIDOf = %q, want %q", typ, c.name, got, c.want)
				}
			}
			continue
		}
		for _, c := range basilSubCases() {
			ev := event(t, typ, sentAs(t, c.sub, c.ids...))
			if got := reconcile.SubscriptionIDOf(ev); got != c.sub.ID {
				t.Errorf("%s, %s: SubscriptionIDOf = %q, want %q", typ, c.name, got, c.sub.ID)
			}
			got, err := stripeapi.DecodeSubscription(ev.Data.Raw, plannedFunc(c.planned))
			if err != nil {
				t.Fatalf("%s, %s: %v", typ, c.name, err)
			}
			if have, want := read(got), c.want(); !reflect.DeepEqual(have, want) {
				t.Errorf("%s, %s: read %+v\nwant %+v", typ, c.name, have, want)
			}
		}
	}
}
