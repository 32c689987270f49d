// Package dbtest opens, for a test, a database of its own with every
// migration applied (testenv.MigratedURL), through the db package. It is
// apart from testenv so that the packages db itself imports can use
// testenv in their tests.
package dbtest

import (
	"context"
	"testing"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
)

// OpenOn opens, through db.Open with cfg (its URL set to pg's), the
// database of a cluster the test started itself, applies every migration
// and closes it when the test ends: for tests that stop, kill or restart
// their own Postgres.
func OpenOn(t testing.TB, pg *testenv.Postgres, cfg db.Config) *db.DB {
	t.Helper()
	cfg.URL = pg.URL()
	d := open(t, cfg)
	if _, err := d.Migrate(context.Background(), nil); err != nil {
		t.Fatalf("dbtest: migrate: %v", err)
	}
	return d
}

// Open opens, through db.Open with cfg (its URL set by
// testenv.MigratedURL), a database of the test's own with every migration
// applied, and closes it when the test ends.
func Open(t testing.TB, cfg db.Config) *db.DB {
	t.Helper()
	cfg.URL = testenv.MigratedURL(t)
	return open(t, cfg)
}

// open opens cfg's database and closes it when the test ends.
func open(t testing.TB, cfg db.Config) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("dbtest: db.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
