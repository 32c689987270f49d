package db

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The statements of the hot paths (storing and applying events) run
// prepared. Unprepared, lib/pq spends two round trips on each
// (Parse/Describe, then Bind/Execute), and Postgres parses and plans it
// every time: for the multi-row statements that is more work than running
// them. Prepared, each costs one round trip, and Postgres reuses its plan.
// This needs a session (not a transaction-mode pooler), as the leader
// locks and LISTEN already do.
//
// A statement is prepared on the pool in the background the first time it
// is asked for, and runs unprepared until then: preparing takes a
// connection, and a caller holding a transaction must never wait for one
// (with every connection in such transactions, none would come). Once
// prepared, database/sql prepares it again on each connection the first
// time it runs there, on that connection.

// preparedSet holds the statements prepared so far, by query text.
type preparedSet struct {
	mu      sync.Mutex
	stmts   map[string]*sqlx.Stmt
	pending map[string]bool
	closed  bool
}

// prepareTimeout bounds one background preparation.
const prepareTimeout = 30 * time.Second

// prepared returns query prepared on the pool, or nil while it is not yet,
// and then starts preparing it.
func (d *DB) prepared(query string) *sqlx.Stmt {
	p := &d.stmts
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.stmts[query]; ok || p.pending[query] || p.closed {
		return st
	}
	if p.pending == nil {
		p.pending, p.stmts = map[string]bool{}, map[string]*sqlx.Stmt{}
	}
	p.pending[query] = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
		defer cancel()
		st, err := d.x.PreparexContext(ctx, query)
		_ = d.observe("prepare", err)
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.pending, query) // on failure, the next caller tries again
		if err == nil && !p.closed {
			p.stmts[query] = st
		} else if err == nil {
			_ = st.Close()
		}
	}()
	return nil
}

// closePrepared closes the prepared statements; later callers run theirs
// unprepared.
func (d *DB) closePrepared() {
	p := &d.stmts
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, st := range p.stmts {
		_ = st.Close()
	}
	p.stmts = map[string]*sqlx.Stmt{}
}

// forget drops query's prepared statement when err says Postgres no
// longer takes it (a migration changed what it reads: "cached plan must
// not change result type"), so the next run prepares it anew; the run
// that failed fails, as its transaction is aborted anyway.
func (d *DB) forget(query string, err error) error {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || (pqErr.Code != "0A000" && pqErr.Code != "26000") {
		return err
	}
	p := &d.stmts
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.stmts[query]; ok {
		delete(p.stmts, query)
		_ = st.Close()
	}
	return err
}

// stmtIn runs query in tx, or on the pool when tx is nil: through its
// prepared statement once there is one (prepared), as it is until then
// (plain).
func (d *DB) stmtIn(ctx context.Context, tx *sqlx.Tx, query string,
	prepared func(*sqlx.Stmt) error, plain func(sqlx.ExtContext) error) error {
	if st := d.prepared(query); st != nil {
		if tx != nil {
			st = tx.StmtxContext(ctx, st)
		}
		return d.forget(query, prepared(st))
	}
	if tx != nil {
		return plain(tx)
	}
	return plain(d.x)
}

// selectIn runs query, one that returns rows, into dest (see stmtIn).
func (d *DB) selectIn(ctx context.Context, tx *sqlx.Tx, dest any, query string, args ...any) error {
	return d.stmtIn(ctx, tx, query,
		func(st *sqlx.Stmt) error { return st.SelectContext(ctx, dest, args...) },
		func(q sqlx.ExtContext) error { return sqlx.SelectContext(ctx, q, dest, query, args...) })
}

// getIn runs query, one that returns one row, into dest (see stmtIn).
func (d *DB) getIn(ctx context.Context, tx *sqlx.Tx, dest any, query string, args ...any) error {
	return d.stmtIn(ctx, tx, query,
		func(st *sqlx.Stmt) error { return st.GetContext(ctx, dest, args...) },
		func(q sqlx.ExtContext) error { return sqlx.GetContext(ctx, q, dest, query, args...) })
}

// execIn runs query, whose rows are not read (see stmtIn).
func (d *DB) execIn(ctx context.Context, tx *sqlx.Tx, query string, args ...any) error {
	return d.stmtIn(ctx, tx, query,
		func(st *sqlx.Stmt) error { _, err := st.ExecContext(ctx, args...); return err },
		func(q sqlx.ExtContext) error { _, err := q.ExecContext(ctx, query, args...); return err })
}
