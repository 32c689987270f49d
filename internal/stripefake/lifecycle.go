package stripefake

import (
	"fmt"

	"github.com/stripe/stripe-go/v76"
)

// Helpers that play Stripe's own billing engine: renewals, failed payments,
// pauses and trial reminders. They emit the events Stripe would, with a null
// request id (automatic changes).

// Renew plays the end of the current period:
//   - a subscription set to cancel at period end ends (status canceled,
//     ended_at = the period end) and customer.subscription.deleted is emitted;
//   - one with an open latest invoice (past_due, unpaid, incomplete) has it
//     paid and becomes active;
//   - otherwise the period advances by the price interval and a paid invoice
//     is created (a trial ends).
//
// Paying emits invoice.paid, invoice.payment_succeeded, then
// customer.subscription.updated.
func (s *Server) Renew(id string) (*stripe.Subscription, error) {
	return s.lifecycle(id, "renew", s.renewLocked)
}

func (s *Server) renewLocked(sub *subscription) error {
	if sub.Status == "paused" {
		return invalid("", "", "A paused subscription must be resumed before it renews.")
	}
	now := s.nowLocked()
	if inv := s.openInvoiceLocked(sub); inv != nil {
		payInvoice(inv, now)
		s.emitInvoiceLocked(inv, reqInfo{}, "invoice.paid", "invoice.payment_succeeded")
		s.mutateSubLocked(sub, "customer.subscription.updated", reqInfo{}, func() { sub.Status = "active" })
		return nil
	}
	if sub.CancelAtPeriodEnd {
		end := sub.CurrentPeriodEnd
		s.mutateSubLocked(sub, "customer.subscription.deleted", reqInfo{}, func() {
			sub.Status = "canceled"
			sub.EndedAt = &end
		})
		return nil
	}
	inv := s.nextCycleLocked(sub, true)
	s.emitInvoiceLocked(inv, reqInfo{}, "invoice.paid", "invoice.payment_succeeded")
	s.mutateSubLocked(sub, "customer.subscription.updated", reqInfo{}, func() {
		advance(sub, inv)
		sub.Status = "active"
	})
	return nil
}

// FailPayment plays a failed renewal: the period advances with an open
// invoice (or, when the latest invoice is already open, one more attempt
// fails), the subscription becomes past_due (an incomplete one stays
// incomplete), and invoice.payment_failed then customer.subscription.updated
// are emitted.
func (s *Server) FailPayment(id string) (*stripe.Subscription, error) {
	return s.lifecycle(id, "fail payment of", s.failPaymentLocked)
}

func (s *Server) failPaymentLocked(sub *subscription) error {
	if sub.Status == "paused" {
		return invalid("", "", "A paused subscription does not bill.")
	}
	now := s.nowLocked()
	if inv := s.openInvoiceLocked(sub); inv != nil {
		inv.Attempted = true
		inv.AttemptCount++
		inv.NextPaymentAttempt = int64Ptr(now + 3*86400)
		inv.cache.reset()
		s.emitInvoiceLocked(inv, reqInfo{}, "invoice.payment_failed")
		s.mutateSubLocked(sub, "customer.subscription.updated", reqInfo{}, func() {
			if sub.Status != "incomplete" {
				sub.Status = "past_due"
			}
		})
		return nil
	}
	inv := s.nextCycleLocked(sub, false)
	s.emitInvoiceLocked(inv, reqInfo{}, "invoice.payment_failed")
	s.mutateSubLocked(sub, "customer.subscription.updated", reqInfo{}, func() {
		advance(sub, inv)
		sub.Status = "past_due"
	})
	return nil
}

// Pause puts an active, trialing or past_due subscription in status paused
// and emits customer.subscription.updated then customer.subscription.paused.
func (s *Server) Pause(id string) (*stripe.Subscription, error) {
	return s.lifecycle(id, "pause", s.pauseLocked)
}

func (s *Server) pauseLocked(sub *subscription) error {
	switch sub.Status {
	case "active", "trialing", "past_due":
	default:
		return invalid("", "", "Only active, trialing or past_due subscriptions can be paused (status %s).", sub.Status)
	}
	s.mutateSubLocked(sub, "customer.subscription.updated", reqInfo{}, func() { sub.Status = "paused" })
	s.emitLocked("customer.subscription.paused", "subscription", sub.json(), nil, reqInfo{})
	return nil
}

// Resume makes a paused subscription active with a period starting now (no
// invoice is created) and emits customer.subscription.updated then
// customer.subscription.resumed, like POST /v1/subscriptions/{id}/resume.
func (s *Server) Resume(id string) (*stripe.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, err := s.resumeLocked(id, reqInfo{})
	if err != nil {
		return nil, fmt.Errorf("resume subscription %s: %w", id, err)
	}
	return subToStripe(sub), nil
}

func (s *Server) resumeLocked(id string, rq reqInfo) (*subscription, error) {
	sub, ok := s.subs.get(id)
	if !ok {
		return nil, notFound("subscription", id)
	}
	if sub.Status != "paused" {
		return nil, invalid("", "", "Only paused subscriptions can be resumed (status %s).", sub.Status)
	}
	now := s.nowLocked()
	s.mutateSubLocked(sub, "customer.subscription.updated", rq, func() {
		sub.Status = "active"
		sub.CurrentPeriodStart = now
		sub.CurrentPeriodEnd = addInterval(now, sub.item().Price.Recurring)
		sub.BillingCycleAnchor = now
		if sub.CancelAtPeriodEnd {
			sub.CancelAt = int64Ptr(sub.CurrentPeriodEnd)
		}
	})
	s.emitLocked("customer.subscription.resumed", "subscription", sub.json(), nil, rq)
	return sub, nil
}

// TrialWillEnd emits customer.subscription.trial_will_end for a trialing
// subscription (Stripe sends it three days before the trial ends).
func (s *Server) TrialWillEnd(id string) (*stripe.Subscription, error) {
	return s.lifecycle(id, "announce trial end of", func(sub *subscription) error {
		if sub.Status != "trialing" {
			return invalid("", "", "Subscription is not trialing (status %s).", sub.Status)
		}
		s.emitLocked("customer.subscription.trial_will_end", "subscription", sub.json(), nil, reqInfo{})
		return nil
	})
}

// lifecycle runs step on a live subscription under the write lock.
func (s *Server) lifecycle(id, what string, step func(*subscription) error) (*stripe.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.subs.get(id)
	var err error
	switch {
	case !ok:
		err = notFound("subscription", id)
	case sub.ended():
		err = invalid("", "", "Subscription %s has ended (status %s).", id, sub.Status)
	default:
		err = step(sub)
	}
	if err != nil {
		return nil, fmt.Errorf("%s subscription %s: %w", what, id, err)
	}
	return subToStripe(sub), nil
}

// openInvoiceLocked returns sub's latest invoice when it awaits payment.
func (s *Server) openInvoiceLocked(sub *subscription) *invoice {
	if sub.LatestInvoice == nil {
		return nil
	}
	inv, ok := s.invoices.get(*sub.LatestInvoice)
	if !ok || inv.Status != "open" {
		return nil
	}
	return inv
}

// nextCycleLocked stores the invoice of sub's next period, paid or failed.
func (s *Server) nextCycleLocked(sub *subscription, paid bool) *invoice {
	pr := sub.item().Price
	start := sub.CurrentPeriodEnd
	return s.newInvoiceAtLocked(sub, pr, "subscription_cycle", pr.UnitAmount, paid, start, addInterval(start, pr.Recurring))
}

// advance moves sub to the period inv bills.
func advance(sub *subscription, inv *invoice) {
	sub.CurrentPeriodStart, sub.CurrentPeriodEnd = inv.PeriodStart, inv.PeriodEnd
	sub.LatestInvoice = &inv.ID
	if sub.CancelAtPeriodEnd {
		sub.CancelAt = int64Ptr(sub.CurrentPeriodEnd)
	}
}
