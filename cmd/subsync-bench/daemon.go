package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/lib/pq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/subsync/subsync/internal/childproc"
)

// benchDB is a fresh, migrated database of the server under test.
type benchDB struct {
	admin string // server URL, to drop it
	name  string
	url   string
}

// createDB creates a database named prefix_<random> on the server of admin
// and runs `subsyncd migrate` against it.
func createDB(ctx context.Context, admin, prefix, subsyncd string) (*benchDB, error) {
	name := prefix + "_" + randomHex(5)
	if err := exec1(ctx, admin, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	d := &benchDB{admin: admin, name: name, url: u.String()}
	cmd := exec.CommandContext(ctx, subsyncd, "migrate")
	cmd.Env = append(childEnv(), "DATABASE_URL="+d.url, "LOG_LEVEL=warn")
	if out, err := cmd.CombinedOutput(); err != nil {
		d.drop()
		return nil, fmt.Errorf("subsyncd migrate: %w: %s", err, out)
	}
	return d, nil
}

// drop removes the database, disconnecting whoever is left.
func (d *benchDB) drop() {
	if d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = exec1(ctx, d.admin, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(d.name)+" WITH (FORCE)")
}

// childEnv is the part of this process's environment a child inherits.
func childEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range []string{"GODEBUG", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// daemon is a running `subsyncd serve`.
type daemon struct {
	cmd     *exec.Cmd
	listen  string // host:port of LISTEN_ADDR
	metrics string // host:port of METRICS_ADDR
	out     *childproc.Buffer
	done    chan error

	stopOnce sync.Once
	stopErr  error
}

// startDaemon starts `subsyncd serve` with env (DATABASE_URL and the
// Stripe settings) plus free listener ports, and waits for /readyz.
func startDaemon(ctx context.Context, subsyncd string, env []string) (*daemon, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	d := &daemon{listen: listen, metrics: metricsAddr, out: &childproc.Buffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(subsyncd, "serve")
	d.cmd.Env = append(append(childEnv(), env...),
		"LISTEN_ADDR="+listen, "METRICS_ADDR="+metricsAddr,
		"RECONCILE_EVENTS_SCHEDULE=", "RECONCILE_SUBSCRIPTIONS_SCHEDULE=", "LOG_FORMAT=text")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start subsyncd serve: %w", err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		select {
		case err := <-d.done:
			return nil, fmt.Errorf("subsyncd serve exited before ready: %v\n%s", err, tail(d.out.String()))
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("subsyncd serve not ready after 30s\n%s", tail(d.out.String()))
		}
	}
}

// batches reads the daemon's webhook batch histograms from its /metrics:
// how many batches it stored, their events in all and their time in all.
func (d *daemon) batches(ctx context.Context) (batchStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.metrics+"/metrics", nil)
	if err != nil {
		return batchStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return batchStats{}, fmt.Errorf("scrape subsyncd's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return batchStats{}, fmt.Errorf("scrape subsyncd's metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return batchStats{}, fmt.Errorf("read subsyncd's metrics: %w", err)
	}
	hist := func(name string) (*dto.Histogram, error) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram() == nil {
			return nil, fmt.Errorf("subsyncd's metrics have no histogram %s", name)
		}
		return f.GetMetric()[0].GetHistogram(), nil
	}
	ev, err := hist("subsync_webhook_batch_events")
	if err != nil {
		return batchStats{}, err
	}
	dur, err := hist("subsync_webhook_batch_duration_seconds")
	if err != nil {
		return batchStats{}, err
	}
	return batchStats{Batches: ev.GetSampleCount(), Events: ev.GetSampleSum(),
		Time: time.Duration(dur.GetSampleSum() * float64(time.Second))}, nil
}

// batchStats sums the batches a daemon stored webhook events in.
type batchStats struct {
	Batches uint64
	Events  float64
	Time    time.Duration
}

// MeanEvents is the mean number of events per batch.
func (b batchStats) MeanEvents() float64 { return b.Events / float64(max(b.Batches, 1)) }

// MeanTime is the mean time to store a batch.
func (b batchStats) MeanTime() time.Duration { return b.Time / time.Duration(max(b.Batches, 1)) }

// webhookURL is the daemon's webhook endpoint.
func (d *daemon) webhookURL() string { return "http://" + d.listen + "/webhooks/stripe" }

// pid is the daemon's process id.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM and waits (SIGKILL after 15 s); it returns an error
// when the daemon did not exit cleanly. Only the first call stops.
func (d *daemon) stop() error {
	if d == nil || d.cmd.Process == nil {
		return nil
	}
	d.stopOnce.Do(func() { d.stopErr = d.terminate() })
	return d.stopErr
}

func (d *daemon) terminate() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			return fmt.Errorf("subsyncd serve: %w\n%s", err, tail(d.out.String()))
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("subsyncd serve did not stop within 15s of SIGTERM")
	}
}

// freeAddr returns a free 127.0.0.1 address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// openDB opens one connection to a database and returns it with the pid
// of its backend, which the CPU count leaves out.
func openDB(ctx context.Context, dsn string) (*sql.DB, int, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, 0, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	var pid int
	if err := db.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		db.Close()
		return nil, 0, err
	}
	return db, pid, nil
}

// redact hides the password of a database URL.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "the database URL"
}
