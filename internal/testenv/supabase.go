package testenv

import (
	"context"
	"database/sql"
	"net/url"
	"testing"
	"time"
)

// SupabaseOwner is the login role that owns the tables in a SupabaseLike
// database, as Supabase's postgres role does: no superuser, no BYPASSRLS.
const SupabaseOwner = "subsync_owner"

// supabaseSetup is what a new Supabase project holds before any migration:
// the anon, authenticated and service_role roles, auth.uid() and auth.jwt()
// reading the request's JWT claims, and default privileges that grant every
// future table, sequence and function in public to all three roles.
const supabaseSetup = `
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE ` + SupabaseOwner + ` LOGIN;
GRANT ALL ON SCHEMA public TO ` + SupabaseOwner + `;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
CREATE SCHEMA auth;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS
	$$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
	$$ SELECT nullif(auth.jwt() ->> 'sub', '')::uuid $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role, ` + SupabaseOwner + `;
ALTER DEFAULT PRIVILEGES FOR ROLE ` + SupabaseOwner + ` IN SCHEMA public
	GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE ` + SupabaseOwner + ` IN SCHEMA public
	GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE ` + SupabaseOwner + ` IN SCHEMA public
	GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
`

// Supabase is a throwaway Postgres cluster set up the way Supabase sets up
// a project's database.
type Supabase struct {
	*Postgres
}

// StartSupabaseLike starts a cluster of its own (roles are cluster-wide, so
// the shared server is not used) and prepares it as a new Supabase project:
// roles anon, authenticated and service_role (BYPASSRLS), the auth schema's
// uid() and jwt(), a table-owning login role SupabaseOwner, and Supabase's
// default privileges granting every table, sequence and function the owner
// creates in public to the three roles.
func StartSupabaseLike(t testing.TB) *Supabase {
	t.Helper()
	pg := StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("postgres", pg.URL())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, supabaseSetup); err != nil {
		t.Fatalf("testenv: prepare the Supabase-like database: %v", err)
	}
	return &Supabase{Postgres: pg}
}

// OwnerURL is the URL of the cluster's postgres database as SupabaseOwner,
// the role subsyncd connects as.
func (s *Supabase) OwnerURL() string {
	u, err := url.Parse(s.URL())
	if err != nil {
		panic(err) // URL is built by this package
	}
	u.User = url.User(SupabaseOwner)
	return u.String()
}
