package chaos

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// dbRow is a row of user_subscriptions as the checks read it.
type dbRow struct {
	ID                string     `db:"stripe_subscription_id"`
	User              *string    `db:"user_id"`
	Customer          string     `db:"stripe_customer_id"`
	Price             *string    `db:"stripe_price_id"`
	Plan              *string    `db:"plan_id"`
	Period            string     `db:"billing_period"`
	Status            string     `db:"status"`
	PeriodStart       *time.Time `db:"current_period_start"`
	PeriodEnd         *time.Time `db:"current_period_end"`
	CancelAtPeriodEnd bool       `db:"cancel_at_period_end"`
	CanceledAt        *time.Time `db:"canceled_at"`
}

// compareRows returns one line per field where the table differs from the
// fake's truth, plus rows missing on either side.
func compareRows(ctx context.Context, x *sqlx.DB, truth map[string]expectedRow) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rows []dbRow
	if err := x.SelectContext(ctx, &rows, `SELECT stripe_subscription_id, user_id, stripe_customer_id,
		stripe_price_id, plan_id, billing_period, status, current_period_start, current_period_end,
		cancel_at_period_end, canceled_at FROM user_subscriptions`); err != nil {
		return nil, fmt.Errorf("read user_subscriptions: %w", err)
	}
	var diffs []string
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.ID] = true
		want, ok := truth[r.ID]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: row for a subscription Stripe does not have", r.ID))
			continue
		}
		field := func(name, got, want string) {
			if got != want {
				diffs = append(diffs, fmt.Sprintf("%s %s: table %q, Stripe %q", r.ID, name, got, want))
			}
		}
		field("status", r.Status, want.Status)
		field("stripe_price_id", deref(r.Price), want.Price)
		field("plan_id", deref(r.Plan), want.Plan)
		field("billing_period", r.Period, want.Period)
		field("current_period_start", tstr(r.PeriodStart), tstr(&want.PeriodStart))
		field("current_period_end", tstr(r.PeriodEnd), tstr(&want.PeriodEnd))
		field("cancel_at_period_end", fmt.Sprint(r.CancelAtPeriodEnd), fmt.Sprint(want.CancelAtPeriodEnd))
		field("canceled_at", tstr(r.CanceledAt), tstr(want.CanceledAt))
		field("stripe_customer_id", r.Customer, want.Customer)
		field("user_id", deref(r.User), want.User)
	}
	for id := range truth {
		if !seen[id] {
			diffs = append(diffs, fmt.Sprintf("%s: no row (Stripe status %s)", id, truth[id].Status))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

// missingEvents returns the event ids of ids that are not in
// stripe_webhook_events.
func missingEvents(ctx context.Context, x *sqlx.DB, ids []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var missing []string
	err := x.SelectContext(ctx, &missing, `SELECT id FROM unnest($1::text[]) AS a(id)
		WHERE NOT EXISTS (SELECT 1 FROM stripe_webhook_events e WHERE e.id = a.id) ORDER BY id`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("look up events: %w", err)
	}
	return missing, nil
}

// count runs a count(*) query.
func count(ctx context.Context, x *sqlx.DB, query string, args ...any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var n int
	err := x.GetContext(ctx, &n, query, args...)
	return n, err
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func tstr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
