package db_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

func openMigrated(t *testing.T, url string) *db.DB {
	t.Helper()
	return openMigratedWith(t, db.Config{URL: url})
}

// openMigratedWith is openMigrated with a configuration of its own.
func openMigratedWith(t *testing.T, cfg db.Config) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), cfg)
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
	// A role that does not own the tables runs subsyncd with its table
	// privileges alone: the lock function stays callable by every role.
	rt := runtimeRole(t, d.X(), pg.URL())
	if err := rt.Ready(context.Background()); err != nil {
		t.Fatalf("a runtime role with table privileges: %v", err)
	}
	if _, err := rt.UpsertSubscription(context.Background(), runtimeRow()); err != nil {
		t.Fatalf("a runtime role with table privileges cannot write: %v", err)
	}
}

// runtimeRole creates a login role that does not own the tables, granted
// what a role running subsyncd after the owner migrated needs on them, and
// opens the database (of url, a superuser's) as that role.
func runtimeRole(t *testing.T, super *sqlx.DB, rawURL string) *db.DB {
	t.Helper()
	for _, stmt := range []string{
		`CREATE ROLE subsync_runtime LOGIN`,
		`GRANT USAGE ON SCHEMA public TO subsync_runtime`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO subsync_runtime`,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO subsync_runtime`,
	} {
		if _, err := super.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("subsync_runtime")
	d, err := db.Open(context.Background(), db.Config{URL: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func runtimeRow() reconcile.Subscription {
	return reconcile.Subscription{StripeSubscriptionID: "sub_runtime", StripeCustomerID: "cus_runtime",
		BillingPeriod: reconcile.PeriodMonthly, Status: "active", StripeStateAt: time.Now().UTC()}
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
	_ = tx.Rollback()

	// Here the lock function is closed to PUBLIC too: a runtime role that
	// does not own the tables is told what to grant, and writes once granted.
	rt := runtimeRole(t, x, supa.URL())
	x.MustExec(`ALTER ROLE subsync_runtime BYPASSRLS`) // as service_role: the tables' rows are behind row-level security
	const grant = `GRANT EXECUTE ON FUNCTION subsync_lock_subscriptions(text[], text[], boolean) TO "subsync_runtime"`
	if err := rt.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), grant) {
		t.Fatalf("Ready for a runtime role without the function: %v, want it to say %q", err, grant)
	}
	x.MustExec(grant)
	if err := rt.Ready(context.Background()); err != nil {
		t.Fatalf("after the grant: %v", err)
	}
	if _, err := rt.UpsertSubscription(context.Background(), runtimeRow()); err != nil {
		t.Fatalf("a granted runtime role cannot write: %v", err)
	}
}
