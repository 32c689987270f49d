package main

import (
	"context"
	"database/sql"
	"fmt"
)

// measurer measures intervals on one Postgres server: CPU from /proc, WAL
// position and backend states through an admin connection (to the
// server's own database, so its queries are not counted).
type measurer struct {
	admin      *sql.DB
	adminPID   int
	postmaster int // 0 when /proc cannot tell
}

func newMeasurer(ctx context.Context, adminURL string) (*measurer, error) {
	db, pid, err := openDB(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(adminURL), err)
	}
	db.SetMaxOpenConns(2) // one for the wait sampler, one for the rest
	return &measurer{admin: db, adminPID: pid, postmaster: postmasterPID(ctx, db)}, nil
}

func (m *measurer) close() { m.admin.Close() }

// span is one measured interval.
type span struct {
	m   *measurer
	lsn string
	cpu *cpuSampler
	w   *waitSampler
}

// begin checkpoints, then starts counting CPU of client (0: none yet) and
// of the backends of dbName but skip, WAL and backend states.
func (m *measurer) begin(ctx context.Context, dbName string, client int, skip ...int) (*span, error) {
	checkpoint(ctx, m.admin)
	lsn, err := walLSN(ctx, m.admin)
	if err != nil {
		return nil, fmt.Errorf("read WAL position: %w", err)
	}
	s := &span{m: m, lsn: lsn}
	s.cpu = startCPU(m.postmaster, client, dbName, append(skip, m.adminPID)...)
	s.w = startWaits(ctx, m.admin, dbName, skip)
	return s, nil
}

// end stops counting and returns CPU, WAL bytes (whole server) and states.
func (s *span) end(ctx context.Context) (cpuUsage, int64, waits, error) {
	u := s.cpu.stop()
	w := s.w.stop()
	wal, err := walSince(ctx, s.m.admin, s.lsn)
	if err != nil {
		return u, 0, w, fmt.Errorf("read WAL position: %w", err)
	}
	return u, wal, w, nil
}

// abort stops counting, discarding the figures.
func (s *span) abort() {
	s.cpu.stop()
	s.w.stop()
}
