// Package db owns every SQL statement of subsyncd: the inbox of Stripe
// events, the user_subscriptions upsert, reconciliation runs, the cache
// outbox, advisory locks and migrations. It uses sqlx over lib/pq.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = reconcile.ErrNotFound

// ErrUnavailable wraps errors that mean the database could not be reached
// or could not serve the request; callers answer 503 and retry later.
var ErrUnavailable = reconcile.ErrUnavailable

// ErrInvalidData wraps errors where Postgres refused the data itself (a value
// it cannot store, such as a NUL character in jsonb); retrying cannot help.
var ErrInvalidData = errors.New("invalid data")

// Config configures Open.
type Config struct {
	URL          string
	MaxOpenConns int // default 20
	MaxIdleConns int // default MaxOpenConns
	// CacheKeyTemplate, when not empty, makes every feature-relevant change
	// of a linked user write a cache invalidation to the outbox
	// ("features:{user_id}"). Empty means no outbox rows.
	CacheKeyTemplate string
	Metrics          *metrics.Metrics
}

// DB is the database handle shared by every part of the daemon.
type DB struct {
	x        *sqlx.DB
	url      string
	metrics  *metrics.Metrics
	cacheKey string
	stmts    preparedSet
}

// CheckURL reports whether u is a Postgres URL lib/pq can use: not empty
// and parseable (postgres:// or postgresql://). Its error never holds the
// password.
func CheckURL(u string) error {
	if u == "" {
		return errors.New("empty")
	}
	if _, err := pq.ParseURL(u); err != nil {
		return fmt.Errorf("not a valid postgres URL: %s", redactErr(err, u))
	}
	return nil
}

// Open connects to Postgres and checks the connection.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := CheckURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("db: Config.URL: %w", err)
	}
	x, err := sqlx.Open("postgres", cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open database: %s", redactErr(err, cfg.URL))
	}
	maxOpen := cfg.MaxOpenConns
	if maxOpen <= 0 {
		maxOpen = 20
	}
	x.SetMaxOpenConns(maxOpen)
	x.SetMaxIdleConns(max(cfg.MaxIdleConns, maxOpen))
	x.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{x: x, url: cfg.URL, metrics: cfg.Metrics, cacheKey: cfg.CacheKeyTemplate}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := x.PingContext(pctx); err != nil {
		x.Close()
		return nil, fmt.Errorf("connect to database %s: %w", Redact(cfg.URL), errors.Join(ErrUnavailable, errors.New(redactErr(err, cfg.URL))))
	}
	return d, nil
}

// Close closes every connection.
func (d *DB) Close() error {
	d.closePrepared()
	return d.x.Close()
}

// X returns the underlying sqlx handle, for tests and tools.
func (d *DB) X() *sqlx.DB { return d.x }

// URL returns the connection URL (with its password; never log it, use
// Redact).
func (d *DB) URL() string { return d.url }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error {
	return d.observe("ping", d.x.PingContext(ctx))
}

// observe counts one operation and, when err is not nil, one error, then
// classifies err: connection problems wrap ErrUnavailable, refused data
// wraps ErrInvalidData. A cancelled context is not counted as an error.
func (d *DB) observe(op string, err error) error {
	if d.metrics != nil {
		d.metrics.DBOperations.WithLabelValues(op).Inc()
	}
	if err == nil || errors.Is(err, ErrNotFound) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if d.metrics != nil {
		d.metrics.DBErrors.WithLabelValues(op).Inc()
	}
	return classify(err)
}

func classify(err error) error {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code.Class() {
		case "22": // data exception: bad encoding, NUL in jsonb, value too long
			return fmt.Errorf("%w: %w", ErrInvalidData, err)
		case "08", "53", "57": // connection, resources, operator intervention (shutdown)
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// Network errors from the driver (refused, reset, EOF) are not pq.Errors.
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Redact returns u with any password replaced, safe for logs.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		if err != nil {
			return "(unparseable URL)"
		}
		return u
	}
	if _, ok := p.User.Password(); ok {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	return p.String()
}

func redactErr(err error, u string) string {
	msg := err.Error()
	if p, perr := url.Parse(u); perr == nil && p.User != nil {
		if pw, ok := p.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return strings.ReplaceAll(msg, u, Redact(u))
}

// inTx runs fn in a transaction, committing when it returns nil. Begin and
// commit are observed as op; fn observes its own statements, and its other
// errors (a Stripe call, say) are returned as they are.
func (d *DB) inTx(ctx context.Context, op string, fn func(tx *sqlx.Tx) error) error {
	tx, err := d.x.BeginTxx(ctx, nil)
	if err != nil {
		return d.observe(op+"_begin", fmt.Errorf("begin: %w", err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return d.observe(op+"_commit", tx.Commit())
}

// RetryUnavailable runs fn until it succeeds, fails with an error that is
// not ErrUnavailable, or ctx ends, waiting 50 ms doubling to 1 s between
// tries. Writers use it to record a result across a database restart
// rather than leave the work to a lease.
func RetryUnavailable(ctx context.Context, fn func(context.Context) error) error {
	wait := 50 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}
