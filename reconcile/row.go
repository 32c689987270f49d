package reconcile

import (
	"strconv"
	"time"
)

// Subscription is one row of user_subscriptions.
type Subscription struct {
	StripeSubscriptionID string     `db:"stripe_subscription_id" json:"stripe_subscription_id"`
	UserID               *string    `db:"user_id" json:"user_id"`
	StripeCustomerID     string     `db:"stripe_customer_id" json:"stripe_customer_id"`
	StripePriceID        *string    `db:"stripe_price_id" json:"stripe_price_id"`
	PlanID               *string    `db:"plan_id" json:"plan_id"`
	BillingPeriod        string     `db:"billing_period" json:"billing_period"`
	Status               string     `db:"status" json:"status"`
	CurrentPeriodStart   *time.Time `db:"current_period_start" json:"current_period_start"`
	CurrentPeriodEnd     *time.Time `db:"current_period_end" json:"current_period_end"`
	CancelAtPeriodEnd    bool       `db:"cancel_at_period_end" json:"cancel_at_period_end"`
	CanceledAt           *time.Time `db:"canceled_at" json:"canceled_at"`
	StripeStateAt        time.Time  `db:"stripe_state_at" json:"stripe_state_at"`
	CreatedAt            time.Time  `db:"created_at" json:"created_at"`
	UpdatedAt            time.Time  `db:"updated_at" json:"updated_at"`
}

// FieldDiff is one tracked field whose stored value differs from the
// desired one.
type FieldDiff struct {
	Field string
	Old   string // "" for null
	New   string
}

// Diff compares the tracked fields of a stored row (old) with the desired
// row computed from Stripe (desired). The user id counts only when Stripe
// has one: a row keeps a user id Stripe no longer carries.
func Diff(old, desired Subscription) []FieldDiff {
	var out []FieldDiff
	add := func(field, o, n string) {
		if o != n {
			out = append(out, FieldDiff{Field: field, Old: o, New: n})
		}
	}
	if desired.UserID != nil {
		add("user_id", str(old.UserID), str(desired.UserID))
	}
	add("stripe_customer_id", old.StripeCustomerID, desired.StripeCustomerID)
	add("stripe_price_id", str(old.StripePriceID), str(desired.StripePriceID))
	add("plan_id", str(old.PlanID), str(desired.PlanID))
	add("billing_period", old.BillingPeriod, desired.BillingPeriod)
	add("status", old.Status, desired.Status)
	add("current_period_start", ts(old.CurrentPeriodStart), ts(desired.CurrentPeriodStart))
	add("current_period_end", ts(old.CurrentPeriodEnd), ts(desired.CurrentPeriodEnd))
	add("cancel_at_period_end", strconv.FormatBool(old.CancelAtPeriodEnd), strconv.FormatBool(desired.CancelAtPeriodEnd))
	add("canceled_at", ts(old.CanceledAt), ts(desired.CanceledAt))
	return out
}

// featureFields are the fields whose change alters what a user may use.
var featureFields = map[string]bool{"plan_id": true, "billing_period": true, "status": true, "user_id": true}

// FeatureField reports whether a change of field alters what a user may use.
func FeatureField(field string) bool { return featureFields[field] }

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ts(p *time.Time) string {
	if p == nil {
		return ""
	}
	return p.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// UpsertResult says what a write did.
type UpsertResult struct {
	Inserted bool        // no row existed
	Stale    bool        // refused: the stored row reflects a newer Stripe state
	Changes  []FieldDiff // tracked fields written (all of them for an insert)
	// Invalidated is true when a cache invalidation was queued and the
	// change notification sent.
	Invalidated bool
}

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
