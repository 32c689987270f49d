package stripefake

import (
	"fmt"

	"github.com/stripe/stripe-go/v76"
)

// SubscriptionState is a subscription stored as is, under the ids it has
// in real Stripe data: for tests that replay recorded events and need the
// API to answer with the state those events describe.
type SubscriptionState struct {
	ID       string // sub_…; must be new to the fake
	Customer string // created (without events) when the fake lacks it
	// Price is the price id (a plan id for data from before Prices),
	// created with Interval and IntervalCount when the fake lacks it.
	Price         string
	Interval      string // day, week, month or year
	IntervalCount int64  // 1 when zero
	Status        string
	Created       int64 // CurrentPeriodStart when zero
	// CurrentPeriodStart and CurrentPeriodEnd are the billing period.
	CurrentPeriodStart, CurrentPeriodEnd int64
	CancelAtPeriodEnd                    bool
	CanceledAt                           int64 // 0 = null
	Metadata                             map[string]string
}

// PutSubscription stores st without emitting any event, as if it predated
// the events the fake keeps; the customer and price it names are created
// when missing, also silently.
func (s *Server) PutSubscription(st SubscriptionState) (*stripe.Subscription, error) {
	if st.ID == "" || st.Customer == "" || st.Price == "" || st.Status == "" {
		return nil, fmt.Errorf("put subscription: id, customer, price and status are required: %w", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs.get(st.ID); ok {
		return nil, fmt.Errorf("put subscription %s: already exists: %w", st.ID, ErrInvalid)
	}
	pr, ok := s.prices.get(st.Price)
	if !ok {
		if st.Interval == "" {
			return nil, fmt.Errorf("put subscription %s: price %s needs an interval: %w", st.ID, st.Price, ErrInvalid)
		}
		pr = s.putPriceLocked(st.Price, st.Interval, max(st.IntervalCount, 1))
	}
	c, ok := s.customers.get(st.Customer)
	if !ok {
		c = s.newCustomerLocked(CustomerParams{})
		c.ID = st.Customer
		s.customers.insert(c)
	}
	created := st.Created
	if created == 0 {
		created = st.CurrentPeriodStart
	}
	id := st.ID
	sub := &subscription{
		ID: id, Object: "subscription", BillingCycleAnchor: st.CurrentPeriodStart,
		CancelAtPeriodEnd: st.CancelAtPeriodEnd, CollectionMethod: "charge_automatically",
		Created: created, Currency: pr.Currency, CurrentPeriodStart: st.CurrentPeriodStart,
		CurrentPeriodEnd: st.CurrentPeriodEnd, Customer: c.ID, DefaultTaxRates: []any{},
		Metadata: mergeMetadata(nil, st.Metadata), PaymentSettings: paymentSettings{SaveDefaultPaymentMethod: "off"},
		StartDate: created, Status: st.Status,
		TrialSettings: trialSettings{EndBehavior: trialEndBehavior{MissingPaymentMethod: "create_invoice"}},
	}
	if st.CanceledAt != 0 {
		sub.CanceledAt = int64Ptr(st.CanceledAt)
		if st.Status == "canceled" {
			sub.EndedAt = int64Ptr(st.CanceledAt)
		}
	}
	sub.Items = itemList{
		Object: "list", Data: []*subItem{s.newItemLocked(id, pr, created)}, TotalCount: 1,
		URL: "/v1/subscription_items?subscription=" + id,
	}
	s.subs.insert(sub)
	s.custSubs[c.ID] = append(s.custSubs[c.ID], id)
	return decodeAs[stripe.Subscription](sub.json())
}

// putPriceLocked stores a recurring price under a given id, silently.
func (s *Server) putPriceLocked(id, interval string, count int64) *price {
	pr := &price{
		ID: id, Object: "price", Active: true, BillingScheme: "per_unit",
		Created: s.nowLocked(), Currency: "usd", Metadata: map[string]string{},
		Product: s.createProductLocked(id, nil).ID, TaxBehavior: "unspecified", Type: "recurring",
		Recurring:         &recurring{Interval: interval, IntervalCount: count, UsageType: "licensed"},
		UnitAmountDecimal: "0",
	}
	pr.legacyPlan = newPlan(pr)
	s.prices.insert(pr)
	return pr
}
