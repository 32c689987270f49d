// Package webhook is the HTTP side of the fast path: it verifies Stripe's
// signature, stores the event in the inbox before answering, and maps every
// failure to the status code the README's HTTP table gives it.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
)

// MaxBodyBytes is the largest body accepted (Stripe's events are far smaller).
const MaxBodyBytes = 1 << 20

// Store is what the handler needs from the database.
type Store interface {
	InsertEvent(ctx context.Context, ev reconcile.NewEvent) (bool, error)
}

// Config configures a Handler.
type Config struct {
	// Secrets are the endpoint signing secrets (whsec_…); a signature made
	// with any of them is accepted, so secrets can be rotated.
	Secrets   []string
	Tolerance time.Duration // oldest signature timestamp accepted, default 5m
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	// Notify is called after a new event is stored, to wake the applier.
	Notify func()
	// ReadEvent, when set, names the subscription an event is about and
	// may return its data.object already read, for the stored event to
	// carry (reconcile.Resolver.ReadSubscriptionEvent, in payload mode).
	// Default: Envelope.SubscriptionID, nothing read.
	ReadEvent func(reconcile.Envelope) (subscriptionID string, object *stripe.Subscription)
	Clock     func() time.Time
}

// Handler serves POST /webhooks/stripe.
type Handler struct {
	cfg   Config
	store Store
	log   *slog.Logger
}

// New builds a Handler; it needs at least one secret.
func New(cfg Config, store Store) (*Handler, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("webhook: Config.Secrets: at least one secret is required")
	}
	for i, s := range cfg.Secrets {
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("webhook: Config.Secrets[%d] is empty", i)
		}
	}
	cfg.Tolerance = cmp.Or(cfg.Tolerance, 5*time.Minute)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ReadEvent == nil {
		cfg.ReadEvent = func(ev reconcile.Envelope) (string, *stripe.Subscription) { return ev.SubscriptionID(), nil }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, store: store, log: log}, nil
}

// answer is one response: status code, outcome label and body.
type answer struct {
	code    int
	outcome string
	status  string // for 200: accepted, duplicate, ignored
	err     string // for errors: a message safe to show the sender
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Clock()
	a, attrs := h.handle(r)
	if m := h.cfg.Metrics; m != nil {
		m.WebhookRequests.WithLabelValues(a.outcome).Inc()
		m.WebhookRequestDuration.WithLabelValues(a.outcome).Observe(h.cfg.Clock().Sub(start).Seconds())
	}
	level := slog.LevelInfo
	if a.code >= 500 {
		level = slog.LevelError
	} else if a.code >= 400 {
		level = slog.LevelWarn
	}
	attrs = append(attrs, slog.String("outcome", a.outcome), slog.Int("code", a.code))
	if a.err != "" {
		attrs = append(attrs, slog.String("reason", a.err))
	}
	h.log.LogAttrs(r.Context(), level, "webhook", attrs...)

	w.Header().Set("Content-Type", "application/json")
	if a.code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	if a.code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(a.code)
	if a.code == http.StatusOK {
		fmt.Fprintf(w, `{"status":%q}`+"\n", a.status)
		return
	}
	body, _ := json.Marshal(map[string]string{"error": a.err})
	w.Write(append(body, '\n'))
}

func (h *Handler) handle(r *http.Request) (answer, []slog.Attr) {
	if r.Method != http.MethodPost {
		return answer{code: http.StatusMethodNotAllowed, outcome: metrics.OutcomeMethodNotAllowed, err: "only POST is allowed"}, nil
	}
	if r.ContentLength > MaxBodyBytes {
		return tooLarge(), nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(), nil
		}
		return answer{code: http.StatusBadRequest, outcome: metrics.OutcomeBadRequest, err: "could not read body"}, nil
	}
	if err := h.verify(body, r.Header.Get("Stripe-Signature")); err != nil {
		return answer{code: http.StatusBadRequest, outcome: metrics.OutcomeInvalidSignature, err: err.Error()}, nil
	}
	if !utf8.Valid(body) || hasNULEscape(body) {
		return badRequest("body is not valid UTF-8 JSON"), nil
	}
	ev, err := reconcile.ReadEnvelope(body)
	if err != nil {
		return badRequest(err.Error()), nil
	}
	subID, object := h.cfg.ReadEvent(ev)
	attrs := []slog.Attr{slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.String("subscription_id", subID)}
	status := reconcile.StatusPending
	if !reconcile.Handled(ev.Type) {
		status = reconcile.StatusIgnored
	}
	inserted, err := h.store.InsertEvent(r.Context(), reconcile.NewEvent{
		ID:             ev.ID,
		Type:           ev.Type,
		APIVersion:     clip(ev.APIVersion, 64),
		Created:        time.Unix(ev.Created, 0).UTC(),
		Livemode:       ev.Livemode,
		Source:         reconcile.SourceWebhook,
		Status:         status,
		SubscriptionID: subID,
		Payload:        body,
		Object:         object,
	})
	switch {
	case errors.Is(err, db.ErrInvalidData):
		return badRequest("event cannot be stored: " + err.Error()), attrs
	case err != nil:
		attrs = append(attrs, slog.String("err", err.Error()))
		return answer{code: http.StatusServiceUnavailable, outcome: metrics.OutcomeUnavailable, err: "event store unavailable, retry later"}, attrs
	case !inserted:
		return answer{code: http.StatusOK, outcome: metrics.OutcomeDuplicate, status: "duplicate"}, attrs
	case status == reconcile.StatusIgnored:
		return answer{code: http.StatusOK, outcome: metrics.OutcomeIgnored, status: "ignored"}, attrs
	}
	if h.cfg.Notify != nil {
		h.cfg.Notify()
	}
	return answer{code: http.StatusOK, outcome: metrics.OutcomeAccepted, status: "accepted"}, attrs
}

// errBadSignature is what a sender learns about any signature failure;
// the log gets the same, never the secret.
var errBadSignature = errors.New("no valid signature for any configured secret")

// verify checks the Stripe-Signature header against every secret, and
// refuses timestamps outside the tolerance on either side of now.
func (h *Handler) verify(body []byte, header string) error {
	if header == "" {
		return errors.New("Stripe-Signature header missing")
	}
	if len(header) > 8192 {
		return errors.New("Stripe-Signature header too long")
	}
	ts, err := signatureTime(header)
	if err != nil {
		return err
	}
	now := h.cfg.Clock()
	if ts.Before(now.Add(-h.cfg.Tolerance)) {
		return errors.New("signature timestamp older than the tolerance")
	}
	if ts.After(now.Add(h.cfg.Tolerance)) {
		return errors.New("signature timestamp in the future")
	}
	for _, secret := range h.cfg.Secrets {
		// The timestamp was checked above against the injected clock.
		if webhook.ValidatePayloadIgnoringTolerance(body, header, secret) == nil {
			return nil
		}
	}
	return errBadSignature
}

// signatureTime returns the header's timestamp. A header with more than
// one is refused: stripe-go checks the signature against the last one, so
// checking the tolerance against another would let an old captured
// signature be replayed behind a fresh timestamp.
func signatureTime(header string) (time.Time, error) {
	var ts time.Time
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k != "t" {
			continue
		}
		if !ts.IsZero() {
			return time.Time{}, errors.New("Stripe-Signature header malformed: more than one timestamp")
		}
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec <= 0 {
			return time.Time{}, errors.New("Stripe-Signature timestamp malformed")
		}
		ts = time.Unix(sec, 0)
	}
	if ts.IsZero() {
		return time.Time{}, errors.New("Stripe-Signature header malformed: no timestamp")
	}
	return ts, nil
}

func tooLarge() answer {
	return answer{code: http.StatusRequestEntityTooLarge, outcome: metrics.OutcomeTooLarge, err: "body over 1 MiB"}
}

func badRequest(msg string) answer {
	return answer{code: http.StatusBadRequest, outcome: metrics.OutcomeBadRequest, err: clip(msg, 300)}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// hasNULEscape reports whether body holds the JSON escape \u0000, which
// Postgres's jsonb refuses; a backslash escaped before "u0000" is text.
func hasNULEscape(body []byte) bool {
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		at := i + j
		backslashes := 0
		for k := at; k >= 0 && body[k] == '\\'; k-- {
			backslashes++
		}
		if backslashes%2 == 1 {
			return true
		}
		i = at + 1
	}
}
