package db_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
)

func openMigrated(t *testing.T, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return d
}

func rlsEnabled(t *testing.T, x *sqlx.DB, table string) bool {
	t.Helper()
	var on bool
	if err := x.Get(&on, `SELECT relrowsecurity FROM pg_class WHERE relname = $1`, table); err != nil {
		t.Fatal(err)
	}
	return on
}

func TestSupabaseMigrationDoesNothingOnPlainPostgres(t *testing.T) {
	// A cluster of its own: the shared one may carry Supabase-like roles
	// created by the test below.
	pg := testenv.StartPostgres(t)
	d := openMigrated(t, pg.URL())
	for _, table := range db.Tables {
		if rlsEnabled(t, d.X(), table) {
			t.Errorf("row-level security enabled on %s without Supabase roles", table)
		}
	}
	if err := d.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSupabaseMigrationProtectsRows(t *testing.T) {
	// Roles, auth functions and default privileges as on a Supabase project;
	// subsyncd connects as the role owning the tables.
	supa := testenv.StartSupabaseLike(t)
	x := sqlx.MustConnect("postgres", supa.URL())
	defer x.Close()
	d := openMigrated(t, supa.OwnerURL())
	for _, table := range []string{"user_subscriptions", "stripe_webhook_events"} {
		if !rlsEnabled(t, d.X(), table) {
			t.Fatalf("row-level security not enabled on %s", table)
		}
	}
	const alice, bob = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	x.MustExec(`INSERT INTO user_subscriptions (stripe_subscription_id, user_id, stripe_customer_id, billing_period, status, stripe_state_at)
		VALUES ('sub_a', $1, 'cus_a', 'annual', 'active', now()), ('sub_b', $2, 'cus_b', 'monthly', 'active', now())`, alice, bob)
	x.MustExec(`INSERT INTO stripe_webhook_events (id, type, stripe_created_at, payload) VALUES ('evt_1', 'invoice.paid', now(), '{}')`)

	count := func(claims, query string) int {
		t.Helper()
		tx := x.MustBegin()
		defer tx.Rollback()
		tx.MustExec(`SET LOCAL ROLE authenticated`)
		tx.MustExec(`SELECT set_config('request.jwt.claims', $1, true)`, claims)
		var n int
		if err := tx.Get(&n, query); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`{"sub":"`+alice+`"}`, `SELECT count(*) FROM user_subscriptions`); n != 1 {
		t.Fatalf("alice sees %d subscription rows, want only her own", n)
	}
	if n := count(`{"sub":"`+alice+`"}`, `SELECT count(*) FROM stripe_webhook_events`); n != 0 {
		t.Fatalf("a non-admin sees %d events", n)
	}
	if n := count(`{"sub":"`+bob+`","app_metadata":{"role":"admin"}}`, `SELECT count(*) FROM stripe_webhook_events`); n != 1 {
		t.Fatalf("an admin sees %d events, want 1", n)
	}
	tx := x.MustBegin()
	defer tx.Rollback()
	tx.MustExec(`SET LOCAL ROLE authenticated`)
	if _, err := tx.Exec(`INSERT INTO stripe_webhook_events (id, type, stripe_created_at, payload) VALUES ('evt_2', 'x', now(), '{}')`); err == nil {
		t.Fatal("an authenticated user inserted an event")
	}
}
