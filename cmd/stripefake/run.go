package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/subsync/subsync/internal/stripefake"
)

// errUsage marks errors in the command line (exit status 2).
var errUsage = errors.New("usage")

// config is the parsed command line.
type config struct {
	addr          string
	apiKey        string
	apiVersion    string
	seed          int
	seedEvents    bool
	seedSpread    time.Duration
	randomSeed    int64
	webhookURL    string
	webhookSecret string
	latency       time.Duration
	errorRate     float64
	rateLimitRate float64
	verbose       bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("stripefake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:12111", "listen address")
	fs.StringVar(&c.apiKey, "api-key", stripefake.DefaultAPIKey, "the only secret key accepted")
	fs.StringVar(&c.apiVersion, "api-version", stripefake.DefaultAPIVersion, "API version stamped on events")
	fs.IntVar(&c.seed, "seed", 0, "create `N` subscriptions across the three plans")
	fs.BoolVar(&c.seedEvents, "seed-events", false, "seed through the API path, with every event (slower)")
	fs.DurationVar(&c.seedSpread, "seed-spread", 180*24*time.Hour, "spread seeded creation times over this past window (without -seed-events)")
	fs.Int64Var(&c.randomSeed, "random-seed", 0, "seed of ids and injected faults (0 = random)")
	fs.StringVar(&c.webhookURL, "webhook-url", "", "deliver events to this URL as they are created")
	fs.StringVar(&c.webhookSecret, "webhook-secret", "", "signing secret (whsec_…) for -webhook-url")
	fs.DurationVar(&c.latency, "latency", 0, "delay added to every API request")
	fs.Float64Var(&c.errorRate, "error-rate", 0, "probability of a 500 api_error per request")
	fs.Float64Var(&c.rateLimitRate, "rate-limit-rate", 0, "probability of a 429 rate_limit per request")
	fs.BoolVar(&c.verbose, "v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case c.seed < 0:
		return c, fmt.Errorf("%w: -seed must be >= 0", errUsage)
	case c.webhookURL != "" && c.webhookSecret == "":
		return c, fmt.Errorf("%w: -webhook-secret is required with -webhook-url", errUsage)
	case c.errorRate < 0 || c.errorRate > 1:
		return c, fmt.Errorf("%w: -error-rate must be within [0, 1]", errUsage)
	case c.rateLimitRate < 0 || c.rateLimitRate > 1:
		return c, fmt.Errorf("%w: -rate-limit-rate must be within [0, 1]", errUsage)
	}
	return c, nil
}

// run serves the fake until ctx ends, then shuts down gracefully. Before
// serving it writes the price ids (and STRIPE_API_BASE) to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	fake := stripefake.NewUnstarted(stripefake.Options{
		APIKey: c.apiKey, APIVersion: c.apiVersion, Seed: c.randomSeed, Logger: log,
	})
	fake.SetFaults(stripefake.Faults{Latency: c.latency, ErrorRate: c.errorRate, RateLimitRate: c.rateLimitRate})
	if c.webhookURL != "" {
		fake.AddWebhookEndpoint(c.webhookURL, c.webhookSecret, "", nil)
	}
	prices, err := fake.CreatePlans()
	if err != nil {
		return err
	}
	if c.seed > 0 {
		start := time.Now()
		ids := make([]string, len(prices))
		for i, p := range prices {
			ids[i] = p.ID
		}
		opts := stripefake.SeedOptions{Prices: ids, WithEvents: c.seedEvents, Spread: c.seedSpread}
		if _, err := fake.SeedSubscriptions(c.seed, opts); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		log.Info("seeded subscriptions", "count", c.seed, "events", c.seedEvents, "duration", time.Since(start))
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	srv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var lines strings.Builder
	fmt.Fprintf(&lines, "STRIPE_API_BASE=http://%s\n", ln.Addr())
	for _, p := range prices {
		fmt.Fprintf(&lines, "STRIPE_PRICE_%s_%s=%s\n", strings.ToUpper(p.Plan.Key), p.Period, p.ID)
	}
	if _, err := io.WriteString(stdout, lines.String()); err != nil {
		_ = srv.Close()
		return fmt.Errorf("write price ids: %w", err)
	}
	log.Info("stripefake listening", "addr", ln.Addr().String(), "webhook_url", c.webhookURL,
		"latency", c.latency, "error_rate", c.errorRate, "rate_limit_rate", c.rateLimitRate)

	var wg sync.WaitGroup
	deliverCtx, stopDelivery := context.WithCancel(ctx)
	defer stopDelivery()
	if c.webhookURL != "" {
		wg.Go(func() {
			_ = fake.AutoDeliver(deliverCtx, stripefake.DeliverOptions{RetryLikeStripe: true}, time.Second)
		})
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopDelivery()
		wg.Wait()
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stripefake shutting down")
	stopDelivery()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
