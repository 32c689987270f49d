// Package stripeapi is the one Stripe client every part of subsyncd shares.
// It configures stripe-go v76 with an http.RoundTripper that applies a
// process-wide, priority-aware rate limit, retries transient failures of
// read requests and records Prometheus metrics for every attempt.
package stripeapi

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/subsync/subsync/metrics"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultRateLimit      = 25.0
	DefaultMaxRetries     = 5
	DefaultMinBackoff     = 250 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
	DefaultAttemptTimeout = 60 * time.Second
)

// Config configures a Client. Zero values take the defaults documented on
// each field.
type Config struct {
	// Key is the secret or restricted API key (sk_… or rk_…). It is never
	// logged and never part of an error.
	Key string
	// APIBase is the base URL of the API, without /v1; "" means Stripe's.
	// Set it to reach stripe-mock or a fake, e.g. http://127.0.0.1:12111.
	APIBase string
	// RateLimit is the number of requests per second this process allows
	// itself, retries included. Default 25.
	RateLimit float64
	// Burst is how many requests may go at once after a quiet spell.
	// Default RateLimit/5, at least 1.
	Burst int
	// MaxRetries is how many times a failed GET is retried. Default 5; a
	// negative value disables retries.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries (and cap Retry-After). Defaults 250ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds a single attempt, headers and body. Default 60s.
	AttemptTimeout time.Duration
	// HTTPClient is the client to send requests with; its Transport is
	// wrapped, the value itself is not modified. Note that its Timeout, if
	// any, covers limiter waits and retries too. Default: a client without
	// timeout over http.DefaultTransport.
	HTTPClient *http.Client
	// Logger receives retries (warn) and stripe-go's own messages (debug).
	// Default: discard.
	Logger *slog.Logger
	// Metrics records requests, latencies and limiter waits; nil disables.
	Metrics *metrics.Metrics
}

// Client is a Stripe API client safe for concurrent use. Build it with New.
type Client struct {
	api *client.API
	key string
	lim *limiter
}

// New validates cfg, applies defaults and returns a Client. It makes no
// request.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rateLimit := cmp.Or(cfg.RateLimit, DefaultRateLimit)
	burst := cmp.Or(cfg.Burst, max(1, int(rateLimit/5)))
	maxRetries := cmp.Or(cfg.MaxRetries, DefaultMaxRetries)
	if maxRetries < 0 {
		maxRetries = 0
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "stripeapi")

	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		copied := *cfg.HTTPClient
		hc = &copied
	}
	lim := newLimiter(rateLimit, burst)
	tr := &transport{
		base:           cmp.Or[http.RoundTripper](hc.Transport, http.DefaultTransport),
		lim:            lim,
		maxRetries:     maxRetries,
		minBackoff:     cmp.Or(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff:     cmp.Or(cfg.MaxBackoff, DefaultMaxBackoff),
		attemptTimeout: cmp.Or(cfg.AttemptTimeout, DefaultAttemptTimeout),
		log:            log,
		m:              cfg.Metrics,
	}
	tr.maxBackoff = max(tr.maxBackoff, tr.minBackoff)
	hc.Transport = tr

	sl := &slogLeveled{log: log, key: cfg.Key}
	backend := func(t stripe.SupportedBackend, base string) stripe.Backend {
		bc := &stripe.BackendConfig{
			HTTPClient:        hc,
			MaxNetworkRetries: stripe.Int64(0), // the transport retries
			LeveledLogger:     sl,
			EnableTelemetry:   stripe.Bool(false),
		}
		if base != "" {
			bc.URL = stripe.String(base)
		}
		return stripe.GetBackendWithConfig(t, bc)
	}
	base := strings.TrimSuffix(strings.TrimSuffix(cfg.APIBase, "/"), "/v1")
	api := &client.API{}
	api.Init(cfg.Key, &stripe.Backends{
		API:     backend(stripe.APIBackend, base),
		Connect: backend(stripe.ConnectBackend, base),
		Uploads: backend(stripe.UploadsBackend, base),
	})
	return &Client{api: api, key: cfg.Key, lim: lim}, nil
}

// validate reports the first invalid field, by name, never echoing the key.
func (cfg Config) validate() error {
	switch {
	case cfg.Key == "":
		return errors.New("stripeapi: Config.Key is required")
	case strings.TrimSpace(cfg.Key) != cfg.Key || strings.ContainsAny(cfg.Key, " \t\r\n"):
		return errors.New("stripeapi: Config.Key contains whitespace")
	case !strings.HasPrefix(cfg.Key, "sk_") && !strings.HasPrefix(cfg.Key, "rk_"):
		return errors.New("stripeapi: Config.Key must be a secret (sk_…) or restricted (rk_…) key")
	case math.IsNaN(cfg.RateLimit) || math.IsInf(cfg.RateLimit, 0) || cfg.RateLimit < 0:
		return fmt.Errorf("stripeapi: Config.RateLimit %v must be a positive number", cfg.RateLimit)
	case cfg.Burst < 0:
		return fmt.Errorf("stripeapi: Config.Burst %d must not be negative", cfg.Burst)
	case cfg.MinBackoff < 0:
		return fmt.Errorf("stripeapi: Config.MinBackoff %v must not be negative", cfg.MinBackoff)
	case cfg.MaxBackoff < 0:
		return fmt.Errorf("stripeapi: Config.MaxBackoff %v must not be negative", cfg.MaxBackoff)
	case cfg.MinBackoff > 0 && cfg.MaxBackoff > 0 && cfg.MinBackoff > cfg.MaxBackoff:
		return fmt.Errorf("stripeapi: Config.MinBackoff %v exceeds Config.MaxBackoff %v", cfg.MinBackoff, cfg.MaxBackoff)
	case cfg.AttemptTimeout < 0:
		return fmt.Errorf("stripeapi: Config.AttemptTimeout %v must not be negative", cfg.AttemptTimeout)
	}
	if cfg.APIBase != "" {
		u, err := url.Parse(cfg.APIBase)
		if err != nil {
			return fmt.Errorf("stripeapi: Config.APIBase: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("stripeapi: Config.APIBase %q must be an http(s) URL like http://127.0.0.1:12111", u.Redacted())
		}
	}
	return nil
}

// API returns the configured stripe-go client, for calls this package does
// not wrap. Its requests share the rate limiter, retries and metrics.
func (c *Client) API() *client.API { return c.api }

// slogLeveled adapts slog to stripe-go's LeveledLoggerInterface. stripe-go
// logs every failed request at error level, but those errors are returned
// to (and logged by) the callers, so everything goes to debug here; full
// response bodies (Debugf) are dropped: they hold customer data.
type slogLeveled struct {
	log *slog.Logger
	key string
}

func (l *slogLeveled) emit(format string, v []any) {
	msg := fmt.Sprintf(format, v...)
	if l.key != "" {
		msg = strings.ReplaceAll(msg, l.key, redacted)
	}
	l.log.Debug(msg, "source", "stripe-go")
}

// Debugf implements stripe.LeveledLoggerInterface; it drops the message.
func (l *slogLeveled) Debugf(string, ...any) {}

// Infof implements stripe.LeveledLoggerInterface.
func (l *slogLeveled) Infof(format string, v ...any) { l.emit(format, v) }

// Warnf implements stripe.LeveledLoggerInterface.
func (l *slogLeveled) Warnf(format string, v ...any) { l.emit(format, v) }

// Errorf implements stripe.LeveledLoggerInterface.
func (l *slogLeveled) Errorf(format string, v ...any) { l.emit(format, v) }
