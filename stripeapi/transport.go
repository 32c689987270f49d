package stripeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/subsync/subsync/metrics"
)

// transport is the http.RoundTripper every stripe-go call goes through. For
// each attempt it waits for the rate limiter, sends the request and records
// metrics; it retries GET requests that failed transiently.
type transport struct {
	base           http.RoundTripper
	lim            *limiter
	maxRetries     int
	minBackoff     time.Duration
	maxBackoff     time.Duration
	attemptTimeout time.Duration
	log            *slog.Logger
	m              *metrics.Metrics
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	op := opName(req.Method, req.URL.Path)
	prio := PriorityFrom(ctx)
	retryable := (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)

	for attempt := 0; ; attempt++ {
		if err := t.waitToken(ctx, prio); err != nil {
			return nil, err
		}
		resp, err := t.send(req, op, attempt)
		if cerr := ctx.Err(); cerr != nil && retryable && attempt < t.maxRetries {
			// The caller gave up: whatever this attempt got, there is no retry.
			if resp != nil {
				resp.Body.Close()
			}
			return nil, cerr
		}
		if !retryable || attempt >= t.maxRetries {
			if err != nil && attempt > 0 {
				err = fmt.Errorf("after %d attempts: %w", attempt+1, err)
			}
			return resp, err
		}
		delay, ok := t.retryDelay(attempt, resp, err)
		if !ok {
			return resp, err
		}
		t.logRetry(ctx, op, attempt, delay, resp, err)
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return nil, err
		}
	}
}

// waitToken waits for the limiter and records how long it took.
func (t *transport) waitToken(ctx context.Context, p Priority) error {
	start := time.Now()
	err := t.lim.wait(ctx, p)
	if t.m != nil {
		t.m.StripeLimiterWait.WithLabelValues(p.String()).Observe(time.Since(start).Seconds())
	}
	return err
}

// send makes one attempt, bounded by attemptTimeout, and records it.
func (t *transport) send(req *http.Request, op string, attempt int) (*http.Response, error) {
	r := req
	cancel := context.CancelFunc(func() {})
	if t.attemptTimeout > 0 {
		var ctx context.Context
		ctx, cancel = context.WithTimeout(req.Context(), t.attemptTimeout)
		r = req.WithContext(ctx)
	}
	if attempt > 0 && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			cancel()
			return nil, fmt.Errorf("rewind request body: %w", err)
		}
		if r == req {
			r = req.Clone(req.Context())
		}
		r.Body = body
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
		// The attempt's deadline must outlive RoundTrip: stripe-go still
		// reads the body. Cancel when the body is closed.
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	} else {
		cancel()
	}
	if t.m != nil {
		t.m.StripeRequests.WithLabelValues(op, code).Inc()
		t.m.StripeRequestDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	}
	return resp, err
}

// retryDelay says whether a GET attempt should be retried, and after how
// long. Only transient failures are: connection errors, 429 and 5xx, unless
// Stripe says otherwise with Stripe-Should-Retry.
func (t *transport) retryDelay(attempt int, resp *http.Response, err error) (time.Duration, bool) {
	if err != nil {
		if permanentTransportError(err) {
			return 0, false
		}
		return t.backoff(attempt), true
	}
	if resp.StatusCode < 400 {
		return 0, false
	}
	switch resp.Header.Get("Stripe-Should-Retry") {
	case "false":
		return 0, false
	case "true":
	default:
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
			return 0, false
		}
	}
	d := t.backoff(attempt)
	if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		d = max(d, min(ra, t.maxBackoff))
	}
	return d, true
}

// backoff is capped exponential backoff with full jitter: a uniform delay
// in [0, min(maxBackoff, minBackoff·2^attempt)].
func (t *transport) backoff(attempt int) time.Duration {
	ceil := t.maxBackoff
	if attempt < 32 {
		ceil = min(t.maxBackoff, t.minBackoff<<attempt)
	}
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil + 1)
}

func (t *transport) logRetry(ctx context.Context, op string, attempt int, delay time.Duration, resp *http.Response, err error) {
	attrs := []any{"op", op, "attempt", attempt + 1, "delay", delay}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	} else {
		attrs = append(attrs, "status", resp.StatusCode, "request_id", resp.Header.Get("Request-Id"))
	}
	t.log.WarnContext(ctx, "stripe request failed, retrying", attrs...)
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsNaN(s) {
			return 0, false
		}
		if s > float64(24*time.Hour/time.Second) {
			return 24 * time.Hour, true
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(0, at.Sub(now)), true
	}
	return 0, false
}

// permanentTransportError reports errors no retry can fix: certificates
// that do not verify.
func permanentTransportError(err error) bool {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify)
}

// cancelOnClose releases an attempt's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// opName maps a request to the op label: resource and verb, never an id,
// so the label's cardinality stays bounded.
func opName(method, path string) string {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return "other"
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	res := segs[0]
	switch res {
	case "balance":
		if len(segs) == 1 && method == http.MethodGet {
			return "balance.get"
		}
		return "other"
	case "subscriptions", "customers", "prices", "invoices", "events", "webhook_endpoints":
	default:
		return "other"
	}
	switch {
	case len(segs) == 1 && method == http.MethodGet:
		return res + ".list"
	case len(segs) == 1 && method == http.MethodPost:
		return res + ".create"
	case len(segs) == 2 && method == http.MethodGet && segs[1] == "search":
		return res + ".search"
	case len(segs) == 2 && method == http.MethodGet:
		return res + ".get"
	case len(segs) == 2 && method == http.MethodPost:
		return res + ".update"
	case len(segs) == 2 && method == http.MethodDelete:
		return res + ".delete"
	}
	return "other"
}
