package db

// Change is one user whose features may have changed through a write of
// subscription SubscriptionID: their cache key is invalidated and the
// change announced on ChangeChannel.
type Change struct {
	UserID         string
	SubscriptionID string
}

// Folded is what a sequence of desired rows of one subscription comes to,
// applied in order to the stored row under the subscription's lock: the
// row to write (nil when every desired row was stale), one UpsertResult per
// desired row, and the users whose features changed.
type Folded struct {
	Row     *Subscription
	Results []UpsertResult
	Changes []Change
}

// Fold applies desired, in order, to stored (nil when no row exists) with
// the guard of the upsert: a desired row older (stripe_state_at) than the
// current one is refused as stale; a desired row without a user id keeps
// the current one; a change of plan, period, status or user invalidates the
// linked user's features, and a user who left the subscription is
// invalidated too. The result equals what one Upsert per desired row would
// have written, in one write.
func Fold(stored *Subscription, desired []Subscription) Folded {
	var f Folded
	var cur *Subscription
	if stored != nil {
		c := *stored
		cur = &c
	}
	for _, s := range desired {
		res, changes := foldOne(cur, &s)
		f.Results = append(f.Results, res)
		f.Changes = append(f.Changes, changes...)
		if !res.Stale {
			if cur != nil {
				s.CreatedAt, s.UpdatedAt = cur.CreatedAt, cur.UpdatedAt
			}
			cur = &s
			f.Row = cur
		}
	}
	return f
}

// foldOne is one step of Fold: the result of writing s over cur, and the
// users to invalidate. s.UserID is filled from cur when s has none.
func foldOne(cur, s *Subscription) (UpsertResult, []Change) {
	id := s.StripeSubscriptionID
	if cur == nil {
		res := UpsertResult{Inserted: true, Changes: Diff(Subscription{}, *s)}
		if s.UserID == nil {
			return res, nil
		}
		res.Invalidated = true
		return res, []Change{{UserID: *s.UserID, SubscriptionID: id}}
	}
	if cur.StripeStateAt.After(s.StripeStateAt) {
		return UpsertResult{Stale: true}, nil
	}
	if s.UserID == nil {
		s.UserID = cur.UserID
	}
	res := UpsertResult{Changes: Diff(*cur, *s)}
	relevant := false
	for _, c := range res.Changes {
		relevant = relevant || featureFields[c.Field]
	}
	var changes []Change
	if relevant && s.UserID != nil {
		res.Invalidated = true
		changes = append(changes, Change{UserID: *s.UserID, SubscriptionID: id})
	}
	if cur.UserID != nil && s.UserID != nil && *cur.UserID != *s.UserID {
		changes = append(changes, Change{UserID: *cur.UserID, SubscriptionID: id})
	}
	return res, changes
}
