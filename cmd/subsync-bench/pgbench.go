package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/subsync/subsync/internal/loadgen"
)

// pgbenchScript is the per-event transaction pgbench runs: the SQL subsyncd
// must execute for one event (store it, guarded upsert), one transaction
// per event.
//
//go:embed pgbench_event.sql
var pgbenchScript []byte

// pgbenchResult is one pgbench run.
type pgbenchResult struct {
	Transactions int
	Failed       int
	TPS          float64
	Latency      time.Duration // average
	Wall         time.Duration
	CPU          cpuUsage // Client is the pgbench process
	WALBytes     int64
	Waits        waits
}

var (
	tpsRe       = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	processedRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failedRe    = regexp.MustCompile(`number of failed transactions: (\d+)`)
	latencyRe   = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
)

// pgbenchPath finds pgbench or says which package ships it.
func pgbenchPath() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/pgbench"); err == nil {
		return "/usr/bin/pgbench", nil
	}
	return "", fmt.Errorf("pgbench not found: install the Debian package postgresql-client (apt-get install postgresql-client)")
}

// writePgbenchScript writes the embedded script to dir and returns its path.
func writePgbenchScript(dir string) (string, error) {
	p := filepath.Join(dir, "pgbench_event.sql")
	return p, os.WriteFile(p, pgbenchScript, 0o644)
}

// runPgbench runs the script with clients connections and about events
// transactions in all against a fresh database of the same schema, and
// measures CPU (the pgbench process, the backends of the database, the
// server's background processes) and WAL like the webhook run.
func runPgbench(ctx context.Context, m *measurer, d *benchDB, script string, events, clients, subs int) (pgbenchResult, error) {
	bin, err := pgbenchPath()
	if err != nil {
		return pgbenchResult{}, err
	}
	payload := loadgen.Event("pgbench", 0, "sub_pgbench_0", "price_load", time.Now())
	perClient := max(1, events/clients)
	cmd := exec.CommandContext(ctx, bin, "-n", "-M", "prepared", "-f", script,
		"-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(2, clients)), "-t", strconv.Itoa(perClient),
		"-D", "subs="+strconv.Itoa(subs), "-D", "payload="+string(payload), d.url)
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	span, err := m.begin(ctx, d.name, 0)
	if err != nil {
		return pgbenchResult{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		span.abort()
		return pgbenchResult{}, fmt.Errorf("start pgbench: %w", err)
	}
	span.cpu.setClient(cmd.Process.Pid)
	runErr := cmd.Wait()
	wall := time.Since(start)
	// The process has exited: its time is in ProcessState, not /proc.
	usage, wal, w, err := span.end(ctx)
	if err != nil {
		return pgbenchResult{}, err
	}
	if runErr != nil {
		return pgbenchResult{}, fmt.Errorf("pgbench: %w\n%s", runErr, tail(out.String()))
	}
	usage.Client = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	r := pgbenchResult{Wall: wall, CPU: usage, WALBytes: wal, Waits: w}
	text := out.String()
	if mt := tpsRe.FindStringSubmatch(text); mt != nil {
		r.TPS, _ = strconv.ParseFloat(mt[1], 64)
	}
	if mt := processedRe.FindStringSubmatch(text); mt != nil {
		r.Transactions, _ = strconv.Atoi(mt[1])
	}
	if mt := failedRe.FindStringSubmatch(text); mt != nil {
		r.Failed, _ = strconv.Atoi(mt[1])
	}
	if mt := latencyRe.FindStringSubmatch(text); mt != nil {
		ms, _ := strconv.ParseFloat(mt[1], 64)
		r.Latency = time.Duration(ms * float64(time.Millisecond))
	}
	if r.TPS <= 0 || r.Transactions == 0 {
		return r, fmt.Errorf("pgbench printed no tps:\n%s", tail(text))
	}
	return r, nil
}
