package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
)

// createDatabase creates the demo database on the server of adminURL and
// opens a pool on it.
func (d *demo) createDatabase(ctx context.Context) error {
	u, err := url.Parse(d.cfg.adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("%w: -database-url must be a postgres:// URL", errUsage)
	}
	admin, err := openDB(ctx, d.cfg.adminURL)
	if err != nil {
		return fmt.Errorf("postgres at %s does not answer: %w (run `make demo`, which starts one, or set TEST_DATABASE_URL)",
			u.Redacted(), err)
	}
	defer admin.Close()
	for {
		_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(d.cfg.dbName)+" TEMPLATE template0")
		var pqErr *pq.Error
		if err == nil || !errors.As(err, &pqErr) || pqErr.Code != "55006" { // template busy: retry
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("create database %s on %s: %w", d.cfg.dbName, u.Redacted(), err)
	}
	u.Path = "/" + d.cfg.dbName
	d.dbURL = u.String()
	if d.db, err = openDB(ctx, d.dbURL); err != nil {
		return err
	}
	d.say("created database %s on %s (dropped at the end)", d.cfg.dbName, u.Host)
	return nil
}

// dropDatabase drops the demo database, disconnecting whoever is left; it
// does nothing when the database was never created.
func (d *demo) dropDatabase() error {
	if d.dbURL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := openDB(ctx, d.cfg.adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", d.cfg.dbName, err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(d.cfg.dbName)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.cfg.dbName, err)
	}
	d.dbURL = ""
	return nil
}

func openDB(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// counts maps a status to a number of rows.
type counts map[string]int

func (c counts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// String reads "120 applied, 60 ignored" in a stable order.
func (c counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c[a] != c[b] {
			return c[b] - c[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", c[k], k)
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ")
}

// inboxCounts counts stripe_webhook_events by status; before subsyncd has
// migrated the database it returns no counts.
func (d *demo) inboxCounts(ctx context.Context) (counts, error) {
	return d.groupCount(ctx, "SELECT status, count(*) FROM stripe_webhook_events GROUP BY status")
}

func (d *demo) groupCount(ctx context.Context, query string) (counts, error) {
	rows, err := d.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	defer rows.Close()
	c := counts{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		c[k] = n
	}
	return c, rows.Err()
}

func (d *demo) rowCount(ctx context.Context) (int, error) {
	var n int
	err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM user_subscriptions").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count user_subscriptions: %w", err)
	}
	return n, nil
}

// row is the part of a user_subscriptions row the demo shows and checks.
type row struct {
	id, user, customer, price, plan, period, status string
	cancelAtPeriodEnd                               bool
}

// rows reads the whole table, ordered by user number.
func (d *demo) rows(ctx context.Context) ([]row, error) {
	rs, err := d.db.QueryContext(ctx, `
		SELECT stripe_subscription_id, coalesce(user_id, ''), stripe_customer_id, coalesce(stripe_price_id, ''),
		       coalesce(plan_id, ''), billing_period, status, cancel_at_period_end
		FROM user_subscriptions
		ORDER BY nullif(regexp_replace(coalesce(user_id, ''), '\D', '', 'g'), '')::bigint NULLS LAST,
		         user_id, stripe_subscription_id`)
	if err != nil {
		return nil, fmt.Errorf("read user_subscriptions: %w", err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.user, &r.customer, &r.price, &r.plan, &r.period, &r.status, &r.cancelAtPeriodEnd); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// corruptRows damages the table behind subsyncd's back: a wrong plan, a
// wrong billing period, a wrong status, a deleted row and a row for a
// subscription Stripe does not know.
func (d *demo) corruptRows(ctx context.Context) error {
	rows, err := d.rows(ctx)
	if err != nil {
		return err
	}
	// pick returns an untouched active row that ok accepts.
	pick := func(ok func(row) bool) (row, error) {
		for _, r := range rows {
			if !d.touched[r.id] && r.status == "active" && ok(r) {
				d.touched[r.id] = true
				return r, nil
			}
		}
		return row{}, errors.New("no row left to corrupt")
	}
	anyRow := func(row) bool { return true }
	exec := func(query string, args ...any) error {
		res, err := d.db.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("corrupt a row: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("corrupt a row: %d rows changed, want 1", n)
		}
		return nil
	}

	fmt.Fprintln(d.out)
	d.say("in user_subscriptions, by hand (psql):")
	r, err := pick(func(r row) bool { return r.plan == "consultor_agil" })
	if err != nil {
		return err
	}
	if err := exec(`UPDATE user_subscriptions SET plan_id = 'sala_de_guerra' WHERE stripe_subscription_id = $1`, r.id); err != nil {
		return err
	}
	d.say("  %s  %-10s plan_id consultor_agil → sala_de_guerra (a free upgrade)", r.id, r.user)

	if r, err = pick(func(r row) bool { return r.period == "monthly" }); err != nil {
		return err
	}
	if err := exec(`UPDATE user_subscriptions SET billing_period = 'annual' WHERE stripe_subscription_id = $1`, r.id); err != nil {
		return err
	}
	d.say("  %s  %-10s billing_period monthly → annual", r.id, r.user)

	if r, err = pick(anyRow); err != nil {
		return err
	}
	if err := exec(`UPDATE user_subscriptions SET status = 'canceled', canceled_at = now() WHERE stripe_subscription_id = $1`, r.id); err != nil {
		return err
	}
	d.say("  %s  %-10s status active → canceled (a paying user locked out)", r.id, r.user)

	if r, err = pick(anyRow); err != nil {
		return err
	}
	if err := exec(`DELETE FROM user_subscriptions WHERE stripe_subscription_id = $1`, r.id); err != nil {
		return err
	}
	d.say("  %s  %-10s row deleted", r.id, r.user)

	d.ghostID = "sub_demoGhost" + randomHex(8)[:15] // as long as a real id
	p := d.priceOf("maquina", "ANUAL")
	if err := exec(`INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id, stripe_price_id,
			plan_id, billing_period, status, current_period_start, current_period_end, stripe_state_at)
		VALUES ($1, 'user_ghost', 'cus_demoGhost', $2, 'maquina', 'annual', 'active', now(), now() + interval '1 year', now())`,
		d.ghostID, p.ID); err != nil {
		return err
	}
	d.say("  %s  %-10s row inserted for a subscription Stripe does not know", d.ghostID, "user_ghost")
	return nil
}

// jsonOf marshals v.
func jsonOf(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	return b, nil
}
