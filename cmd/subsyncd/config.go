package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/reconcile"
)

// setting is one variable of the configuration table of the README.
type setting struct {
	env    string
	def    string
	secret bool
	help   string
}

var settings = []setting{
	{"DATABASE_URL", "", true, "Postgres URL (postgres://…)"},
	{"STRIPE_SECRET_KEY", "", true, "Stripe secret key (sk_live_…, sk_test_…, rk_…)"},
	{"STRIPE_WEBHOOK_SECRET", "", true, "webhook signing secret(s), comma-separated during a rotation"},
	{"STRIPE_WEBHOOK_TOLERANCE", "5m", false, "oldest signature timestamp accepted"},
	{"STRIPE_API_BASE", "", false, "base URL of the Stripe API (stripe-mock or a fake)"},
	{"STRIPE_RATE_LIMIT", "25", false, "Stripe requests per second this process allows itself"},
	{"LISTEN_ADDR", ":8080", false, "webhook listener address"},
	{"METRICS_ADDR", ":9090", false, "metrics listener address"},
	{"WEBHOOK_APPLY_MODE", "refetch", false, "refetch or payload"},
	{"RECONCILE_EVENTS_SCHEDULE", "@every 5m", false, "cron spec of the events catch-up (empty disables)"},
	{"RECONCILE_SUBSCRIPTIONS_SCHEDULE", "0 3 * * *", false, "cron spec of the subscription sweep (empty disables)"},
	{"RECONCILE_EVENTS_LOOKBACK", "720h", false, "how far back the first catch-up looks"},
	{"USER_ID_METADATA_KEY", "user_id", false, "metadata key holding the application's user id"},
	{"PLANS_FILE", "", false, "YAML price → plan mapping"},
	{"REDIS_URL", "", true, "Redis URL; when set, cache keys are deleted after each change"},
	{"CACHE_KEY_TEMPLATE", "features:{user_id}", false, "cache key to delete"},
	{"LOG_LEVEL", "info", false, "debug, info, warn or error"},
	{"LOG_FORMAT", "json", false, "json or text"},
	{"AUTO_MIGRATE", "true", false, "apply pending migrations at start"},
	{"EVENT_RETENTION", "2160h", false, "applied and ignored events older than this are pruned (at least 744h)"},
	{"RECONCILE_HISTORY_RETENTION", "2160h", false, "reconcile runs and drift rows older than this are pruned"},
	{"APPLY_WORKERS", strconv.Itoa(reconcile.DefaultWorkers), false, "inbox appliers, each applying one batch at a time"},
	{"APPLY_BATCH_SIZE", strconv.Itoa(reconcile.DefaultBatchSize), false, "events claimed and applied in one transaction"},
}

// minEventRetention keeps events longer than Stripe's events list reaches
// back (30 days): catch-up recognises an event it has seen by its stored id.
const minEventRetention = 31 * 24 * time.Hour

// flagName is the kebab-case flag of an environment variable.
func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

// config is the parsed, validated configuration.
type config struct {
	DatabaseURL           string
	StripeSecretKey       string
	WebhookSecrets        []string
	WebhookTolerance      time.Duration
	StripeAPIBase         string
	StripeRateLimit       float64
	ListenAddr            string
	MetricsAddr           string
	ApplyMode             string
	EventsSchedule        string
	SubscriptionsSchedule string
	EventsLookback        time.Duration
	UserIDMetadataKey     string
	PlansFile             string
	RedisURL              string
	CacheKeyTemplate      string
	LogLevel              slog.Level
	LogFormat             string
	AutoMigrate           bool
	EventRetention        time.Duration
	HistoryRetention      time.Duration
	ApplyWorkers          int
	ApplyBatchSize        int
	Plans                 reconcile.Plans
}

// need names which settings a command requires.
type need struct{ db, stripe, webhook bool }

// parseConfig reads settings from env, lets flags override them, validates
// what cmd needs and returns the positional arguments left. Errors are
// usage errors naming the variable or flag.
func parseConfig(cmd string, args, env []string, stderr io.Writer, n need, extra func(*flag.FlagSet)) (config, []string, error) {
	envMap := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	fs := flag.NewFlagSet("subsyncd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := map[string]*string{}
	for _, s := range settings {
		vals[s.env] = fs.String(flagName(s.env), "", s.help+" (env "+s.env+")")
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, nil, usageError{err}
		}
		return config{}, nil, usageError{err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	get := func(name string) string {
		if set[flagName(name)] {
			return *vals[name]
		}
		if v, ok := envMap[name]; ok {
			return v
		}
		for _, s := range settings {
			if s.env == name {
				return s.def
			}
		}
		return ""
	}
	c, err := buildConfig(get, envMap, n)
	if err != nil {
		return c, nil, usageError{err}
	}
	return c, fs.Args(), nil
}

func buildConfig(get func(string) string, envMap map[string]string, n need) (config, error) {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	c := config{
		DatabaseURL:           strings.TrimSpace(get("DATABASE_URL")),
		StripeSecretKey:       strings.TrimSpace(get("STRIPE_SECRET_KEY")),
		StripeAPIBase:         strings.TrimRight(strings.TrimSpace(get("STRIPE_API_BASE")), "/"),
		ListenAddr:            get("LISTEN_ADDR"),
		MetricsAddr:           get("METRICS_ADDR"),
		ApplyMode:             get("WEBHOOK_APPLY_MODE"),
		EventsSchedule:        strings.TrimSpace(get("RECONCILE_EVENTS_SCHEDULE")),
		SubscriptionsSchedule: strings.TrimSpace(get("RECONCILE_SUBSCRIPTIONS_SCHEDULE")),
		UserIDMetadataKey:     get("USER_ID_METADATA_KEY"),
		PlansFile:             get("PLANS_FILE"),
		RedisURL:              strings.TrimSpace(get("REDIS_URL")),
		CacheKeyTemplate:      get("CACHE_KEY_TEMPLATE"),
		LogFormat:             get("LOG_FORMAT"),
	}
	for _, s := range strings.Split(get("STRIPE_WEBHOOK_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.WebhookSecrets = append(c.WebhookSecrets, s)
		}
	}
	if n.db {
		switch {
		case c.DatabaseURL == "":
			bad("DATABASE_URL", "required (postgres://user@host:5432/db)")
		case !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://"):
			bad("DATABASE_URL", "must be a postgres:// URL")
		default:
			if err := db.CheckURL(c.DatabaseURL); err != nil {
				bad("DATABASE_URL", "%v", err)
			}
		}
	}
	if n.stripe {
		switch {
		case c.StripeSecretKey == "":
			bad("STRIPE_SECRET_KEY", "required")
		case !hasAnyPrefix(c.StripeSecretKey, "sk_live_", "sk_test_", "rk_live_", "rk_test_"):
			bad("STRIPE_SECRET_KEY", "must start with sk_live_, sk_test_, rk_live_ or rk_test_")
		}
	}
	if n.webhook {
		if len(c.WebhookSecrets) == 0 {
			bad("STRIPE_WEBHOOK_SECRET", "required (whsec_…)")
		}
		for i, s := range c.WebhookSecrets {
			if !strings.HasPrefix(s, "whsec_") {
				bad("STRIPE_WEBHOOK_SECRET", "secret #%d does not start with whsec_", i+1)
			}
		}
	}
	var err error
	if c.WebhookTolerance, err = time.ParseDuration(get("STRIPE_WEBHOOK_TOLERANCE")); err != nil || c.WebhookTolerance <= 0 {
		bad("STRIPE_WEBHOOK_TOLERANCE", "%q is not a positive duration (e.g. 5m)", get("STRIPE_WEBHOOK_TOLERANCE"))
	}
	if c.EventsLookback, err = time.ParseDuration(get("RECONCILE_EVENTS_LOOKBACK")); err != nil || c.EventsLookback <= 0 {
		bad("RECONCILE_EVENTS_LOOKBACK", "%q is not a positive duration (e.g. 720h)", get("RECONCILE_EVENTS_LOOKBACK"))
	}
	if c.StripeRateLimit, err = strconv.ParseFloat(get("STRIPE_RATE_LIMIT"), 64); err != nil || c.StripeRateLimit <= 0 || c.StripeRateLimit > 10000 {
		bad("STRIPE_RATE_LIMIT", "%q is not a number of requests per second above 0", get("STRIPE_RATE_LIMIT"))
	}
	if c.StripeAPIBase != "" && !hasAnyPrefix(c.StripeAPIBase, "http://", "https://") {
		bad("STRIPE_API_BASE", "must be an http:// or https:// URL")
	}
	for _, a := range []struct{ name, v string }{{"LISTEN_ADDR", c.ListenAddr}, {"METRICS_ADDR", c.MetricsAddr}} {
		if _, port, err := net.SplitHostPort(a.v); err != nil || port == "" {
			bad(a.name, "%q is not host:port (e.g. :8080)", a.v)
		}
	}
	if c.ApplyMode != reconcile.ModeRefetch && c.ApplyMode != reconcile.ModePayload {
		bad("WEBHOOK_APPLY_MODE", "%q is not refetch or payload", c.ApplyMode)
	}
	for _, s := range []struct{ name, v string }{{"RECONCILE_EVENTS_SCHEDULE", c.EventsSchedule}, {"RECONCILE_SUBSCRIPTIONS_SCHEDULE", c.SubscriptionsSchedule}} {
		if s.v == "" {
			continue
		}
		if _, err := reconcile.ParseSchedule(s.v); err != nil {
			bad(s.name, "%q is not a cron spec: %v", s.v, err)
		}
	}
	if c.UserIDMetadataKey == "" || len(c.UserIDMetadataKey) > 40 {
		bad("USER_ID_METADATA_KEY", "must be 1 to 40 characters (a Stripe metadata key)")
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			bad("REDIS_URL", "not a redis:// URL")
		}
	}
	if !strings.Contains(c.CacheKeyTemplate, "{user_id}") {
		bad("CACHE_KEY_TEMPLATE", "%q must contain {user_id}", c.CacheKeyTemplate)
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL"))); err != nil {
		bad("LOG_LEVEL", "%q is not debug, info, warn or error", get("LOG_LEVEL"))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT", "%q is not json or text", c.LogFormat)
	}
	if c.AutoMigrate, err = strconv.ParseBool(get("AUTO_MIGRATE")); err != nil {
		bad("AUTO_MIGRATE", "%q is not true or false", get("AUTO_MIGRATE"))
	}
	if c.EventRetention, err = time.ParseDuration(get("EVENT_RETENTION")); err != nil || c.EventRetention < minEventRetention {
		bad("EVENT_RETENTION", "%q is not a duration of at least 744h (31 days: Stripe lists events 30 days back, and catch-up knows an event by its stored id)", get("EVENT_RETENTION"))
	}
	if c.HistoryRetention, err = time.ParseDuration(get("RECONCILE_HISTORY_RETENTION")); err != nil || c.HistoryRetention < time.Hour {
		bad("RECONCILE_HISTORY_RETENTION", "%q is not a duration of at least 1h", get("RECONCILE_HISTORY_RETENTION"))
	}
	if c.ApplyWorkers, err = strconv.Atoi(get("APPLY_WORKERS")); err != nil || c.ApplyWorkers < 1 || c.ApplyWorkers > 64 {
		bad("APPLY_WORKERS", "%q is not a whole number from 1 to 64", get("APPLY_WORKERS"))
	}
	if c.ApplyBatchSize, err = strconv.Atoi(get("APPLY_BATCH_SIZE")); err != nil || c.ApplyBatchSize < 1 || c.ApplyBatchSize > 1000 {
		bad("APPLY_BATCH_SIZE", "%q is not a whole number from 1 to 1000", get("APPLY_BATCH_SIZE"))
	}
	if c.Plans, err = loadPlans(envMap, c.PlansFile); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// logger builds the slog logger the configuration asks for.
func (c config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
