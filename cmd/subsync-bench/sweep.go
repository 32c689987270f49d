package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/subsync/subsync/internal/stripefake"
)

// fixture is the fake and database of the size being measured.
type fixture struct {
	fake  *stripefake.Server
	admin string // server URL, to drop the database
	name  string // database name
	url   string // database URL
	env   []string
}

// prepare seeds a fake with n subscriptions and creates a migrated database.
func prepare(ctx context.Context, o options, n int, stderr io.Writer) (*fixture, error) {
	fake := stripefake.New(stripefake.Options{Seed: int64(n)})
	var prices []string
	env := []string{}
	for _, p := range []struct{ plan, period, interval string }{
		{"MAQUINA", "ANUAL", "year"}, {"MAQUINA", "MENSAL", "month"},
		{"SALA_DE_GUERRA", "ANUAL", "year"}, {"SALA_DE_GUERRA", "MENSAL", "month"},
	} {
		pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 10000, Interval: p.interval, ProductName: p.plan})
		if err != nil {
			return nil, err
		}
		prices = append(prices, pr.ID)
		env = append(env, "STRIPE_PRICE_"+p.plan+"_"+p.period+"="+pr.ID)
	}
	start := time.Now()
	if _, err := fake.SeedSubscriptions(n, stripefake.SeedOptions{
		Prices:   prices,
		Statuses: []string{"active", "active", "active", "trialing", "past_due", "canceled", "canceled"},
		Spread:   o.spread,
		// Both sweeps then pay the same for the fake's rendering of a page.
		Prerender: true,
	}); err != nil {
		return nil, fmt.Errorf("seed %d subscriptions: %w", n, err)
	}
	fmt.Fprintf(stderr, "seeded %d subscriptions in %v\n", n, time.Since(start).Round(time.Millisecond))
	name := "subsync_bench_" + randomHex(5)
	if err := exec1(ctx, o.databaseURL, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(o.databaseURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	f := &fixture{fake: fake, admin: o.databaseURL, name: name, url: u.String()}
	f.env = append(env,
		"DATABASE_URL="+f.url,
		"STRIPE_SECRET_KEY="+fake.APIKey(),
		"STRIPE_API_BASE="+fake.URL(),
		"STRIPE_RATE_LIMIT=10000",
		"LOG_LEVEL="+o.logLevel,
		"LOG_FORMAT=text",
		"PATH="+os.Getenv("PATH"),
	)
	for _, k := range []string{"GODEBUG", "GOGC", "GOMEMLIMIT", "GOMAXPROCS"} {
		if v, ok := os.LookupEnv(k); ok {
			f.env = append(f.env, k+"="+v)
		}
	}
	cmd := exec.CommandContext(ctx, o.subsyncd, "migrate")
	cmd.Env = f.env
	if out, err := cmd.CombinedOutput(); err != nil {
		f.close(ctx)
		return nil, fmt.Errorf("migrate: %w: %s", err, out)
	}
	return f, nil
}

// close drops the database and stops the fake.
func (f *fixture) close(ctx context.Context) {
	if f == nil {
		return
	}
	f.fake.Close()
	_ = exec1(ctx, f.admin, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(f.name)+" WITH (FORCE)")
}

// result is one measured sweep.
type result struct {
	subs         int
	run          string
	wall         time.Duration // the child process, start to exit
	sweep        time.Duration // duration_seconds of the run
	requests     int64         // every Stripe request
	listRequests int64         // GET /v1/subscriptions
	minPages     int
	peakRSS      int64         // bytes
	cpu          time.Duration // the child's user and system time
	postgres     time.Duration // Postgres: the database's backends and the server's background processes
	bench        time.Duration // this process: the Stripe fake serving the listing
	wal          int64         // WAL bytes written by the whole server
	list         time.Duration // the listing phase, from the child's log (LOG_LEVEL=info, LOG_FORMAT=json)
	counts       report
}

// report is the head of the JSON object the child prints.
type report struct {
	Scanned, Drifted, Fixed, Errors int
	DurationSeconds                 float64 `json:"duration_seconds"`
	Error                           string
}

func (r result) print(w io.Writer) {
	fmt.Fprintf(w, "%-8d %-13s %8.2fs %8.2fs %8.2fs %8.2fs %8.2fs %9s %9d %10d %11.0f %9s   (drifted %d, fixed %d; load %s)\n",
		r.subs, r.run, r.wall.Seconds(), r.sweep.Seconds(), r.cpu.Seconds(), r.postgres.Seconds(), r.bench.Seconds(),
		mib(r.wal), r.requests, r.minPages, float64(r.subs)/r.sweep.Seconds(), mib(r.peakRSS), r.counts.Drifted,
		r.counts.Fixed, loadAverage())
}

// sweep runs one `subsyncd reconcile --job subscriptions` as a child.
func sweep(ctx context.Context, o options, m *measurer, f *fixture, n int, name string, extraEnv []string, stderr io.Writer) (result, error) {
	f.fake.ResetStats()
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	rssFile := filepath.Join(os.TempDir(), "subsync-bench-rss-"+randomHex(4))
	defer os.Remove(rssFile)
	cmd := exec.CommandContext(ctx, self, measureCommand, rssFile, o.subsyncd, "reconcile", "--job", "subscriptions", "--format", "json")
	cmd.Env = append(append([]string{"AUTO_MIGRATE=false"}, f.env...), extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	if o.verboseChild {
		cmd.Stderr = io.MultiWriter(&errOut, stderr)
	}
	sp, err := m.begin(ctx, f.name, 0)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		sp.abort()
		return result{}, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail(errOut.String()))
	}
	usage, wal, _, err := sp.end(ctx)
	if err != nil {
		return result{}, err
	}
	var rep report
	if err := json.NewDecoder(&out).Decode(&rep); err != nil {
		return result{}, fmt.Errorf("decode report: %w", err)
	}
	st := f.fake.Stats()
	rss, cpu, err := readUsage(rssFile)
	if err != nil {
		return result{}, err
	}
	return result{
		subs: n, run: name, wall: wall, sweep: time.Duration(rep.DurationSeconds * float64(time.Second)),
		requests: st.Requests, listRequests: st.ByRoute["GET /v1/subscriptions"], minPages: (n + 99) / 100,
		peakRSS: rss, cpu: cpu, postgres: usage.Postgres(), bench: usage.Self, wal: wal,
		counts: rep, list: listPhase(errOut.String()),
	}, nil
}

// listPhase finds the listing time in the child's JSON log, 0 when absent.
func listPhase(log string) time.Duration {
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg         string  `json:"msg"`
			ListSeconds float64 `json:"list_seconds"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "subscription sweep done" {
			return time.Duration(rec.ListSeconds * float64(time.Second))
		}
	}
	return 0
}

func exec1(ctx context.Context, dsn, stmt string) error {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// describeHost names the machine the figures come from.
func describeHost() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs %s, %s", runtime.NumCPU(), model, runtime.Version())
}

// loadAverage is the machine's load (Linux), "?" elsewhere: the figures
// mean little when other work shares the CPUs.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
