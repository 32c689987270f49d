package stripefake

import (
	"fmt"
	"time"
)

// SeedOptions shape a bulk seeding.
type SeedOptions struct {
	// Prices are the recurring price ids the subscriptions use, round robin.
	Prices []string
	// Statuses are cycled through (active when empty): active, trialing,
	// past_due, unpaid, incomplete, incomplete_expired, canceled, paused.
	// With WithEvents, unpaid and incomplete_expired are refused.
	Statuses []string
	// Spread spreads creation times evenly over [now-Spread, now]; periods
	// are advanced so that each contains now. Ignored with WithEvents.
	Spread time.Duration
	// WithEvents creates each customer and subscription through the same
	// path as the API, with every event (about four per subscription): slower
	// and heavier. Without it nothing is emitted, as if the data predated
	// the events' 30-day retention.
	WithEvents bool
	// Prerender renders each subscription's JSON as it is seeded, as the
	// first request to read it would. The fake keeps that rendering until
	// the subscription changes, so without it the first listing of the
	// account costs the fake more CPU than later ones; a benchmark that
	// compares a first listing with a later one on the same CPUs seeds
	// with it.
	Prerender bool
}

// SeedSubscriptions creates n customers, each with one subscription, for
// benchmarks and demos: fast for 100,000 (the tables are sorted once at the
// end). Customer k (counting every subscription before) has email
// user<k>@example.com and, like its subscription, metadata user_id=user_<k>.
// It returns the subscription ids in creation order.
func (s *Server) SeedSubscriptions(n int, opts SeedOptions) ([]string, error) {
	statuses := opts.Statuses
	if len(statuses) == 0 {
		statuses = []string{"active"}
	}
	for _, st := range statuses {
		if !validStatusFilter(st) || st == "" || st == "all" || st == "ended" ||
			(opts.WithEvents && (st == "unpaid" || st == "incomplete_expired")) {
			return nil, fmt.Errorf("seed subscriptions: status %q: %w", st, ErrInvalid)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prices := make([]*price, len(opts.Prices))
	for i, id := range opts.Prices {
		pr, err := s.recurringPriceLocked(id)
		if err != nil {
			return nil, fmt.Errorf("seed subscriptions: %w", err)
		}
		prices[i] = pr
	}
	if len(prices) == 0 && n > 0 {
		return nil, fmt.Errorf("seed subscriptions: no prices: %w", ErrInvalid)
	}

	s.customers.reserve(n)
	s.subs.reserve(n)
	s.invoices.reserve(n)
	if opts.WithEvents {
		s.events.reserve(4 * n)
	}
	tables := []interface {
		beginBulk()
		endBulk()
	}{s.customers, s.subs, s.invoices, s.events}
	for _, t := range tables {
		t.beginBulk()
		defer t.endBulk()
	}
	base := s.subs.len()
	now := s.nowLocked()
	ids := make([]string, n)
	for i := range n {
		k := base + i
		md := map[string]string{"user_id": fmt.Sprintf("user_%d", k)}
		cp := CustomerParams{Email: fmt.Sprintf("user%d@example.com", k), Metadata: md}
		pr, status := prices[i%len(prices)], statuses[i%len(statuses)]
		var sub *subscription
		if opts.WithEvents {
			var err error
			if sub, err = s.seedWithEventsLocked(cp, pr, status); err != nil {
				return ids[:i], fmt.Errorf("seed subscription %d: %w", i, err)
			}
		} else {
			created := now
			if opts.Spread > 0 && n > 1 {
				created = now - int64(opts.Spread/time.Second) + int64(opts.Spread/time.Second)*int64(i)/int64(n-1)
			}
			sub = s.seedSilentLocked(cp, pr, status, created, now)
		}
		ids[i] = sub.ID
		if opts.Prerender {
			sub.json()
		}
	}
	return ids, nil
}

// seedWithEventsLocked creates one customer and subscription the way the
// API does, then brings it to status.
func (s *Server) seedWithEventsLocked(cp CustomerParams, pr *price, status string) (*subscription, error) {
	c := s.createCustomerLocked(cp, reqInfo{})
	p := SubscriptionParams{Customer: c.ID, Price: pr.ID, Metadata: cp.Metadata}
	switch status {
	case "trialing":
		p.TrialPeriodDays = 14
	case "incomplete":
		p.DefaultIncomplete = true
	}
	sub, err := s.createSubLocked(p, reqInfo{})
	if err != nil {
		return nil, err
	}
	switch status {
	case "canceled":
		s.cancelLocked(sub, reqInfo{})
	case "past_due":
		err = s.failPaymentLocked(sub)
	case "paused":
		err = s.pauseLocked(sub)
	}
	return sub, err
}

// seedSilentLocked stores one customer and subscription in status without
// events, created at created, with the period that contains now.
func (s *Server) seedSilentLocked(cp CustomerParams, pr *price, status string, created, now int64) *subscription {
	c := s.newCustomerLocked(cp)
	c.Created = created
	s.customers.insert(c)
	sub := s.newSubLocked(c, pr, created, cp.Metadata)
	for sub.CurrentPeriodEnd <= now {
		sub.CurrentPeriodStart = sub.CurrentPeriodEnd
		sub.CurrentPeriodEnd = addInterval(sub.CurrentPeriodStart, pr.Recurring)
	}
	sub.Status = status
	amount, paid := pr.UnitAmount, true
	switch status {
	case "trialing":
		sub.TrialStart, sub.TrialEnd = int64Ptr(sub.CurrentPeriodStart), int64Ptr(sub.CurrentPeriodEnd)
		amount = 0
	case "past_due", "unpaid", "incomplete", "incomplete_expired":
		paid = false
	case "canceled":
		sub.CanceledAt, sub.EndedAt = int64Ptr(sub.CurrentPeriodStart), int64Ptr(sub.CurrentPeriodStart)
		sub.CancellationDetails.Reason = strPtr("cancellation_requested")
	}
	reason := "subscription_cycle"
	if sub.CurrentPeriodStart == created {
		reason = "subscription_create"
	}
	inv := s.newInvoiceAtLocked(sub, pr, reason, amount, paid, sub.CurrentPeriodStart, sub.CurrentPeriodEnd)
	switch status {
	case "incomplete_expired":
		inv.Status = "void"
		inv.StatusTransitions.VoidedAt = &created
		sub.EndedAt = int64Ptr(sub.CurrentPeriodStart)
	case "past_due", "unpaid":
		inv.Attempted, inv.AttemptCount = true, 1
	}
	sub.LatestInvoice = &inv.ID
	s.subs.insert(sub)
	s.custSubs[c.ID] = append(s.custSubs[c.ID], sub.ID)
	return sub
}
