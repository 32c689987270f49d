package stripefake

// subUpdate is one POST /v1/subscriptions/{id}: every change it carries is
// applied together and reported by a single customer.subscription.updated.
type subUpdate struct {
	price             string // new price of the item
	itemID            string // items[0][id]; "" replaces the item
	replaceItem       bool   // items[0][price] without items[0][id]
	cancelAtPeriodEnd *bool
	metadata          *metadataUpdate
	pause             *pauseCollection
	clearPause        bool
}

// onlyMetadata tells whether the update changes nothing but metadata, the
// only change Stripe allows on an ended subscription.
func (u subUpdate) onlyMetadata() bool {
	return u.price == "" && u.cancelAtPeriodEnd == nil && u.pause == nil && !u.clearPause
}

// updateSubLocked applies u to subscription id; callers hold mu for writing.
func (s *Server) updateSubLocked(id string, u subUpdate, rq reqInfo) (*subscription, error) {
	sub, ok := s.subs.get(id)
	if !ok {
		return nil, notFound("subscription", id)
	}
	if sub.ended() && !u.onlyMetadata() {
		return nil, invalid("", "",
			"A canceled subscription can only update its cancellation_details and metadata.")
	}
	var pr *price
	if u.price != "" {
		var err error
		if pr, err = s.recurringPriceLocked(u.price); err != nil {
			return nil, err
		}
		if u.itemID != "" && u.itemID != sub.item().ID {
			return nil, missingRef("subscription_item", u.itemID, "items[0][id]")
		}
	}
	if u.pause != nil {
		switch u.pause.Behavior {
		case "keep_as_draft", "mark_uncollectible", "void":
		default:
			return nil, invalid("pause_collection[behavior]", "",
				"Invalid pause_collection[behavior]: must be one of keep_as_draft, mark_uncollectible, or void")
		}
	}

	now := s.nowLocked()
	var inv *invoice
	if pr != nil && pr != sub.item().Price {
		old := sub.item().Price
		if old.Recurring.Interval != pr.Recurring.Interval || old.Recurring.IntervalCount != pr.Recurring.IntervalCount {
			// A new interval restarts the billing cycle now and bills it.
			inv = s.newInvoiceAtLocked(sub, pr, "subscription_update", pr.UnitAmount, true, now, addInterval(now, pr.Recurring))
		}
	}
	s.mutateSubLocked(sub, "customer.subscription.updated", rq, func() {
		if pr != nil {
			if u.replaceItem {
				sub.Items.Data[0] = s.newItemLocked(sub.ID, pr, now)
			} else if pr != sub.item().Price {
				it := *sub.item()
				it.Price, it.Plan = pr, pr.legacyPlan
				sub.Items.Data[0] = &it
			}
			sub.Currency = pr.Currency
			if inv != nil {
				sub.LatestInvoice = &inv.ID
				sub.CurrentPeriodStart, sub.CurrentPeriodEnd = inv.PeriodStart, inv.PeriodEnd
				sub.BillingCycleAnchor = now
				if sub.CancelAtPeriodEnd {
					sub.CancelAt = int64Ptr(sub.CurrentPeriodEnd)
				}
				if sub.Status == "trialing" {
					sub.Status = "active"
					sub.TrialEnd = &now
				}
			}
		}
		if u.cancelAtPeriodEnd != nil && *u.cancelAtPeriodEnd != sub.CancelAtPeriodEnd {
			setCancelAtPeriodEnd(sub, *u.cancelAtPeriodEnd, now)
		}
		if u.metadata != nil {
			sub.Metadata = u.metadata.apply(sub.Metadata)
		}
		if u.clearPause {
			sub.PauseCollection = nil
		}
		if u.pause != nil {
			pc := *u.pause
			sub.PauseCollection = &pc
		}
	})
	if inv != nil {
		s.emitInvoiceLocked(inv, rq, "invoice.paid", "invoice.payment_succeeded")
	}
	return sub, nil
}
