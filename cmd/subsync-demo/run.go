package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/subsync/subsync/internal/childproc"
	"github.com/subsync/subsync/internal/stripefake"
)

// errUsage marks command-line errors (exit status 2).
var errUsage = errors.New("usage")

// defaultDatabaseURL is the server used when neither -database-url nor
// TEST_DATABASE_URL is set.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// webhookSecret signs the fake's deliveries and is what subsyncd verifies.
const webhookSecret = "whsec_demo_0123456789abcdef"

// config is the parsed command line.
type config struct {
	adminURL      string // a database on the server the demo database is created on
	dbName        string
	redisURL      string
	binDir        string
	workDir       string
	subscriptions int
	dropRate      float64
}

var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("subsync-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.adminURL, "database-url", cmp.Or(os.Getenv("TEST_DATABASE_URL"), defaultDatabaseURL),
		"Postgres URL of an existing database on the server to create the demo database on (default $TEST_DATABASE_URL)")
	fs.StringVar(&c.dbName, "database-name", "", "name of the demo database, created and dropped (default subsync_demo_<random>)")
	fs.StringVar(&c.redisURL, "redis-url", os.Getenv("TEST_REDIS_URL"), "Redis for cache invalidation; empty runs without (default $TEST_REDIS_URL)")
	fs.StringVar(&c.binDir, "bin", "bin", "directory holding subsyncd (make build)")
	fs.StringVar(&c.workDir, "workdir", "", "directory for logs (default a temporary one, removed at the end)")
	fs.IntVar(&c.subscriptions, "subscriptions", 50, "subscriptions to seed in the Stripe fake")
	fs.Float64Var(&c.dropRate, "drop-rate", 0.1, "share of the first webhooks the fake drops on purpose")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %w", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case c.subscriptions < 12 || c.subscriptions > 1000:
		return c, fmt.Errorf("%w: -subscriptions must be within [12, 1000]", errUsage)
	case c.dropRate < 0 || c.dropRate >= 1:
		return c, fmt.Errorf("%w: -drop-rate must be within [0, 1)", errUsage)
	}
	if c.dbName == "" {
		c.dbName = "subsync_demo_" + randomHex(4)
	}
	if !dbNameRE.MatchString(c.dbName) {
		return c, fmt.Errorf("%w: -database-name %q: want lower-case letters, digits and _", errUsage, c.dbName)
	}
	return c, nil
}

// demo is the state shared by the steps.
type demo struct {
	cfg    config
	out    io.Writer
	start  time.Time
	logDir string

	fake   *stripefake.Server
	prices []planPrice
	subIDs []string // seeded subscriptions, in creation order

	dbURL string
	db    *sql.DB

	listenAddr  string
	metricsAddr string
	serve       *child

	touched map[string]bool // subscriptions changed or corrupted on purpose
	ghostID string          // the row Stripe does not know
}

// run is the whole demo; every resource it creates is released before it
// returns, whatever happens.
func run(ctx context.Context, args []string, out io.Writer) (err error) {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	d := &demo{cfg: cfg, out: out, start: time.Now(), touched: map[string]bool{}}

	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
		if err != nil && d.serve != nil {
			fmt.Fprintf(os.Stderr, "\nlast lines of the subsyncd serve log (%s):\n%s\n", d.serve.LogPath, childproc.Tail(d.serve.LogPath, 25))
		}
	}()

	d.logDir = cfg.workDir
	if d.logDir == "" {
		if d.logDir, err = os.MkdirTemp("", "subsync-demo-"); err != nil {
			return fmt.Errorf("create a temporary directory: %w", err)
		}
		cleanups = append(cleanups, func() error { return os.RemoveAll(d.logDir) })
	}
	subsyncd := filepath.Join(cfg.binDir, "subsyncd")
	if fi, serr := os.Stat(subsyncd); serr != nil || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is missing or not executable: run make build first", subsyncd)
	}

	// 2. Database.
	d.section(2, "A fresh database")
	if err := d.createDatabase(ctx); err != nil {
		return err
	}
	cleanups = append(cleanups, func() error {
		if d.db != nil {
			d.db.Close()
		}
		return d.dropDatabase()
	})

	// 3. Stripe fake.
	d.section(3, fmt.Sprintf("The Stripe fake, seeded with %d subscriptions", cfg.subscriptions))
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	d.listenAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	d.metricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	if err := d.startFake(); err != nil {
		return err
	}
	cleanups = append(cleanups, func() error { d.fake.Close(); return nil })

	// 4. Daemon.
	d.section(4, "subsyncd serve")
	if err := d.startServe(ctx, subsyncd); err != nil {
		return err
	}
	cleanups = append(cleanups, func() error { return d.stopServe() })

	// 5 to 8: webhooks, drift, reconciliation, the result.
	type action = func(context.Context) error
	for i, step := range []struct {
		title   string
		actions []action
	}{
		{"Signed webhooks flow in (some dropped on purpose)", []action{d.deliverWebhooks}},
		{"Drift: webhooks lost, rows corrupted by hand", []action{d.changeStripe, d.corruptRows}},
		{"Reconciliation by hand", []action{func(ctx context.Context) error { return d.reconcile(ctx, subsyncd) }}},
		{"The table and the daemon's metrics", []action{d.printTable, d.printMetrics}},
	} {
		d.section(5+i, step.title)
		for _, act := range step.actions {
			if err := act(ctx); err != nil {
				return err
			}
		}
	}

	// 9. Shutdown (the deferred cleanups, in order, with their outcome shown).
	d.section(9, "Shutdown")
	if err := d.stopServe(); err != nil {
		return err
	}
	d.say("subsyncd serve exited 0 after SIGTERM")
	d.fake.Close()
	d.say("Stripe fake stopped")
	d.db.Close()
	d.db = nil
	if err := d.dropDatabase(); err != nil {
		return err
	}
	d.say("database %s dropped", d.cfg.dbName)
	return nil
}

// section prints a numbered header.
func (d *demo) section(n int, title string) {
	head := fmt.Sprintf("=== %d. %s ", n, title)
	if pad := 78 - len([]rune(head)); pad > 0 {
		head += strings.Repeat("=", pad)
	}
	fmt.Fprintf(d.out, "\n%s\n", head)
}

// say prints an indented line.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "  "+format+"\n", args...)
}

// elapsed is the time since the demo started, for progress lines.
func (d *demo) elapsed() string {
	return fmt.Sprintf("%5.1fs", time.Since(d.start).Seconds())
}

// freePorts returns n distinct TCP ports of 127.0.0.1 that were free a
// moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}
