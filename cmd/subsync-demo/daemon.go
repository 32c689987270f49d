package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/subsync/subsync/internal/childproc"
)

// child is a subsyncd process the demo owns.
type child struct{ *childproc.Proc }

// subsyncdEnv is the environment of every subsyncd the demo runs: the
// demo's own, without any subsyncd setting that would leak in from the
// caller's shell, plus the demo's settings.
func (d *demo) subsyncdEnv(extra ...string) []string {
	drop := []string{
		"DATABASE_URL=", "STRIPE_", "LISTEN_ADDR=", "METRICS_ADDR=", "WEBHOOK_APPLY_MODE=", "RECONCILE_",
		"USER_ID_METADATA_KEY=", "PLANS_FILE=", "REDIS_URL=", "CACHE_KEY_TEMPLATE=", "LOG_LEVEL=", "LOG_FORMAT=",
		"AUTO_MIGRATE=",
	}
	var env []string
	for _, kv := range os.Environ() {
		keep := true
		for _, p := range drop {
			if strings.HasPrefix(kv, p) {
				keep = false
				break
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	env = append(env,
		"DATABASE_URL="+d.dbURL,
		"STRIPE_SECRET_KEY="+d.fake.APIKey(),
		"STRIPE_API_BASE="+d.fake.URL(),
		"STRIPE_WEBHOOK_SECRET="+webhookSecret,
		// Stripe allows 100 requests/s in live mode; the default (25, test
		// mode's limit) would only make the demo slower.
		"STRIPE_RATE_LIMIT=100",
		"LISTEN_ADDR="+d.listenAddr,
		"METRICS_ADDR="+d.metricsAddr,
		// No schedules: reconciliation happens by hand, in step 7.
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
		"LOG_FORMAT=text",
	)
	for _, p := range d.prices {
		env = append(env, p.envName()+"="+p.ID)
	}
	if d.cfg.redisURL != "" {
		// A key prefix of its own: the Redis may be shared with tests.
		env = append(env, "REDIS_URL="+d.cfg.redisURL, "CACHE_KEY_TEMPLATE="+d.cfg.dbName+":features:{user_id}")
	}
	return append(env, extra...)
}

// startChild starts bin/subsyncd with args, its stderr (and stdout unless
// given) appended to logPath.
func startChild(bin string, args, env []string, logPath string, stdout io.Writer) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.SysProcAttr = sysProcAttr()
	p, err := childproc.Start(cmd, logPath)
	if err != nil {
		return nil, err
	}
	return &child{p}, nil
}

// stop sends SIGTERM and waits up to grace, then kills the process. It
// returns an error unless the process exited 0 in time.
func (c *child) stop(grace time.Duration) error {
	if err := c.Stop(syscall.SIGTERM, grace); err != nil {
		return err
	}
	return c.exitErr()
}

// exitErr is nil when the process exited 0, else how it exited and where
// its log is.
func (c *child) exitErr() error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%s %s: %w (log: %s)", filepath.Base(c.Cmd.Path), c.Cmd.Args[1], err, c.LogPath)
	}
	return nil
}

// startServe starts subsyncd serve and waits for /readyz.
func (d *demo) startServe(ctx context.Context, bin string) error {
	var err error
	d.serve, err = startChild(bin, []string{"serve"}, d.subsyncdEnv(), filepath.Join(d.logDir, "subsyncd-serve.log"), nil)
	if err != nil {
		return err
	}
	d.say("LISTEN_ADDR=%s METRICS_ADDR=%s STRIPE_API_BASE=%s", d.listenAddr, d.metricsAddr, d.fake.URL())
	d.say("STRIPE_WEBHOOK_SECRET=%s… RECONCILE_EVENTS_SCHEDULE= RECONCILE_SUBSCRIPTIONS_SCHEDULE= (no schedules)", webhookSecret[:11])
	if d.cfg.redisURL != "" {
		d.say("REDIS_URL set: cache keys %s:features:{user_id} are deleted after each change", d.cfg.dbName)
	}
	ready := "http://" + d.listenAddr + "/readyz"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(45 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.serve.Done():
			if err := d.serve.exitErr(); err != nil {
				return fmt.Errorf("subsyncd serve exited before it was ready: %w", err)
			}
			return errors.New("subsyncd serve exited 0 before it was ready")
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("subsyncd serve not ready after 45s (GET %s)", ready)
		}
	}
	d.say("%s  GET /readyz → 200: migrated and listening (pid %d)", d.elapsed(), d.serve.Cmd.Process.Pid)
	return nil
}

// stopServe stops subsyncd serve once; it must exit 0.
func (d *demo) stopServe() error {
	if d.serve == nil {
		return nil
	}
	c := d.serve
	d.serve = nil
	if err := c.stop(30 * time.Second); err != nil {
		return fmt.Errorf("stop subsyncd serve: %w", err)
	}
	return nil
}

// runSubsyncd runs one subsyncd command to its end, its stdout shown
// indented, its log kept in a file. It fails unless the command exits 0.
func (d *demo) runSubsyncd(ctx context.Context, bin, logName string, args ...string) error {
	fmt.Fprintf(d.out, "\n  $ bin/subsyncd %s\n", strings.Join(args, " "))
	pr, pw := io.Pipe()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(d.out, "    %s\n", sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	logPath := filepath.Join(d.logDir, logName+".log")
	c, err := startChild(bin, args, d.subsyncdEnv("LOG_LEVEL=warn"), logPath, pw)
	if err != nil {
		pw.Close()
		<-copied
		return err
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		_ = c.stop(10 * time.Second)
	}
	pw.Close()
	<-copied
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := c.exitErr(); err != nil {
		return fmt.Errorf("%w\n%s", err, childproc.Tail(logPath, 20))
	}
	return nil
}
