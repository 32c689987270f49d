package stripefake

import (
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// SubscriptionParams describes a subscription to create.
type SubscriptionParams struct {
	// Customer is the id of a live customer (required).
	Customer string
	// Price is the id of a recurring price, the single item (required).
	Price string
	// Metadata is the subscription's metadata (user_id and the like).
	Metadata map[string]string
	// TrialPeriodDays > 0 starts the subscription trialing, with a zero
	// first invoice.
	TrialPeriodDays int64
	// CancelAtPeriodEnd creates it already set to cancel at period end.
	CancelAtPeriodEnd bool
	// DefaultIncomplete leaves the subscription incomplete with its first
	// invoice open, like payment_behavior=default_incomplete; Renew pays it.
	DefaultIncomplete bool
}

// CreateSubscription creates a subscription on one price and its first
// invoice, emitting customer.subscription.created then (unless
// DefaultIncomplete) invoice.paid and invoice.payment_succeeded.
func (s *Server) CreateSubscription(p SubscriptionParams) (*stripe.Subscription, error) {
	s.mu.Lock()
	sub, err := s.createSubLocked(p, reqInfo{})
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("create subscription: %w", err)
	}
	return subToStripe(sub), nil
}

func (s *Server) createSubLocked(p SubscriptionParams, rq reqInfo) (*subscription, error) {
	if p.Customer == "" {
		return nil, missingParam("customer")
	}
	c, ok := s.customers.get(p.Customer)
	if !ok || c.deleted {
		return nil, missingRef("customer", p.Customer, "customer")
	}
	pr, err := s.recurringPriceLocked(p.Price)
	if err != nil {
		return nil, err
	}
	if p.TrialPeriodDays < 0 || p.TrialPeriodDays > 730 {
		return nil, invalid("trial_period_days", "", "trial_period_days must be between 0 and 730.")
	}
	now := s.nowLocked()
	sub := s.newSubLocked(c, pr, now, p.Metadata)
	switch {
	case p.TrialPeriodDays > 0:
		sub.Status = "trialing"
		sub.TrialStart = &now
		sub.TrialEnd = int64Ptr(now + p.TrialPeriodDays*86400)
		sub.CurrentPeriodEnd = *sub.TrialEnd
		sub.BillingCycleAnchor = *sub.TrialEnd
	case p.DefaultIncomplete:
		sub.Status = "incomplete"
	}
	if p.CancelAtPeriodEnd {
		setCancelAtPeriodEnd(sub, true, now)
	}
	amount := pr.UnitAmount
	if sub.Status == "trialing" {
		amount = 0
	}
	inv := s.newInvoiceLocked(sub, "subscription_create", amount, sub.Status != "incomplete")
	sub.LatestInvoice = &inv.ID
	s.subs.insert(sub)
	s.custSubs[c.ID] = append(s.custSubs[c.ID], sub.ID)
	s.emitLocked("customer.subscription.created", "subscription", sub.json(), nil, rq)
	if inv.Paid {
		s.emitInvoiceLocked(inv, rq, "invoice.paid", "invoice.payment_succeeded")
	}
	return sub, nil
}

// newSubLocked builds an active subscription of customer c on price pr
// starting at start, with one item; it is not stored yet.
func (s *Server) newSubLocked(c *customer, pr *price, start int64, metadata map[string]string) *subscription {
	id := s.newIDLocked("sub_")
	sub := &subscription{
		ID: id, Object: "subscription", BillingCycleAnchor: start, CollectionMethod: "charge_automatically",
		Created: start, Currency: pr.Currency, CurrentPeriodStart: start,
		CurrentPeriodEnd: addInterval(start, pr.Recurring), Customer: c.ID, DefaultTaxRates: []any{},
		Metadata: mergeMetadata(nil, metadata), PaymentSettings: paymentSettings{SaveDefaultPaymentMethod: "off"},
		StartDate: start, Status: "active",
		TrialSettings: trialSettings{EndBehavior: trialEndBehavior{MissingPaymentMethod: "create_invoice"}},
	}
	sub.Items = itemList{
		Object: "list", Data: []*subItem{s.newItemLocked(id, pr, start)}, TotalCount: 1,
		URL: "/v1/subscription_items?subscription=" + id,
	}
	return sub
}

func (s *Server) newItemLocked(subID string, pr *price, created int64) *subItem {
	return &subItem{
		ID: s.newIDLocked("si_"), Object: "subscription_item", Created: created,
		Plan: pr.legacyPlan, Price: pr, Quantity: 1,
		Subscription: subID, TaxRates: []any{},
	}
}

// recurringPriceLocked returns the price a subscription item may use.
func (s *Server) recurringPriceLocked(id string) (*price, error) {
	const param = "items[0][price]"
	if id == "" {
		return nil, missingParam(param)
	}
	pr, ok := s.prices.get(id)
	if !ok {
		return nil, missingRef("price", id, param)
	}
	if pr.Recurring == nil {
		return nil, invalid(param, "",
			"The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.")
	}
	return pr, nil
}

// addInterval returns t plus one billing interval of rec, in UTC calendar
// arithmetic like Stripe's.
func addInterval(t int64, rec *recurring) int64 {
	n := int(rec.IntervalCount)
	u := time.Unix(t, 0).UTC()
	switch rec.Interval {
	case "day":
		u = u.AddDate(0, 0, n)
	case "week":
		u = u.AddDate(0, 0, 7*n)
	case "month":
		u = u.AddDate(0, n, 0)
	default:
		u = u.AddDate(n, 0, 0)
	}
	return u.Unix()
}

func setCancelAtPeriodEnd(sub *subscription, v bool, now int64) {
	sub.CancelAtPeriodEnd = v
	if v {
		sub.CancelAt = int64Ptr(sub.CurrentPeriodEnd)
		sub.CanceledAt = &now
		sub.CancellationDetails.Reason = strPtr("cancellation_requested")
		return
	}
	sub.CancelAt, sub.CanceledAt, sub.CancellationDetails.Reason = nil, nil, nil
}

// ended tells whether a subscription can no longer change (but metadata).
func (sub *subscription) ended() bool {
	return sub.Status == "canceled" || sub.Status == "incomplete_expired"
}

// mutateSubLocked applies change to sub and emits typ with a snapshot taken
// after the change; *.updated events carry previous_attributes and are not
// emitted when nothing changed.
func (s *Server) mutateSubLocked(sub *subscription, typ string, rq reqInfo, change func()) {
	before := sub.json()
	change()
	sub.cache.reset()
	after := sub.json()
	if typ != "customer.subscription.updated" {
		s.emitLocked(typ, "subscription", after, nil, rq)
		return
	}
	if prev := previousAttributes(before, after); prev != nil {
		s.emitLocked(typ, "subscription", after, prev, rq)
	}
}

// cancelLocked cancels sub now and emits customer.subscription.deleted.
func (s *Server) cancelLocked(sub *subscription, rq reqInfo) {
	now := s.nowLocked()
	s.mutateSubLocked(sub, "customer.subscription.deleted", rq, func() {
		sub.Status = "canceled"
		sub.CanceledAt = &now
		sub.EndedAt = &now
		if sub.CancellationDetails.Reason == nil {
			sub.CancellationDetails.Reason = strPtr("cancellation_requested")
		}
	})
}

// CancelSubscription cancels a subscription now (status canceled,
// canceled_at and ended_at set) and emits customer.subscription.deleted.
func (s *Server) CancelSubscription(id string) (*stripe.Subscription, error) {
	sub, err := s.cancel(id, reqInfo{})
	if err != nil {
		return nil, fmt.Errorf("cancel subscription %s: %w", id, err)
	}
	return sub, nil
}

func (s *Server) cancel(id string, rq reqInfo) (*stripe.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs.get(id)
	if !ok {
		return nil, notFound("subscription", id)
	}
	if sub.ended() {
		return nil, invalid("", "", "This subscription has already been canceled (status %s).", sub.Status)
	}
	s.cancelLocked(sub, rq)
	return subToStripe(sub), nil
}

// UpdateSubscriptionPrice switches the subscription's item to another price
// (keeping the item id) and emits customer.subscription.updated. When the
// billing interval changes the period restarts now and a paid invoice is
// created (invoice.paid, invoice.payment_succeeded), as Stripe does.
func (s *Server) UpdateSubscriptionPrice(id, priceID string) (*stripe.Subscription, error) {
	return s.updateHelper(id, subUpdate{price: priceID}, "update price of")
}

// SetCancelAtPeriodEnd sets or clears cancel_at_period_end (with cancel_at
// and canceled_at) and emits customer.subscription.updated.
func (s *Server) SetCancelAtPeriodEnd(id string, v bool) (*stripe.Subscription, error) {
	return s.updateHelper(id, subUpdate{cancelAtPeriodEnd: &v}, "set cancel_at_period_end of")
}

// SetSubscriptionMetadata merges metadata into the subscription's (a ""
// value deletes the key) and emits customer.subscription.updated.
func (s *Server) SetSubscriptionMetadata(id string, metadata map[string]string) (*stripe.Subscription, error) {
	u := subUpdate{metadata: &metadataUpdate{set: metadata}}
	return s.updateHelper(id, u, "set metadata of")
}

func (s *Server) updateHelper(id string, u subUpdate, what string) (*stripe.Subscription, error) {
	s.mu.Lock()
	sub, err := s.updateSubLocked(id, u, reqInfo{})
	var out *stripe.Subscription
	if err == nil {
		out = subToStripe(sub)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s subscription %s: %w", what, id, err)
	}
	return out, nil
}

// Subscription returns a snapshot of one subscription, decoded as stripe-go
// would decode GET /v1/subscriptions/{id}.
func (s *Server) Subscription(id string) (*stripe.Subscription, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sub, ok := s.subs.get(id)
	if !ok {
		return nil, fmt.Errorf("subscription %s: %w", id, notFound("subscription", id))
	}
	return subToStripe(sub), nil
}

// Subscriptions returns a snapshot of every subscription, canceled ones
// included, newest first (the order of GET /v1/subscriptions?status=all).
func (s *Server) Subscriptions() []*stripe.Subscription {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rows := s.subs.newestFirst()
	out := make([]*stripe.Subscription, len(rows))
	for i, sub := range rows {
		out[i] = subToStripe(sub)
	}
	return out
}

// SubscriptionCount returns how many subscriptions exist, canceled included.
func (s *Server) SubscriptionCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.subs.len()
}
