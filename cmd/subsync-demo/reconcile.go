package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// reconcile runs subsyncd reconcile three times, dry, for real, dry, and
// checks each outcome in the database and against Stripe.
func (d *demo) reconcile(ctx context.Context, bin string) error {
	d.say("first a dry run: report the drift, change nothing (the events job lists the events the inbox")
	d.say("lacks; the subscriptions job compares every Stripe subscription with its row)")
	before, err := d.rows(ctx)
	if err != nil {
		return err
	}
	if err := d.runSubsyncd(ctx, bin, "reconcile-dry-run-1", "reconcile", "--dry-run"); err != nil {
		return err
	}
	after, err := d.rows(ctx)
	if err != nil {
		return err
	}
	if !slices.Equal(before, after) {
		return errors.New("reconcile --dry-run changed user_subscriptions")
	}
	subs, err := d.lastRun(ctx, "subscriptions", true)
	if err != nil {
		return err
	}
	// Three switches, two cancellations, one cancel_at_period_end, three
	// corrupted rows, one deleted, one ghost; plus any subscription whose
	// webhooks were all dropped.
	if subs.drifted < 11 {
		return fmt.Errorf("the dry run found %d drifted subscriptions, want at least 11", subs.drifted)
	}
	d.say("→ nothing changed in user_subscriptions")

	fmt.Fprintln(d.out)
	d.say("now repair it: the events job applies the missed events, the sweep rewrites what still differs")
	if err := d.runSubsyncd(ctx, bin, "reconcile", "reconcile"); err != nil {
		return err
	}
	mismatches, err := d.compareWithStripe(ctx)
	if err != nil {
		return err
	}
	if len(mismatches) > 0 {
		return fmt.Errorf("after reconcile the table still differs from Stripe:\n  %s", strings.Join(mismatches, "\n  "))
	}
	d.say("→ every Stripe subscription has its row, equal to Stripe (checked field by field)")

	fmt.Fprintln(d.out)
	d.say("and a dry run again:")
	if err := d.runSubsyncd(ctx, bin, "reconcile-dry-run-2", "reconcile", "--dry-run"); err != nil {
		return err
	}
	events, err := d.lastRun(ctx, "events", true)
	if err != nil {
		return err
	}
	if subs, err = d.lastRun(ctx, "subscriptions", true); err != nil {
		return err
	}
	if events.drifted != 0 || events.status != "succeeded" {
		return fmt.Errorf("the last events dry run: %s with %d drifted, want succeeded with 0", events.status, events.drifted)
	}
	want := []string{d.ghostID + " missing_in_stripe"}
	if subs.status != "succeeded" || subs.drifted != 1 || !slices.Equal(subs.drift, want) {
		return fmt.Errorf("the last subscriptions dry run: %s, drifted %d %v; want succeeded, drifted 1 %v",
			subs.status, subs.drifted, subs.drift, want)
	}
	d.say("→ no drift left: the one line is the made-up row %s. Stripe does not", d.ghostID)
	d.say("  know it, and subsyncd reports such a row as missing_in_stripe on every sweep but never")
	d.say("  deletes it, by design: Stripe never deletes a subscription, so the row belongs to another")
	d.say("  account or mode, or was made up, and an operator decides")
	return nil
}

// runInfo is one reconcile_runs row and its drift.
type runInfo struct {
	status  string
	drifted int
	drift   []string // "sub_… field", in id order
}

// lastRun reads the newest run of job with the given dry_run.
func (d *demo) lastRun(ctx context.Context, job string, dry bool) (runInfo, error) {
	var r runInfo
	var id int64
	err := d.db.QueryRowContext(ctx, `SELECT id, status, drifted FROM reconcile_runs
		WHERE job = $1 AND dry_run = $2 ORDER BY id DESC LIMIT 1`, job, dry).Scan(&id, &r.status, &r.drifted)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("no %s run (dry_run %t) in reconcile_runs", job, dry)
	}
	if err != nil {
		return r, fmt.Errorf("read reconcile_runs: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT stripe_subscription_id, field FROM subscription_drift
		WHERE run_id = $1 ORDER BY stripe_subscription_id, field`, id)
	if err != nil {
		return r, fmt.Errorf("read subscription_drift: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sub, field string
		if err := rows.Scan(&sub, &field); err != nil {
			return r, err
		}
		r.drift = append(r.drift, sub+" "+field)
	}
	return r, rows.Err()
}

// compareWithStripe checks every Stripe subscription against its row (user,
// customer, price, plan, period, status, cancel_at_period_end) and that the
// only other row is the ghost; it returns the differences.
func (d *demo) compareWithStripe(ctx context.Context) ([]string, error) {
	rows, err := d.rows(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]row{}
	for _, r := range rows {
		byID[r.id] = r
	}
	var diffs []string
	for _, s := range d.fake.Subscriptions() {
		r, ok := byID[s.ID]
		if !ok {
			diffs = append(diffs, s.ID+": no row")
			continue
		}
		delete(byID, s.ID)
		p, _ := d.price(s.Items.Data[0].Price.ID)
		want := row{
			id: s.ID, user: s.Metadata["user_id"], customer: s.Customer.ID, price: p.ID, plan: p.Plan.Key,
			period: p.billingPeriod(), status: string(s.Status), cancelAtPeriodEnd: s.CancelAtPeriodEnd,
		}
		if r != want {
			diffs = append(diffs, fmt.Sprintf("%s: row %+v, Stripe %+v", s.ID, r, want))
		}
	}
	for id := range byID {
		if id != d.ghostID {
			diffs = append(diffs, id+": row for a subscription Stripe does not know")
		}
	}
	if _, ok := byID[d.ghostID]; !ok {
		diffs = append(diffs, d.ghostID+": the made-up row is gone (subsyncd must keep it)")
	}
	return diffs, nil
}
