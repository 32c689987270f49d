// Package testenv is the test kit: it gives tests the real services they
// run against and the few helpers every package's tests share.
//
//   - Services: a fresh database, empty (DatabaseURL) or migrated
//     (MigratedURL; internal/dbtest opens one through db), on the shared
//     Postgres; the shared Redis
//     (RedisURL); throwaway Postgres, Redis and Prometheus servers a test
//     can stop and start; stripe-mock; promtool. Shared servers are found
//     or started in Go (see AdminDatabaseURL, SharedRedisURL); tools are
//     installed with go install or, as root, from their Debian package,
//     at the versions of versions.go.
//   - Helpers: WaitFor and WaitWithin, Buffer (a locked buffer).
//
// A missing service fails the test loudly; nothing is skipped.
package testenv

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/lib/pq"
)

// DatabaseURL creates a fresh, empty, uniquely named database
// (subsync_t_<random>) on the server of AdminDatabaseURL, returns its URL
// and drops it WITH (FORCE) when the test ends. When no server answers and
// none can be started, the test fails saying what to install.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "template0")
}

// newDatabase creates a database from template for the test and returns
// its URL.
func newDatabase(t testing.TB, template string) string {
	t.Helper()
	admin, err := AdminDatabaseURL()
	if err != nil {
		t.Fatalf("testenv: %v\nor set TEST_DATABASE_URL", err)
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testenv: TEST_DATABASE_URL must be a postgres:// URL, got %q", redactURL(admin))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := openPostgres(ctx, admin)
	if err != nil {
		t.Fatalf("testenv: Postgres at %s does not answer: %v", u.Redacted(), err)
	}
	defer db.Close()

	name := "subsync_t_" + randomHex(6)
	if err := createDatabase(ctx, db, name, template); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v", name, u.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dropDatabase(ctx, admin, name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// RedisURL returns the URL of the shared Redis (see SharedRedisURL) after
// checking that it answers PING; the test fails loudly when it does not.
// Tests sharing it must use keys of their own.
func RedisURL(t testing.TB) string {
	t.Helper()
	raw, err := SharedRedisURL()
	if err != nil {
		t.Fatalf("testenv: %v\nor set TEST_REDIS_URL", err)
	}
	addr, auth, err := redisAddr(raw)
	if err != nil {
		t.Fatalf("testenv: TEST_REDIS_URL: %v", err)
	}
	if err := redisPing(addr, auth, 3*time.Second); err != nil {
		t.Fatalf("testenv: Redis at %s does not answer: %v", redactURL(raw), err)
	}
	return raw
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}

// WaitTCP waits until addr (host:port) accepts a TCP connection, failing the
// test after timeout.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := waitTCP(addr, timeout); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections after %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openPostgres opens a pool on dsn and pings it.
func openPostgres(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("ping: %w", err)
	}
	return db, nil
}

// createDatabase creates name from template, retrying while the template is
// busy.
func createDatabase(ctx context.Context, db *sql.DB, name, template string) error {
	for {
		_, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)+" TEMPLATE "+pq.QuoteIdentifier(template))
		var pqErr *pq.Error
		if err == nil || !errors.As(err, &pqErr) || pqErr.Code != "55006" { // object_in_use
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func dropDatabase(ctx context.Context, admin, name string) error {
	db, err := openPostgres(ctx, admin)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

// redactURL hides the password of a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// redisAddr extracts host:port and the AUTH arguments (none, password, or
// user and password) from a redis:// URL.
func redisAddr(raw string) (addr string, auth []string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, fmt.Errorf("parse %q: %w", redactURL(raw), err)
	}
	if u.Scheme != "redis" {
		return "", nil, fmt.Errorf("want a redis:// URL, got %q", u.Redacted())
	}
	addr = net.JoinHostPort(cmp.Or(u.Hostname(), "127.0.0.1"), cmp.Or(u.Port(), "6379"))
	if password, ok := u.User.Password(); ok {
		if user := u.User.Username(); user != "" {
			return addr, []string{user, password}, nil
		}
		return addr, []string{password}, nil
	}
	return addr, nil, nil
}

// envWithout returns the process environment without the variables whose
// names start with one of prefixes, plus extra.
func envWithout(prefixes []string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !hasPrefixAny(kv, prefixes...) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
