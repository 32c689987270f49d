package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/subsync/subsync/db"
)

// migratedDB opens a database of MigratedURL through the db package.
func migratedDB(t *testing.T) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{URL: MigratedURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestMigratedDBIsCurrentAndOwn(t *testing.T) {
	t.Parallel()
	a, b := migratedDB(t), migratedDB(t)
	if a.URL() == b.URL() {
		t.Fatalf("two tests share the database %s", redactURL(a.URL()))
	}
	for _, d := range []*db.DB{a, b} {
		if err := d.Ready(context.Background()); err != nil {
			t.Fatalf("not migrated: %v", err)
		}
	}
	if _, err := a.X().Exec(`INSERT INTO user_subscriptions (stripe_subscription_id, stripe_customer_id, billing_period, status, stripe_state_at)
		VALUES ('sub_own', 'cus_own', 'monthly', 'active', now())`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.X().Get(&n, `SELECT count(*) FROM user_subscriptions`); err != nil || n != 0 {
		t.Fatalf("the other database holds %d rows (%v), want 0", n, err)
	}
}

// TestSharedServersStartedWhenNoneAnswers runs this test again in a child
// process with no server to find (TEST_*_URL unset, the default addresses
// pointed at a closed port): the child starts a throwaway Postgres and
// Redis and uses them; once it has exited, both are gone.
func TestSharedServersStartedWhenNoneAnswers(t *testing.T) {
	if os.Getenv("SUBSYNC_TESTENV_CHILD") == "1" {
		admin, err := AdminDatabaseURL()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(admin, ":1/") {
			t.Fatalf("admin URL %s is the unreachable address", admin)
		}
		if err := migratedDB(t).Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Logf("redis %s", RedisURL(t))
		t.Logf("postgres %s", admin)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSharedServersStartedWhenNoneAnswers$", "-test.v")
	cmd.Env = append(envWithout([]string{"TEST_DATABASE_URL=", "TEST_REDIS_URL="}),
		"SUBSYNC_TESTENV_CHILD=1", "SUBSYNC_TEST_PG_ADDR=127.0.0.1:1", "SUBSYNC_TEST_REDIS_ADDR=127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var pgURL, redisURL string
	for _, line := range strings.Split(string(out), "\n") {
		if _, rest, ok := strings.Cut(line, "postgres postgres://"); ok {
			pgURL = "postgres://" + rest
		}
		if _, rest, ok := strings.Cut(line, "redis redis://"); ok {
			redisURL = "redis://" + rest
		}
	}
	if pgURL == "" || redisURL == "" {
		t.Fatalf("child did not report its servers:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	WaitFor(t, "the child's Postgres to stop", func() bool {
		d, err := openPostgres(ctx, pgURL+"&connect_timeout=1")
		if err == nil {
			d.Close()
		}
		return err != nil
	})
	addr, _, _ := redisAddr(redisURL)
	WaitFor(t, "the child's Redis to stop", func() bool { return redisPing(addr, nil, time.Second) != nil })
}
