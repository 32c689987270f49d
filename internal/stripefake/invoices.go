package stripefake

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/stripe/stripe-go/v76"
)

// newInvoiceLocked stores an invoice for sub's current price and period; the
// caller points sub.LatestInvoice at it.
func (s *Server) newInvoiceLocked(sub *subscription, reason string, amount int64, paid bool) *invoice {
	return s.newInvoiceAtLocked(sub, sub.item().Price, reason, amount, paid, sub.CurrentPeriodStart, sub.CurrentPeriodEnd)
}

// newInvoiceAtLocked stores an invoice of amount for price pr over
// [start, end); paid ones are paid now, others are open after one failed
// attempt when reason is a cycle, or awaiting payment otherwise.
func (s *Server) newInvoiceAtLocked(sub *subscription, pr *price, reason string, amount int64, paid bool, start, end int64) *invoice {
	now := s.nowLocked()
	id := s.newIDLocked("in_")
	var email, name *string
	if c, ok := s.customers.get(sub.Customer); ok {
		email, name = c.Email, c.Name
	}
	seq := s.invoices.len() + 1
	md := cloneMetadata(sub.Metadata) // a snapshot, shared by the invoice's read-only copies
	inv := &invoice{
		ID: id, Object: "invoice", AccountCountry: "BR", AmountDue: amount, AmountRemaining: amount,
		AutoAdvance: !paid, BillingReason: reason, CollectionMethod: "charge_automatically", Created: now,
		Currency: pr.Currency, Customer: sub.Customer, CustomerEmail: email, CustomerName: name,
		EffectiveAt: &now, EndingBalance: new(int64),
		Number: strPtr(fmt.Sprintf("%s-%04d", sub.Customer[4:12], seq)), PeriodEnd: end, PeriodStart: start,
		Status: "open", StatusTransitions: statusTransitions{FinalizedAt: &now}, Subscription: &sub.ID,
		SubscriptionDetails: &subscriptionDetails{Metadata: md},
		Subtotal:            amount, SubtotalExcludingTax: amount, Total: amount, TotalExcludingTax: amount,
	}
	inv.Lines = lineList{
		Object: "list", TotalCount: 1, URL: "/v1/invoices/" + id + "/lines",
		Data: []*lineItem{{
			ID: s.newIDLocked("il_"), Object: "line_item", Amount: amount, AmountExcludingTax: amount,
			Currency: pr.Currency, Description: "1 × " + pr.ID, Discountable: true,
			DiscountAmounts: []any{}, Discounts: []any{}, Invoice: id, Metadata: md,
			Period: period{Start: start, End: end}, Plan: pr.legacyPlan, Price: pr, Quantity: 1,
			Subscription: sub.ID, SubscriptionItem: sub.item().ID, TaxAmounts: []any{}, TaxRates: []any{},
			Type: "subscription", UnitAmountExcludingTax: pr.UnitAmountDecimal,
		}},
	}
	if paid {
		payInvoice(inv, now)
	} else if reason == "subscription_cycle" {
		inv.Attempted, inv.AttemptCount = true, 1
		inv.NextPaymentAttempt = int64Ptr(now + 3*86400)
	}
	s.invoices.insert(inv)
	return inv
}

// payInvoice marks an invoice paid at now.
func payInvoice(inv *invoice, now int64) {
	inv.Paid, inv.Status, inv.AutoAdvance = true, "paid", false
	inv.Attempted = true
	inv.AttemptCount++
	inv.AmountPaid, inv.AmountRemaining = inv.AmountDue, 0
	inv.NextPaymentAttempt = nil
	inv.StatusTransitions.PaidAt = &now
	inv.cache.reset()
}

// emitInvoiceLocked emits one event per type about the invoice's current
// state.
func (s *Server) emitInvoiceLocked(inv *invoice, rq reqInfo, types ...string) {
	b := inv.json()
	for _, t := range types {
		s.emitLocked(t, "invoice", b, nil, rq)
	}
}

// Invoice returns one invoice, decoded as stripe-go would decode it.
func (s *Server) Invoice(id string) (*stripe.Invoice, error) {
	s.mu.RLock()
	inv, ok := s.invoices.get(id)
	var b []byte
	if ok {
		b = inv.json()
	}
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("invoice %s: %w", id, notFound("invoice", id))
	}
	return decodeAs[stripe.Invoice](b)
}

func (s *Server) handleGetInvoice(w http.ResponseWriter, r *http.Request) {
	serveExpandedGet(s, w, r, s.invoices)
}

func (s *Server) handleListInvoices(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, "/v1/invoices", s.invoices.page, func(form url.Values) (listing[*invoice], error) {
		version := s.readVersion(r)
		subID, cusID, status := form.Get("subscription"), form.Get("customer"), form.Get("status")
		return listing[*invoice]{
			match: func(inv *invoice) bool {
				return (subID == "" || derefStr(inv.Subscription) == subID) &&
					(cusID == "" || inv.Customer == cusID) && (status == "" || inv.Status == status)
			},
			render: expandedRender[*invoice](s, "invoice", version, "data.", repeated(form, "expand")),
		}, nil
	})
}
