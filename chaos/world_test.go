package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
)

// chaosPlans are the three plans of the scenario, each with an annual and a
// monthly price, mapped through STRIPE_PRICE_<PLAN>_<ANUAL|MENSAL>.
var chaosPlans = []struct {
	name            string
	annual, monthly int64
}{
	{"basico", 29700, 2970},
	{"pro", 59700, 5970},
	{"maquina", 573100, 57300},
}

// priceInfo is what a price means to the daemon.
type priceInfo struct{ plan, period string }

// chaosUser is an application user; the user id sits in the metadata of
// their subscriptions, or (inCustomer) only in their customer's metadata.
type chaosUser struct {
	id         string
	inCustomer bool
	customer   string   // current customer, "" after it was deleted
	subs       []string // every subscription, oldest first
}

// world drives the fake: it creates the subscriptions and plays the history
// of changes, and knows which user each subscription belongs to.
type world struct {
	fake    *stripefake.Server
	rnd     *rand.Rand
	prices  []string             // every mapped price id
	info    map[string]priceInfo // price id → plan and period
	users   []*chaosUser
	owner   map[string]*chaosUser // subscription id → user
	ops     map[string]int        // changes made, by kind
	refused int                   // changes the fake refused (state moved on)
}

func newWorld(fake *stripefake.Server, rnd *rand.Rand) (*world, error) {
	w := &world{fake: fake, rnd: rnd, info: map[string]priceInfo{}, owner: map[string]*chaosUser{}, ops: map[string]int{}}
	for _, p := range chaosPlans {
		for _, pp := range []struct {
			amount           int64
			interval, period string
		}{{p.annual, "year", "annual"}, {p.monthly, "month", "monthly"}} {
			pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: pp.amount, Interval: pp.interval, ProductName: p.name})
			if err != nil {
				return nil, err
			}
			w.prices = append(w.prices, pr.ID)
			w.info[pr.ID] = priceInfo{plan: p.name, period: pp.period}
		}
	}
	return w, nil
}

// priceEnv is the daemon's price mapping.
func (w *world) priceEnv() []string {
	var env []string
	for id, in := range w.info {
		period := map[string]string{"annual": "ANUAL", "monthly": "MENSAL"}[in.period]
		env = append(env, fmt.Sprintf("STRIPE_PRICE_%s_%s=%s", strings.ToUpper(in.plan), period, id))
	}
	sort.Strings(env)
	return env
}

// populate creates n users with one subscription each.
func (w *world) populate(n int) error {
	for i := range n {
		u := &chaosUser{id: fmt.Sprintf("user-%04d", i+1), inCustomer: w.rnd.IntN(10) < 3}
		w.users = append(w.users, u)
		if err := w.subscribe(u); err != nil {
			return err
		}
	}
	return nil
}

// subscribe gives u a new subscription (and a new customer when theirs was
// deleted): mostly active, some trialing, some awaiting their first payment,
// some already set to cancel at period end.
func (w *world) subscribe(u *chaosUser) error {
	if u.customer == "" {
		p := stripefake.CustomerParams{Email: u.id + "@example.com"}
		if u.inCustomer {
			p.Metadata = map[string]string{"user_id": u.id}
		}
		c, err := w.fake.CreateCustomer(p)
		if err != nil {
			return err
		}
		u.customer = c.ID
	}
	p := stripefake.SubscriptionParams{Customer: u.customer, Price: w.prices[w.rnd.IntN(len(w.prices))]}
	if !u.inCustomer {
		p.Metadata = map[string]string{"user_id": u.id}
	}
	switch r := w.rnd.IntN(20); {
	case r < 3:
		p.TrialPeriodDays = 14
	case r < 5:
		p.DefaultIncomplete = true
	case r < 7:
		p.CancelAtPeriodEnd = true
	}
	sub, err := w.fake.CreateSubscription(p)
	if err != nil {
		return err
	}
	u.subs = append(u.subs, sub.ID)
	w.owner[sub.ID] = u
	return nil
}

// change makes one change in Stripe, as a customer, an operator or Stripe's
// billing engine would, and returns its kind. A change the fake refuses is
// counted and another is tried.
func (w *world) change() (string, error) {
	for range 20 {
		u := w.users[w.rnd.IntN(len(w.users))]
		id := u.subs[len(u.subs)-1]
		sub, err := w.fake.Subscription(id)
		if err != nil {
			return "", err
		}
		kind := w.pick(u, sub)
		if err := w.apply(kind, u, sub); err != nil {
			w.refused++
			continue
		}
		w.ops[kind]++
		return kind, nil
	}
	return "", fmt.Errorf("the fake refused 20 changes in a row")
}

// pick chooses a change that suits the subscription's status.
func (w *world) pick(u *chaosUser, sub *stripe.Subscription) string {
	st := sub.Status
	if st == stripe.SubscriptionStatusCanceled || st == stripe.SubscriptionStatusIncompleteExpired {
		return "resubscribe"
	}
	type choice struct {
		kind   string
		weight int
	}
	choices := []choice{{"switch_plan", 14}, {"switch_period", 10}, {"toggle_cancel_at_period_end", 14}, {"cancel", 4}}
	switch st {
	case stripe.SubscriptionStatusPaused:
		choices = append(choices, choice{"resume", 30})
	case stripe.SubscriptionStatusIncomplete:
		choices = append(choices, choice{"renew", 25}, choice{"fail_payment", 8})
	default: // active, trialing, past_due
		choices = append(choices, choice{"renew", 22}, choice{"fail_payment", 10}, choice{"pause", 7})
	}
	if !u.inCustomer {
		choices = append(choices, choice{"delete_customer", 2})
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	n := w.rnd.IntN(total)
	for _, c := range choices {
		if n < c.weight {
			return c.kind
		}
		n -= c.weight
	}
	return choices[0].kind
}

func (w *world) apply(kind string, u *chaosUser, sub *stripe.Subscription) error {
	var err error
	cur := w.info[sub.Items.Data[0].Price.ID]
	switch kind {
	case "resubscribe":
		err = w.subscribe(u)
	case "switch_plan":
		err = w.switchPrice(sub.ID, func(in priceInfo) bool { return in.plan != cur.plan && in.period == cur.period })
	case "switch_period":
		err = w.switchPrice(sub.ID, func(in priceInfo) bool { return in.plan == cur.plan && in.period != cur.period })
	case "toggle_cancel_at_period_end":
		_, err = w.fake.SetCancelAtPeriodEnd(sub.ID, !sub.CancelAtPeriodEnd)
	case "cancel":
		_, err = w.fake.CancelSubscription(sub.ID)
	case "renew":
		_, err = w.fake.Renew(sub.ID)
	case "fail_payment":
		_, err = w.fake.FailPayment(sub.ID)
	case "pause":
		_, err = w.fake.Pause(sub.ID)
	case "resume":
		_, err = w.fake.Resume(sub.ID)
	case "delete_customer":
		err = w.fake.DeleteCustomer(u.customer)
		if err == nil {
			u.customer = ""
		}
	default:
		err = fmt.Errorf("unknown change %q", kind)
	}
	return err
}

func (w *world) switchPrice(subID string, want func(priceInfo) bool) error {
	var candidates []string
	for _, id := range w.prices {
		if want(w.info[id]) {
			candidates = append(candidates, id)
		}
	}
	_, err := w.fake.UpdateSubscriptionPrice(subID, candidates[w.rnd.IntN(len(candidates))])
	return err
}

// userIDs lists every user id.
func (w *world) userIDs() []string {
	ids := make([]string, len(w.users))
	for i, u := range w.users {
		ids[i] = u.id
	}
	return ids
}

// someUsers returns about a share of the user ids, at random.
func (w *world) someUsers(share float64) []string {
	var ids []string
	for _, u := range w.users {
		if w.rnd.Float64() < share {
			ids = append(ids, u.id)
		}
	}
	return ids
}

// expectedRow is what user_subscriptions must hold for a subscription.
type expectedRow struct {
	ID, User, Customer, Price, Plan, Period, Status string
	PeriodStart, PeriodEnd                          time.Time
	CancelAtPeriodEnd                               bool
	CanceledAt                                      *time.Time
}

// truth computes the expected rows from the fake's current state.
func (w *world) truth() map[string]expectedRow {
	out := map[string]expectedRow{}
	for _, sub := range w.fake.Subscriptions() {
		u := w.owner[sub.ID]
		price := sub.Items.Data[0].Price.ID
		in := w.info[price]
		r := expectedRow{
			ID: sub.ID, Price: price, Plan: in.plan, Period: in.period, Status: string(sub.Status),
			PeriodStart:       time.Unix(sub.CurrentPeriodStart, 0).UTC(),
			PeriodEnd:         time.Unix(sub.CurrentPeriodEnd, 0).UTC(),
			CancelAtPeriodEnd: sub.CancelAtPeriodEnd,
		}
		if u != nil {
			r.User = u.id
		}
		if sub.Customer != nil {
			r.Customer = sub.Customer.ID
		}
		if sub.CanceledAt != 0 {
			t := time.Unix(sub.CanceledAt, 0).UTC()
			r.CanceledAt = &t
		}
		out[sub.ID] = r
	}
	return out
}

// opSummary renders the changes made by kind, most frequent first.
func (w *world) opSummary() string {
	kinds := make([]string, 0, len(w.ops))
	for k := range w.ops {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if w.ops[a] != w.ops[b] {
			return w.ops[b] - w.ops[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, w.ops[k])
	}
	return strings.Join(parts, ", ")
}
