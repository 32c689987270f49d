package db

import (
	"context"
	"fmt"

	"github.com/lib/pq"
)

// VersionTable is the table in which goose records the applied migrations.
const VersionTable = "goose_db_version"

// Tables are the tables subsync's migrations create, the migrations' version
// table included. A migration that creates a table adds it here, and closes
// it to Supabase's anon and authenticated roles as 00011 does.
var Tables = []string{
	"user_subscriptions",
	"stripe_webhook_events",
	"reconcile_runs",
	"subscription_drift",
	"reconcile_cursors",
	"cache_invalidations",
	VersionTable,
}

// DataAPIRoles are the roles through which Supabase's Data API serves a
// request: anon for anyone holding the public key, authenticated for any
// signed-in user.
var DataAPIRoles = []string{"anon", "authenticated"}

// Exposure is one subsync table that a Data API role can reach.
type Exposure struct {
	Table      string
	Role       string
	Privileges []string // SELECT, INSERT, UPDATE, DELETE, TRUNCATE granted
	RLS        bool     // row-level security on: rows pass only through a policy
	Policies   []string // policies that apply to the role (to it or to PUBLIC)
}

// Open reports whether the role reaches rows without a policy deciding
// which: a privilege on a table whose row-level security is off, or
// TRUNCATE, which row-level security does not restrict.
func (e Exposure) Open() bool {
	for _, p := range e.Privileges {
		if !e.RLS || p == "TRUNCATE" {
			return true
		}
	}
	return false
}

// DataAPIExposure lists, for each of Tables in the connection's current
// schema and each of DataAPIRoles that exists, the privileges the role holds
// and whether row-level security and policies stand between it and the
// rows. found is false when none of the roles exists (not a Supabase
// database); the list then is empty.
func (d *DB) DataAPIExposure(ctx context.Context) (found bool, exp []Exposure, err error) {
	const q = `
WITH roles AS (
    SELECT oid, rolname FROM pg_roles WHERE rolname = ANY($2)
), tabs AS (
    SELECT c.oid, c.relname, c.relrowsecurity, n.nspname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname = ANY($1) AND c.relkind IN ('r', 'p')
)
SELECT t.relname, r.rolname, t.relrowsecurity,
       array_remove(ARRAY[
           CASE WHEN has_table_privilege(r.oid, t.oid, 'SELECT') THEN 'SELECT' END,
           CASE WHEN has_table_privilege(r.oid, t.oid, 'INSERT') THEN 'INSERT' END,
           CASE WHEN has_table_privilege(r.oid, t.oid, 'UPDATE') THEN 'UPDATE' END,
           CASE WHEN has_table_privilege(r.oid, t.oid, 'DELETE') THEN 'DELETE' END,
           CASE WHEN has_table_privilege(r.oid, t.oid, 'TRUNCATE') THEN 'TRUNCATE' END
       ], NULL) AS privileges,
       ARRAY(SELECT p.polname::text FROM pg_policy p
             WHERE p.polrelid = t.oid AND (0 = ANY (p.polroles) OR r.oid = ANY (p.polroles))
             ORDER BY p.polname) AS policies
FROM tabs t CROSS JOIN roles r
WHERE has_schema_privilege(r.oid, t.nspname, 'USAGE')
ORDER BY array_position($1, t.relname::text), array_position($2, r.rolname::text)`
	var roles int
	err = d.x.GetContext(ctx, &roles, `SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)`, pq.Array(DataAPIRoles))
	if err := d.observe("data_api_exposure", err); err != nil {
		return false, nil, fmt.Errorf("look up Data API roles: %w", err)
	}
	if roles == 0 {
		return false, nil, nil
	}
	rows, err := d.x.QueryContext(ctx, q, pq.Array(Tables), pq.Array(DataAPIRoles))
	if err := d.observe("data_api_exposure", err); err != nil {
		return true, nil, fmt.Errorf("read table privileges: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Exposure
		if err := rows.Scan(&e.Table, &e.Role, &e.RLS, pq.Array(&e.Privileges), pq.Array(&e.Policies)); err != nil {
			return true, nil, fmt.Errorf("read table privileges: %w", err)
		}
		if len(e.Privileges) > 0 {
			exp = append(exp, e)
		}
	}
	if err := rows.Err(); err != nil {
		return true, nil, fmt.Errorf("read table privileges: %w", err)
	}
	return true, exp, nil
}
