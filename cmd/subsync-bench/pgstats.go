package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
)

// postmasterPID is the parent of the backend serving db: the postmaster.
// 0 when /proc cannot tell (another machine, another OS).
func postmasterPID(ctx context.Context, db *sql.DB) int {
	var pid int
	if err := db.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		return 0
	}
	ppid, _, err := procStat(pid)
	if err != nil {
		return 0
	}
	return ppid
}

// walLSN is the server's current WAL position.
func walLSN(ctx context.Context, db *sql.DB) (string, error) {
	var lsn string
	err := db.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn)
	return lsn, err
}

// walSince is the WAL written by the whole server since lsn, in bytes.
func walSince(ctx context.Context, db *sql.DB, lsn string) (int64, error) {
	var n float64
	err := db.QueryRowContext(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)`, lsn).Scan(&n)
	return int64(n), err
}

// checkpoint asks for a checkpoint, so both runs of a case start with the
// same full-page-write state; it needs a superuser and is skipped without.
func checkpoint(ctx context.Context, db *sql.DB) {
	_, _ = db.ExecContext(ctx, `CHECKPOINT`)
}

// waitSampler samples pg_stat_activity of one database every 50 ms and
// counts what its active backends are doing: on CPU (no wait event) or
// waiting, e.g. Lock:transactionid (a row lock), LWLock:WALWrite,
// IO:WALSync (commit flush), Client:ClientRead.
type waitSampler struct {
	mu      sync.Mutex
	samples int
	counts  map[string]int
	stopped chan struct{}
	done    chan struct{}
}

// startWaits samples on admin (a connection to another database, so the
// sampling itself is not counted) the client backends of dbName but the
// pids in skip. The query is prepared once: planning the pg_stat_activity
// view takes Postgres longer than running it, and the sampling shares the
// machine with what it measures.
func startWaits(ctx context.Context, admin *sql.DB, dbName string, skip []int) *waitSampler {
	skipped := make([]int64, len(skip))
	for i, p := range skip {
		skipped[i] = int64(p)
	}
	w := &waitSampler{counts: map[string]int{}, stopped: make(chan struct{}), done: make(chan struct{})}
	stmt, err := admin.PrepareContext(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*)
		FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND pid <> ALL($2) AND backend_type = 'client backend'
		GROUP BY 1`)
	if err != nil {
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		defer stmt.Close()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stopped:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rows, err := stmt.QueryContext(ctx, dbName, pq.Array(skipped))
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.samples++
			for rows.Next() {
				var k string
				var n int
				if rows.Scan(&k, &n) == nil {
					w.counts[k] += n
				}
			}
			w.mu.Unlock()
			rows.Close()
		}
	}()
	return w
}

// waits is the summary of a waitSampler.
type waits struct {
	Active float64            // active backends on average
	Share  map[string]float64 // share of active backend samples per state
}

func (w *waitSampler) stop() waits {
	close(w.stopped)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for _, n := range w.counts {
		total += n
	}
	r := waits{Share: map[string]float64{}}
	if w.samples == 0 || total == 0 {
		return r
	}
	r.Active = float64(total) / float64(w.samples)
	for k, n := range w.counts {
		r.Share[k] = float64(n) / float64(total)
	}
	return r
}

// String lists the five commonest states.
func (w waits) String() string {
	if len(w.Share) == 0 {
		return "no active backend seen"
	}
	keys := make([]string, 0, len(w.Share))
	for k := range w.Share {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if w.Share[a] != w.Share[b] {
			if w.Share[a] > w.Share[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := []string{}
	for _, k := range keys[:min(5, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*w.Share[k]))
	}
	return fmt.Sprintf("%.1f active backends on average: %s", w.Active, strings.Join(parts, ", "))
}
