package reconcile

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// In payload mode a subscription event carries the state it announces, so
// it can be applied by the transaction that stores it: the event row is
// written once, already final, in the same commit as the subscription row
// it changes, and no worker has to claim it. This is settling. An event
// that needs Stripe (an invoice event, or a subscription whose user is
// found only through its customer), or whose subscription another writer
// holds at that moment, is stored pending instead, and the workers apply
// it as before: a storing transaction, on which every webhook's answer
// waits, never waits for Stripe or for a subscription's lock.

// Locker takes, in a transaction, the locks of subscriptions that every
// writer takes (see Batch.Lock), but only those free now: a storing
// transaction never waits for one.
type Locker interface {
	// TryLock takes those of the locks of the subscriptions ids that are
	// free now, and reads, once they are held, their stored rows and which
	// of the events eventIDs are already stored.
	TryLock(ctx context.Context, ids, eventIDs []string) (Held, error)
}

// Held is what a Locker took and read.
type Held struct {
	Locked map[string]bool         // subscriptions whose lock is held
	Rows   map[string]Subscription // their stored rows
	Stored map[string]bool         // events already in the inbox
}

// Settler applies new events in the transaction that stores them.
type Settler interface {
	// Settles reports whether ev may be settled as it is stored.
	Settles(ev NewEvent) bool
	// Settle computes, under tx's locks, what the events of evs that can
	// be applied without Stripe write. It returns nil when none can.
	Settle(ctx context.Context, tx Locker, evs []NewEvent) (*Settlement, error)
	// Settled reports the events of a committed Settlement that were
	// stored; the others were already in the inbox.
	Settled(s *Settlement, stored map[string]bool)
}

// Settlement is what settling a batch of new events writes: the rows and
// changes they cause, and in Write.Events the result of each settled event
// (applied, or ignored with its reason). An event without a result is
// stored as it came, pending.
type Settlement struct {
	Write   BatchWrite
	start   time.Time
	groups  []group
	outs    []outcome
	results map[string]EventResult // Write.Events by id
}

// Result is the result of event id, when s settled it; a nil Settlement
// settled nothing.
func (s *Settlement) Result(id string) (EventResult, bool) {
	if s == nil {
		return EventResult{}, false
	}
	r, ok := s.results[id]
	return r, ok
}

// errWouldFetch stops a settling computation that would call Stripe.
var errWouldFetch = errors.New("needs a Stripe call: left to the workers")

type noCustomers struct{}

func (noCustomers) GetCustomer(context.Context, string) (*stripe.Customer, error) {
	return nil, errWouldFetch
}

// Settles implements Settler: a subscription event, in payload mode. In
// refetch mode every event is applied from a fetch, which a storing
// transaction must not wait for.
func (a *Applier) Settles(ev NewEvent) bool {
	return a.cfg.Mode == ModePayload && a.settler != nil && ev.Status == StatusPending && !IsInvoiceEvent(ev.Type)
}

// Settle implements Settler. An event already stored (a second delivery
// of one that failed, say) is left as it is: its own row decides what
// becomes of it.
func (a *Applier) Settle(ctx context.Context, tx Locker, evs []NewEvent) (*Settlement, error) {
	now := a.cfg.Clock()
	var cands []NewEvent
	var evIDs []string
	for _, ev := range evs {
		if a.Settles(ev) {
			cands = append(cands, ev)
			evIDs = append(evIDs, ev.ID)
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	// The subscriptions to lock are known only once the events are
	// grouped; an event without a stored subscription id is read here.
	groups := groupBySubscription(claimedOf(cands, now))
	held, err := tx.TryLock(ctx, lockIDs(groups), evIDs)
	if err != nil {
		return nil, err
	}
	s := &Settlement{start: now}
	for _, g := range groups {
		if g.subID != "" && g.bad == nil && !held.Locked[g.subID] {
			continue // another writer holds it (a worker fetching, say): stored pending
		}
		g.evs = slices.DeleteFunc(g.evs, func(ev ClaimedEvent) bool { return held.Stored[ev.ID] })
		if len(g.evs) == 0 {
			continue
		}
		var cur *Subscription
		if row, ok := held.Rows[g.subID]; ok {
			cur = &row
		}
		o := a.settler.compute(ctx, g, cur)
		if o.err != nil && !errors.As(o.err, new(permanent)) {
			continue // stored pending: the workers apply it
		}
		if o.folded.Row != nil {
			s.Write.Rows = append(s.Write.Rows, *o.folded.Row)
		}
		s.Write.Changes = append(s.Write.Changes, o.folded.Changes...)
		s.Write.Events = append(s.Write.Events, a.results(g, o)...)
		s.groups = append(s.groups, g)
		s.outs = append(s.outs, o)
	}
	if len(s.groups) == 0 {
		return nil, nil
	}
	s.results = make(map[string]EventResult, len(s.Write.Events))
	for _, r := range s.Write.Events {
		s.results[r.ID] = r
	}
	return s, nil
}

// claimedOf is evs as the applier's groups hold them, received at now.
func claimedOf(evs []NewEvent, now time.Time) []ClaimedEvent {
	out := make([]ClaimedEvent, len(evs))
	for i, ev := range evs {
		out[i] = ClaimedEvent{
			ID: ev.ID, Type: ev.Type, Created: ev.Created, Source: ev.Source, ReceivedAt: now,
			APIVersion:     sql.NullString{String: ev.APIVersion, Valid: ev.APIVersion != ""},
			SubscriptionID: sql.NullString{String: ev.SubscriptionID, Valid: ev.SubscriptionID != ""},
			Payload:        ev.Payload, Object: ev.Object,
		}
	}
	return out
}

// Settled implements Settler: it counts and logs the settled events that
// were stored, as a worker does for the events it applies.
func (a *Applier) Settled(s *Settlement, stored map[string]bool) {
	if s == nil {
		return
	}
	some := false
	for i, g := range s.groups {
		g.evs = slices.DeleteFunc(slices.Clone(g.evs), func(ev ClaimedEvent) bool { return !stored[ev.ID] })
		some = some || len(g.evs) > 0
		a.report(g, s.outs[i])
	}
	if m := a.cfg.Metrics; m != nil && some {
		m.EventApplyDuration.Observe(a.cfg.Clock().Sub(s.start).Seconds())
	}
}

// newSettler is the Applier that settles for a: the same, but its
// resolver never calls Stripe.
func newSettler(a *Applier) *Applier {
	if a.resolver == nil {
		return nil
	}
	r := *a.resolver
	if r.Customers != nil {
		r.Customers = noCustomers{}
	}
	s := *a
	s.resolver = &r
	return &s
}
