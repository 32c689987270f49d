package testenv

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFreePortAndWaitTCP(t *testing.T) {
	t.Parallel()
	port := FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort() = %d", port)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitTCP(addr, 200*time.Millisecond); err == nil {
		t.Fatalf("waitTCP(%s) on a closed port succeeded", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the free port %d: %v", port, err)
	}
	defer l.Close()
	WaitTCP(t, addr, 5*time.Second)
}

func TestDatabaseURLGivesIsolatedDatabases(t *testing.T) {
	t.Parallel()
	var names []string
	t.Run("two databases", func(t *testing.T) {
		urlA, urlB := DatabaseURL(t), DatabaseURL(t)
		if urlA == urlB {
			t.Fatalf("DatabaseURL returned %s twice", urlA)
		}
		a, b := openDB(t, urlA), openDB(t, urlB)
		names = append(names, currentDatabase(t, a), currentDatabase(t, b))
		for _, name := range names {
			if !strings.HasPrefix(name, "subsync_t_") {
				t.Errorf("database name %q does not start with subsync_t_", name)
			}
		}
		mustExec(t, a, "CREATE TABLE only_in_a (id int)")
		mustExec(t, a, "INSERT INTO only_in_a VALUES (1)")
		var n int
		if err := a.QueryRow("SELECT count(*) FROM only_in_a").Scan(&n); err != nil || n != 1 {
			t.Fatalf("count in A = %d, %v; want 1", n, err)
		}
		if _, err := b.Exec("SELECT * FROM only_in_a"); err == nil {
			t.Fatal("table created in database A is visible in database B")
		}
	})
	// The subtest's cleanup has dropped both databases, even though its pools
	// (closed in cleanup too) might still have held connections.
	admin := openDB(t, adminURL())
	for _, name := range names {
		var exists bool
		err := admin.QueryRow("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
		if err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestRedisURLAnswers(t *testing.T) {
	t.Parallel()
	raw := RedisURL(t)
	addr, auth, err := redisAddr(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := redisPing(addr, auth, 3*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestStartPostgresStopStart(t *testing.T) {
	t.Parallel()
	pg := StartPostgres(t)
	db := openDB(t, pg.URL())
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TABLE kept (v text)")
	mustExec(t, db, "INSERT INTO kept VALUES ('before stop')")

	pg.Stop(t)
	if err := ping(pg.URL()); err == nil {
		t.Fatal("connecting to a stopped Postgres succeeded")
	}
	pg.Stop(t) // stopping twice does nothing

	pg.Start(t)
	assertKept(t, db, "before stop")

	pg.Restart(t)
	mustExec(t, db, "INSERT INTO kept VALUES ('after restart')")

	pg.Kill(t)
	if err := ping(pg.URL()); err == nil {
		t.Fatal("connecting to a killed Postgres succeeded")
	}
	pg.Start(t) // crash recovery
	assertKept(t, db, "after restart")

	u, err := url.Parse(pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" || u.Path != "/postgres" {
		t.Errorf("URL() = %s, want 127.0.0.1 and database postgres", pg.URL())
	}
}

func TestStartRedisStopStart(t *testing.T) {
	t.Parallel()
	r := StartRedis(t)
	if _, auth, err := redisAddr(r.URL()); err != nil || auth != nil {
		t.Fatalf("URL() = %s: %v", r.URL(), err)
	}
	got, err := redisDo(r.Addr(), 3*time.Second, []string{"SET", "k", "v"}, []string{"GET", "k"})
	if err != nil {
		t.Fatal(err)
	}
	if got[1] != "v" {
		t.Fatalf("GET k = %q, want v", got[1])
	}

	r.Stop(t)
	if err := redisPing(r.Addr(), nil, time.Second); err == nil {
		t.Fatal("PING to a stopped Redis succeeded")
	}

	r.Start(t)
	got, err = redisDo(r.Addr(), 3*time.Second, []string{"EXISTS", "k"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "0" {
		t.Errorf("EXISTS k after restart = %s, want 0 (nothing kept on disk)", got[0])
	}
}

func TestStartStripeMock(t *testing.T) {
	t.Parallel()
	base := StartStripeMock(t)
	req, err := http.NewRequest(http.MethodGet, base+"/v1/customers/cus_123", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("sk_test_123", "")
	req.Header.Set("Stripe-Version", "2023-10-16")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var customer struct{ Object string }
	if err := json.Unmarshal(body, &customer); err != nil || resp.StatusCode != http.StatusOK || customer.Object != "customer" {
		t.Fatalf("GET /v1/customers/cus_123 = %d %s (%v)", resp.StatusCode, body, err)
	}

	// -strict-version-check: another API version is refused.
	req.Header.Set("Stripe-Version", "2020-08-27")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusBadRequest {
		t.Errorf("request with Stripe-Version 2020-08-27 = %d, want 400 (strict version check)", resp2.StatusCode)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	got := redactURL("postgres://u:secret@h/db")
	if strings.Contains(got, "secret") {
		t.Errorf("redactURL kept the password: %s", got)
	}
}

func TestRedisAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		addr string
		auth []string
		err  bool
	}{
		{raw: "redis://127.0.0.1:6379/0", addr: "127.0.0.1:6379"},
		{raw: "redis://localhost", addr: "localhost:6379"},
		{raw: "redis://:pw@h:1/2", addr: "h:1", auth: []string{"pw"}},
		{raw: "redis://u:pw@h:1", addr: "h:1", auth: []string{"u", "pw"}},
		{raw: "http://h", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			addr, auth, err := redisAddr(tt.raw)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if addr != tt.addr || fmt.Sprint(auth) != fmt.Sprint(tt.auth) {
				t.Errorf("redisAddr(%q) = %q, %q; want %q, %q", tt.raw, addr, auth, tt.addr, tt.auth)
			}
		})
	}
}

func TestCompareVersionPaths(t *testing.T) {
	t.Parallel()
	if compareVersionPaths("/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin") >= 0 {
		t.Error("9.6 should sort before 15")
	}
}

func adminURL() string {
	u, err := AdminDatabaseURL()
	if err != nil {
		panic(err)
	}
	return u
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, query string) {
	t.Helper()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func currentDatabase(t *testing.T, db *sql.DB) string {
	t.Helper()
	var name string
	if err := db.QueryRow("SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// assertKept checks that want is in table kept, retrying once: the pool's
// connection from before a stop is dead and the first query may fail on it.
func assertKept(t *testing.T, db *sql.DB, want string) {
	t.Helper()
	var n int
	err := db.QueryRow("SELECT count(*) FROM kept WHERE v = $1", want).Scan(&n)
	if err != nil {
		err = db.QueryRow("SELECT count(*) FROM kept WHERE v = $1", want).Scan(&n)
	}
	if err != nil || n != 1 {
		t.Fatalf("rows %q in kept = %d, %v; want 1", want, n, err)
	}
}

func ping(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	db, err := openPostgres(ctx, dsn+"&connect_timeout=2")
	if err != nil {
		return err
	}
	return db.Close()
}
