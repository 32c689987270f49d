package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stripe/stripe-go/v76"
)

type group struct {
	subID string
	evs   []ClaimedEvent
	bad   error // the payload could not be read
}

// groupBySubscription gathers a batch's events per subscription, oldest
// first, so each subscription is locked (and, in refetch mode, fetched) once.
func groupBySubscription(evs []ClaimedEvent) []group {
	idx := map[string]int{}
	var out []group
	for _, ev := range evs {
		subID := ev.SubscriptionID.String
		var bad error
		if subID == "" {
			env, err := ReadEnvelope(ev.Payload)
			if err != nil {
				bad = err
			} else {
				subID = env.SubscriptionID()
			}
		}
		if subID == "" || bad != nil {
			out = append(out, group{evs: []ClaimedEvent{ev}, bad: bad})
			continue
		}
		i, ok := idx[subID]
		if !ok {
			i = len(out)
			idx[subID] = i
			out = append(out, group{subID: subID})
		}
		out[i].evs = append(out[i].evs, ev)
	}
	for _, g := range out {
		slices.SortStableFunc(g.evs, func(x, y ClaimedEvent) int { return x.Created.Compare(y.Created) })
	}
	return out
}

// lockIDs are the subscriptions whose locks applying groups takes.
func lockIDs(groups []group) []string {
	var ids []string
	for _, g := range groups {
		if g.subID != "" && g.bad == nil {
			ids = append(ids, g.subID)
		}
	}
	return ids
}

// permanent marks errors that retrying cannot fix: the event is ignored
// with its reason recorded.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// refetches reports whether a group's rows come from Stripe: always in
// refetch mode, and for invoice events in either mode (an invoice does not
// carry its subscription's state).
func (a *Applier) refetches(g group) bool {
	if g.bad != nil || g.subID == "" {
		return false
	}
	if a.cfg.Mode == ModeRefetch {
		return true
	}
	for _, ev := range g.evs {
		if IsInvoiceEvent(ev.Type) {
			return true
		}
	}
	return false
}

// desiredRows computes a group's desired rows: in refetch mode (and for
// invoice events) one row, from the subscription fetched now, under its
// lock, so the state written is never older than what another writer wrote
// before; in payload mode one row per event, from its object, as of its
// created time. known says the stored row has a user id, so no customer is
// fetched to find one.
func (a *Applier) desiredRows(ctx context.Context, g group, known bool) ([]Subscription, map[string]error, error) {
	if a.refetches(g) {
		at := a.cfg.Clock()
		sub, err := a.stripe.GetSubscription(ctx, g.subID)
		if isNotFound(err) {
			return nil, nil, permanent{fmt.Errorf("subscription %s not found in Stripe", g.subID)}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("fetch subscription %s: %w", g.subID, err)
		}
		row, err := a.resolver.Desired(ctx, sub, at, known)
		if err != nil {
			return nil, nil, classifyDesired(err)
		}
		return []Subscription{row}, nil, nil
	}
	// Payload mode: an event whose object cannot be read is ignored on its
	// own; the group's other events still apply.
	rows := make([]Subscription, 0, len(g.evs))
	var skipped map[string]error
	skip := func(id string, err error) {
		if skipped == nil {
			skipped = map[string]error{}
		}
		skipped[id] = permanent{err}
	}
	for _, ev := range g.evs {
		sub, err := a.subscriptionOf(ev)
		switch {
		case err != nil:
			skip(ev.ID, fmt.Errorf("event %s: %w", ev.ID, err))
			continue
		case sub.ID != g.subID:
			skip(ev.ID, fmt.Errorf("event %s: %w: object is %s, event was stored for %s", ev.ID, ErrUnreadable, clip(sub.ID), g.subID))
			continue
		}
		row, err := a.resolver.Desired(ctx, sub, ev.Created, known)
		if err != nil {
			if err = classifyDesired(err); errors.As(err, new(permanent)) {
				skip(ev.ID, fmt.Errorf("event %s: %w", ev.ID, err))
				continue
			}
			return nil, nil, err
		}
		rows = append(rows, row)
	}
	return rows, skipped, nil
}

// subscriptionOf reads the subscription ev's payload announces, unless it
// came read.
func (a *Applier) subscriptionOf(ev ClaimedEvent) (*stripe.Subscription, error) {
	if ev.Object != nil {
		return ev.Object, nil
	}
	env, err := ReadEnvelope(ev.Payload)
	if err != nil {
		return nil, err
	}
	return a.resolver.SubscriptionFromObject(env.Data.Object)
}

func classifyDesired(err error) error {
	if errors.Is(err, ErrNoItems) || isNotFound(err) {
		return permanent{err}
	}
	return err
}

func isNotFound(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && se.HTTPStatusCode == 404
}
