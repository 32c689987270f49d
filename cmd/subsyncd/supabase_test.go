package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
)

// supaIdentity is who a Data API request runs as: a role and the JWT claims
// Supabase puts in request.jwt.claims.
type supaIdentity struct {
	name, role, claims string
}

const supaAlice = "11111111-1111-1111-1111-111111111111"

var (
	supaAnon     = supaIdentity{"anon (public key, no sign-in)", "anon", ""}
	supaSignedIn = supaIdentity{"a signed-in user", "authenticated", `{"sub":"` + supaAlice + `"}`}
	supaAdmin    = supaIdentity{"an admin", "authenticated", `{"sub":"` + supaAlice + `","app_metadata":{"role":"admin"}}`}
)

// as runs fn in a transaction (rolled back) as id, the way PostgREST does.
func (id supaIdentity) as(t *testing.T, x *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	t.Helper()
	tx := x.MustBegin()
	defer tx.Rollback()
	tx.MustExec(`SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, id.role, id.claims)
	return fn(tx)
}

// denied reports whether err is Postgres's insufficient_privilege, which is
// both "permission denied" and a row-level security WITH CHECK violation.
func denied(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "42501"
}

// On a database set up the way Supabase sets one up (roles, auth functions
// and the default privileges that grant every new table to anon and
// authenticated), after migrate, a reconcile run and a served webhook with
// the cache outbox, every table subsync created is closed to anon and to a
// signed-in user: no read, insert, update, delete or truncate; a user reads
// only their own user_subscriptions rows and an admin reads the events. The
// daemon itself, connected as the owning role, keeps working; check says
// the tables are closed, and fails once one is opened.
func TestSupabaseTablesClosedToDataAPI(t *testing.T) {
	t.Parallel()
	supa := testenv.StartSupabaseLike(t)
	super := sqlx.MustConnect("postgres", supa.URL())
	t.Cleanup(func() { super.Close() })

	e := newRecEnv(t)
	e.seed(t, 6)
	const secret = "whsec_supabase"
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	prefix := cacheTestID("supa_")
	env := append(slices.Clone(e.env),
		"DATABASE_URL="+supa.OwnerURL(),
		"STRIPE_WEBHOOK_SECRET="+secret,
		"REDIS_URL="+testenv.RedisURL(t),
		"CACHE_KEY_TEMPLATE="+prefix+":{user_id}",
		"WEBHOOK_APPLY_MODE=payload",
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
		"LISTEN_ADDR="+listen,
		fmt.Sprintf("METRICS_ADDR=127.0.0.1:%d", testenv.FreePort(t)),
	)
	cli := func(args ...string) (string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, env, &out, &errOut)
		code := exitCode(err, &errOut)
		return out.String() + errOut.String(), code
	}
	for _, args := range [][]string{{"migrate"}, {"reconcile", "--job", "all"}} {
		if out, code := cli(args...); code != 0 {
			t.Fatalf("subsyncd %s as the owner: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}

	// serve: a webhook for alice's subscription, applied, its cache key deleted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.Buffer
	served := make(chan error, 1)
	go func() { served <- run(ctx, []string{"serve"}, env, io.Discard, &logs) }()
	testenv.WaitTCP(t, listen, 30*time.Second)
	body, sig := cacheTestEvent(t, secret, "customer.subscription.created", cacheTestID("sub_"), supaAlice, e.monthly, time.Now().Add(-time.Minute))
	req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook as the owner: %d %s", resp.StatusCode, answer)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var done int
		super.Get(&done, `SELECT count(*) FROM cache_invalidations WHERE user_id = $1 AND status = 'done'`, supaAlice)
		if done == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the invalidation of alice's cache key was not delivered within 30s; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve as the owner: %v\n%s", err, logs.String())
	}

	// Nothing else the Data API could serve: a view runs as its owner, past
	// row-level security, and a function is callable through /rpc unless
	// neither role may execute it.
	var others []string
	if err := super.Select(&others, `
		SELECT relname || ' (relkind ' || relkind::text || ')' FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relkind IN ('v', 'm', 'f')
		UNION ALL
		SELECT p.proname || '() executable by ' || r.rolname FROM pg_proc p CROSS JOIN pg_roles r
		WHERE p.pronamespace = 'public'::regnamespace AND r.rolname IN ('anon', 'authenticated')
		  AND has_function_privilege(r.oid, p.oid, 'EXECUTE')`); err != nil {
		t.Fatal(err)
	}
	if len(others) > 0 {
		t.Fatalf("the migrations left views, or functions anon or authenticated may call, in public: %v", others)
	}
	var functions int
	if err := super.Get(&functions, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace`); err != nil || functions == 0 {
		t.Fatalf("%d functions in public (%v): the check above has nothing to check", functions, err)
	}

	// Every table in the schema, not only the ones subsync knows about today.
	var tables []string
	if err := super.Select(&tables, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`); err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values(db.Tables)); !slices.Equal(tables, want) {
		t.Fatalf("tables after migrating: %v; db.Tables (what check inspects) lists %v", tables, want)
	}
	for _, tbl := range tables {
		var rows int
		super.Get(&rows, `SELECT count(*) FROM `+pq.QuoteIdentifier(tbl))
		if rows == 0 {
			t.Fatalf("%s is empty after reconcile and serve: fill it here so its protection is proved on rows", tbl)
		}
		for _, id := range []supaIdentity{supaAnon, supaSignedIn} {
			t.Run(tbl+"/"+id.role, func(t *testing.T) { supaProbeTable(t, super, id, tbl) })
		}
	}

	// Alice reads exactly her own row; an admin reads every event.
	var aliceRows, events int
	super.Get(&aliceRows, `SELECT count(*) FROM user_subscriptions WHERE user_id = $1`, supaAlice)
	super.Get(&events, `SELECT count(*) FROM stripe_webhook_events`)
	for _, c := range []struct {
		id    supaIdentity
		query string
		want  int
	}{
		{supaSignedIn, `SELECT count(*) FROM user_subscriptions`, aliceRows},
		{supaSignedIn, `SELECT count(*) FROM user_subscriptions WHERE user_id <> '` + supaAlice + `'`, 0},
		{supaAdmin, `SELECT count(*) FROM stripe_webhook_events`, events},
	} {
		var n int
		if err := c.id.as(t, super, func(tx *sqlx.Tx) error { return tx.Get(&n, c.query) }); err != nil || n != c.want {
			t.Errorf("%s: %s = %d, %v; want %d", c.id.name, c.query, n, err, c.want)
		}
	}
	if aliceRows != 1 {
		t.Fatalf("alice has %d rows, want 1", aliceRows)
	}

	// Sequences: no nextval/setval for the Data API roles either.
	var seqs []string
	super.Select(&seqs, `SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'`)
	for _, s := range seqs {
		for _, role := range db.DataAPIRoles {
			var usable bool
			super.Get(&usable, `SELECT has_sequence_privilege($1, $2, 'USAGE') OR has_sequence_privilege($1, $2, 'UPDATE')`, role, s)
			if usable {
				t.Errorf("%s can use sequence %s", role, s)
			}
		}
	}

	out, code := cli("check")
	if code != 0 || !strings.Contains(out, "ok    supabase  anon and authenticated reach no subsync table except by policy") {
		t.Fatalf("check on the closed database: exit %d\n%s", code, out)
	}
	super.MustExec(`ALTER TABLE reconcile_runs DISABLE ROW LEVEL SECURITY; GRANT SELECT ON reconcile_runs TO anon`)
	out, code = cli("check")
	if code != 1 || !strings.Contains(out, "FAIL  supabase  reconcile_runs: anon can SELECT (row-level security off)") {
		t.Fatalf("check with reconcile_runs opened to anon: exit %d, want 1 and a FAIL line\n%s", code, out)
	}
}

// supaProbeTable tries every kind of access to tbl as id: a read sees no row
// (or is refused), an insert of a copy of a stored row is refused, updates
// and deletes touch no row (or are refused), truncate is refused.
func supaProbeTable(t *testing.T, super *sqlx.DB, id supaIdentity, tbl string) {
	q := pq.QuoteIdentifier(tbl)
	var row string
	if err := super.Get(&row, `SELECT to_jsonb(t)::text FROM `+q+` t LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	var col string
	if err := super.Get(&col, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND is_identity = 'NO' AND is_generated = 'NEVER'
		ORDER BY ordinal_position LIMIT 1`, tbl); err != nil {
		t.Fatal(err)
	}
	c := pq.QuoteIdentifier(col)
	read := `SELECT count(*) FROM ` + q
	if id.role == "authenticated" && tbl == "user_subscriptions" {
		read += ` WHERE user_id IS DISTINCT FROM '` + supaAlice + `'` // her own rows are hers to read
	}
	var n int
	err := id.as(t, super, func(tx *sqlx.Tx) error { return tx.Get(&n, read) })
	if err != nil && !denied(err) || err == nil && n != 0 {
		t.Errorf("%s: %s = %d (err %v), want 0 or permission denied", id.name, read, n, err)
	}
	err = id.as(t, super, func(tx *sqlx.Tx) error {
		_, err := tx.Exec(`INSERT INTO `+q+` OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_record(NULL::`+q+`, $1)`, row)
		return err
	})
	if !denied(err) {
		t.Errorf("%s inserting into %s: %v, want permission denied", id.name, tbl, err)
	}
	for _, stmt := range []string{`UPDATE ` + q + ` SET ` + c + ` = ` + c, `DELETE FROM ` + q} {
		var affected int64
		err := id.as(t, super, func(tx *sqlx.Tx) error {
			res, err := tx.Exec(stmt)
			if err == nil {
				affected, _ = res.RowsAffected()
			}
			return err
		})
		if err != nil && !denied(err) || err == nil && affected != 0 {
			t.Errorf("%s: %s changed %d rows (err %v)", id.name, stmt, affected, err)
		}
	}
	err = id.as(t, super, func(tx *sqlx.Tx) error { _, err := tx.Exec(`TRUNCATE ` + q); return err })
	if !denied(err) {
		t.Errorf("%s truncating %s: %v, want permission denied", id.name, tbl, err)
	}
}
