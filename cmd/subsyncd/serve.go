package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
	"github.com/subsync/subsync/webhook"
)

// shutdownTimeout bounds each step of the graceful shutdown.
const shutdownTimeout = 20 * time.Second

// app is what every command builds from the configuration.
type app struct {
	cfg     config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	db      *db.DB
	stripe  *stripeapi.Client
	resolve *reconcile.Resolver
}

// newApp opens the database (migrating it unless AUTO_MIGRATE=false) and
// builds the Stripe client when the command needs one.
func newApp(ctx context.Context, cfg config, n need, migrate bool, stderr io.Writer) (*app, error) {
	a := &app{cfg: cfg, log: cfg.logger(stderr), reg: prometheus.NewRegistry()}
	a.metrics = metrics.New(a.reg, true)
	a.metrics.BuildInfo.WithLabelValues(version, commit, runtime.Version(), stripe.APIVersion).Set(1)
	cacheKey := ""
	if cfg.RedisURL != "" {
		cacheKey = cfg.CacheKeyTemplate
	}
	var err error
	// Each applier holds a connection for its batch, Stripe fetches included:
	// the pool leaves room for them and for the webhook inserts, the
	// scheduled jobs, the cache worker and the health checks.
	pool := max(20, cfg.ApplyWorkers+12)
	a.db, err = db.Open(ctx, db.Config{URL: cfg.DatabaseURL, CacheKeyTemplate: cacheKey, Metrics: a.metrics, MaxOpenConns: pool})
	if err != nil {
		return nil, err
	}
	if migrate && cfg.AutoMigrate {
		n, err := a.db.Migrate(ctx, a.log)
		if err != nil {
			a.db.Close()
			return nil, err
		}
		if n > 0 {
			a.log.Info("migrations applied", "count", n)
		}
	}
	if n.stripe {
		a.stripe, err = stripeapi.New(stripeapi.Config{
			Key:       cfg.StripeSecretKey,
			APIBase:   cfg.StripeAPIBase,
			RateLimit: cfg.StripeRateLimit,
			Logger:    a.log,
			Metrics:   a.metrics,
		})
		if err != nil {
			a.db.Close()
			return nil, usageError{err}
		}
		a.resolve = &reconcile.Resolver{Plans: cfg.Plans, MetadataKey: cfg.UserIDMetadataKey, Customers: a.stripe}
	}
	return a, nil
}

func (a *app) close() { a.db.Close() }

func runServe(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	n := need{db: true, stripe: true, webhook: true}
	cfg, _, err := parseConfig("serve", args, env, stderr, n, nil)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, n, true, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	return a.serve(ctx)
}

// serve runs every long-lived part until ctx ends, then shuts down in
// order: stop accepting webhooks and finish in-flight requests, stop the
// scheduler and wait for running jobs, let the workers finish what they
// claimed, stop the metrics listener, close the database (deferred).
func (a *app) serve(ctx context.Context) error {
	log := a.log
	applier := reconcile.NewApplier(reconcile.ApplierConfig{
		Mode: a.cfg.ApplyMode, Workers: a.cfg.ApplyWorkers, BatchSize: a.cfg.ApplyBatchSize,
		Logger: log, Metrics: a.metrics,
	}, a.db, a.stripe, a.resolve)
	// Webhook events are stored in shared commits; in payload mode those
	// that need no Stripe call are applied by the same commit. For events
	// left pending the applier here wakes at once, other replicas through
	// one coalesced NOTIFY sent outside those commits.
	inboxNotifier := a.db.NewNotifier(db.InboxChannel, 0)
	ingest := a.db.NewIngester(db.IngestConfig{
		Settler: applier,
		Stored:  func() { applier.Notify(); inboxNotifier.Poke() },
	})
	defer ingest.Close()
	hookCfg := webhook.Config{
		Secrets: a.cfg.WebhookSecrets, Tolerance: a.cfg.WebhookTolerance,
		Logger: log, Metrics: a.metrics,
	}
	if a.cfg.ApplyMode == reconcile.ModePayload {
		// The object is read once, in the request, and settling uses it.
		hookCfg.ReadEvent = a.resolve.ReadSubscriptionEvent
	}
	hook, err := webhook.New(hookCfg, ingest)
	if err != nil {
		// The secrets are STRIPE_WEBHOOK_SECRET, validated by parseConfig.
		return usageError{fmt.Errorf("STRIPE_WEBHOOK_SECRET: %w", err)}
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/stripe", hook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := a.db.Ready(rctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"status\":\"unavailable\",\"error\":%q}\n", err.Error())
			return
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	srv := newHTTPServer(mux, log)
	msrv := newHTTPServer(promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}), log)
	msrv.Handler = metricsMux(msrv.Handler)

	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", a.cfg.ListenAddr, err)
	}
	mln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("METRICS_ADDR %s: %w", a.cfg.MetricsAddr, err)
	}
	log.Info("subsyncd serving", "listen_addr", ln.Addr().String(), "metrics_addr", mln.Addr().String(),
		"version", version, "apply_mode", a.cfg.ApplyMode, "mapped_prices", a.cfg.Plans.Len())

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var bg sync.WaitGroup
	bg.Go(func() { applier.Run(workCtx, shutdownTimeout) })
	bg.Go(func() { inboxNotifier.Run(workCtx) })
	bg.Go(func() {
		err := a.db.Listen(workCtx, db.InboxChannel, log, func(string) { applier.Notify() })
		if err != nil {
			log.Error("listen for inbox notifications", "err", err.Error())
		}
	})
	bg.Go(func() { a.reportInbox(workCtx, 5*time.Second) })
	bg.Go(func() { a.runRetention(workCtx) })
	if a.cfg.RedisURL != "" {
		bg.Go(func() { a.runCache(workCtx) })
	}
	sched, err := a.startScheduler(workCtx)
	if err != nil {
		ln.Close()
		mln.Close()
		return err
	}

	errc := make(chan error, 2)
	go func() { errc <- serveHTTP(srv, ln) }()
	go func() { errc <- serveHTTP(msrv, mln) }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("listener failed", "err", runErr.Error())
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("webhook listener shutdown", "err", err.Error())
	}
	ingest.Close() // every handler has returned: nothing more to store
	sched.stop(sctx)
	stopWork()
	bg.Wait()
	mctx, mcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer mcancel()
	_ = msrv.Shutdown(mctx)
	log.Info("stopped")
	return runErr
}

func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer sets the timeouts and header limit every listener needs
// against slow or hostile clients.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func metricsMux(metricsHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

// reportInbox refreshes the inbox gauges until ctx ends.
func (a *app) reportInbox(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		st, err := a.db.InboxStats(ctx)
		if err == nil {
			a.metrics.InboxPending.Set(float64(st.Pending))
			a.metrics.InboxDead.Set(float64(st.Dead))
			a.metrics.InboxOldestAge.Set(st.OldestAge.Seconds())
		} else if ctx.Err() == nil {
			a.log.Warn("inbox stats", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
