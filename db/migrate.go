package db

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/subsync/subsync/migrations"
)

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

func (d *DB) provider(logger *slog.Logger) (*goose.Provider, error) {
	// A session-level advisory lock makes concurrent starts safe: the
	// second process waits, then finds nothing pending.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, fmt.Errorf("migration locker: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true)}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, d.x.DB, migrations.FS, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// Migrate applies every pending migration and returns how many it applied.
func (d *DB) Migrate(ctx context.Context, logger *slog.Logger) (int, error) {
	p, err := d.provider(logger)
	if err != nil {
		return 0, err
	}
	res, err := p.Up(ctx)
	if err := d.observe("migrate", err); err != nil {
		return 0, fmt.Errorf("apply migrations: %w", err)
	}
	return len(res), nil
}

// MigrationStatuses lists every known migration and whether it is applied.
func (d *DB) MigrationStatuses(ctx context.Context) ([]MigrationStatus, error) {
	p, err := d.provider(nil)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err := d.observe("migrate_status", err); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{
			Version:   s.Source.Version,
			Name:      s.Source.Path,
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

// LatestMigration is the highest migration version the binary carries.
func LatestMigration() (int64, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, n := range names {
		v, err := goose.NumericComponent(n)
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", n, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// Ready reports whether the database answers and every migration the binary
// carries is applied. It takes no lock, so it is cheap enough for /readyz.
func (d *DB) Ready(ctx context.Context) error {
	latest, err := LatestMigration()
	if err != nil {
		return err
	}
	var current int64
	err = d.x.QueryRowxContext(ctx,
		`SELECT COALESCE(max(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&current)
	if err := d.observe("ready", err); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current < latest {
		return fmt.Errorf("schema at version %d, binary needs %d: run subsyncd migrate", current, latest)
	}
	// Every writer locks its subscriptions through this function; on
	// Supabase only its owner may call it unless granted (migration 00014).
	var role string
	var callable bool
	err = d.x.QueryRowxContext(ctx, `SELECT current_user, has_function_privilege('`+lockFunction+`', 'EXECUTE')`).
		Scan(&role, &callable)
	if err := d.observe("ready", err); err != nil {
		return fmt.Errorf("check the privilege to execute %s: %w", lockFunction, err)
	}
	if !callable {
		return fmt.Errorf("role %s may not execute %s, through which every write locks its subscriptions: "+
			"GRANT EXECUTE ON FUNCTION %s TO %s", role, lockFunction, lockFunction, pq.QuoteIdentifier(role))
	}
	return nil
}

// lockFunction is the function of migration 00014 that lockSQL calls.
const lockFunction = "subsync_lock_subscriptions(text[], text[], boolean)"
