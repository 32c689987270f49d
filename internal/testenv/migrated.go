package testenv

import (
	"database/sql"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/lib/pq"

	"github.com/subsync/subsync/migrations"
)

// MigratedURL returns the URL of a fresh database of the test's own with
// every migration applied, dropped when the test ends.
//
// Each test gets a whole database, not a schema in a shared one: advisory
// locks (the leader locks, goose's lock) and NOTIFY channels are per
// database, so tests sharing one would wake and block each other. Creating
// a database is a file copy; migrating is what costs, so the migrations run
// once per server and set of migrations, into a template database
// (subsync_tmpl_<hash of the migrations>) that every test's database is
// copied from. A template of a set of migrations no longer in use stays on
// a long-lived server until dropped by hand.
func MigratedURL(t testing.TB) string {
	t.Helper()
	tmpl, err := migratedTemplate()
	if err != nil {
		t.Fatalf("testenv: migrated template database: %v", err)
	}
	return newDatabase(t, tmpl)
}

var template struct {
	once sync.Once
	name string
	err  error
}

// migratedTemplate returns the name of the migrated template database,
// creating it once per process. Processes sharing a server take turns with
// an advisory lock; the first one creates it under another name and renames
// it when it is complete.
func migratedTemplate() (string, error) {
	template.once.Do(func() { template.name, template.err = makeTemplate() })
	return template.name, template.err
}

func makeTemplate() (string, error) {
	admin, err := AdminDatabaseURL()
	if err != nil {
		return "", err
	}
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "subsync_tmpl_" + sum
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := openPostgres(ctx, admin)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	conn, err := pool.Conn(ctx) // the advisory lock is the session's
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtext('subsync testenv template'))`); err != nil {
		return "", fmt.Errorf("lock: %w", err)
	}
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil || exists {
		return name, err
	}
	building := name + "_" + randomHex(4)
	if err := createDatabase(ctx, pool, building, "template0"); err != nil {
		return "", err
	}
	if err := migrateDatabase(ctx, admin, building); err != nil {
		_ = dropDatabase(ctx, admin, building)
		return "", err
	}
	// No connections allowed: one would keep the template from being copied.
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+pq.QuoteIdentifier(building)+" RENAME TO "+pq.QuoteIdentifier(name)+
		"; ALTER DATABASE "+pq.QuoteIdentifier(name)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("finish template %s: %w", name, err)
	}
	return name, nil
}

// migrateDatabase applies every migration to the database called name on
// the server of admin.
func migrateDatabase(ctx context.Context, admin, name string) error {
	u, err := url.Parse(admin)
	if err != nil {
		return err
	}
	u.Path = "/" + name
	conn, err := sql.Open("postgres", u.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, conn, migrations.FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	return nil
}

// migrationsHash is a short hash of the names and contents of the
// migrations, so that a changed migration gets a template of its own.
func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12], err
}
