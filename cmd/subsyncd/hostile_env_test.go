package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
)

// hostileSecret signs the webhooks of the hostile-input tests.
const hostileSecret = "whsec_hostile_3f9a7c1e5b2d8f4a6c0e1b3d5f7a9c2e"

// hostileTolerance is STRIPE_WEBHOOK_TOLERANCE of the hostile-input daemon:
// short, so that a captured signature can be replayed after it.
const hostileTolerance = 5 * time.Second

// hostileEnv is a `subsyncd serve` (refetch mode unless payload, schedules
// off) on its own database, with the stateful fake as Stripe.
type hostileEnv struct {
	d        *daemon
	fake     *stripefake.Server
	x        *sqlx.DB
	hook     string // the webhook URL
	mapped   *stripe.Price
	unmapped *stripe.Price
}

var hostileSeq atomic.Int64

// hostileID returns a fresh id with prefix, unique in the test process.
func hostileID(prefix string) string {
	return fmt.Sprintf("%s%d_%d", prefix, time.Now().UnixNano(), hostileSeq.Add(1))
}

func newHostileEnv(t *testing.T, mode string, extraEnv ...string) *hostileEnv {
	t.Helper()
	fake := stripefake.New(stripefake.Options{})
	t.Cleanup(fake.Close)
	h := &hostileEnv{fake: fake}
	var err error
	if h.mapped, err = fake.CreatePrice(stripefake.PriceParams{UnitAmount: 573100, Interval: "year", ProductName: "Máquina"}); err != nil {
		t.Fatal(err)
	}
	if h.unmapped, err = fake.CreatePrice(stripefake.PriceParams{UnitAmount: 9900, Interval: "year", ProductName: "Not in the mapping"}); err != nil {
		t.Fatal(err)
	}
	dbURL := testenv.DatabaseURL(t)
	env := append([]string{
		"DATABASE_URL=" + dbURL,
		"STRIPE_SECRET_KEY=" + fake.APIKey(),
		"STRIPE_API_BASE=" + fake.URL(),
		"STRIPE_WEBHOOK_SECRET=" + hostileSecret,
		"STRIPE_PRICE_MAQUINA_ANUAL=" + h.mapped.ID,
		"WEBHOOK_APPLY_MODE=" + mode,
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
	}, extraEnv...)
	h.d = startServeForTest(t, env)
	h.hook = "http://" + h.d.listen + "/webhooks/stripe"
	h.x = sqlx.MustConnect("postgres", dbURL)
	t.Cleanup(func() { h.x.Close() })
	return h
}

// subscribe creates a customer (with customerMeta) and a subscription on
// price (with subMeta) in the fake.
func (h *hostileEnv) subscribe(t *testing.T, price string, customerMeta, subMeta map[string]string) *stripe.Subscription {
	t.Helper()
	cus, err := h.fake.CreateCustomer(stripefake.CustomerParams{Metadata: customerMeta})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := h.fake.CreateSubscription(stripefake.SubscriptionParams{Customer: cus.ID, Price: price, Metadata: subMeta})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// hostileEvent builds an event body of type typ whose data.object is obj
// (marshalled as is), created now.
func hostileEvent(t *testing.T, id, typ string, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripe.APIVersion, "created": time.Now().Unix(),
		"type": typ, "livemode": false, "pending_webhooks": 1,
		"data": map[string]json.RawMessage{"object": raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// subEvent is a customer.subscription.* event carrying the subscription
// as the fake has it now.
func (h *hostileEnv) subEvent(t *testing.T, typ, subID string) (id string, body []byte) {
	t.Helper()
	sub, err := h.fake.Subscription(subID)
	if err != nil {
		t.Fatal(err)
	}
	id = hostileID("evt_hostile_")
	return id, hostileEvent(t, id, typ, sub)
}

// hostileAnswer is what a hostile request got.
type hostileAnswer struct {
	code int
	body string
	err  error // transport error, if any
}

func (a hostileAnswer) String() string {
	if a.err != nil {
		return "connection error: " + a.err.Error()
	}
	var m map[string]string
	if json.Unmarshal([]byte(a.body), &m) == nil {
		if s := m["status"]; s != "" {
			return fmt.Sprintf("%d %s", a.code, s)
		}
		if e := m["error"]; e != "" {
			return fmt.Sprintf("%d (%s)", a.code, e)
		}
	}
	if b := strings.TrimSpace(a.body); strings.HasPrefix(b, strconv.Itoa(a.code)) {
		return b
	}
	return fmt.Sprintf("%d %s", a.code, strings.TrimSpace(a.body))
}

// post sends body to the webhook with the given Stripe-Signature (none
// when empty) and content type.
func (h *hostileEnv) post(t *testing.T, body io.Reader, sig, contentType string) hostileAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.hook, body)
	if err != nil {
		t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return hostileDo(req)
}

func hostileDo(req *http.Request) hostileAnswer {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return hostileAnswer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hostileAnswer{code: resp.StatusCode, body: string(b)}
}

// signed posts body signed now with the daemon's secret, as JSON.
func (h *hostileEnv) signed(t *testing.T, body []byte) hostileAnswer {
	t.Helper()
	return h.post(t, bytes.NewReader(body), stripefake.SignPayload(body, hostileSecret, time.Now()), "application/json")
}

// counts returns the rows of stripe_webhook_events and user_subscriptions.
func (h *hostileEnv) counts(t *testing.T) (events, subs int) {
	t.Helper()
	if err := h.x.Get(&events, `SELECT count(*) FROM stripe_webhook_events`); err != nil {
		t.Fatal(err)
	}
	if err := h.x.Get(&subs, `SELECT count(*) FROM user_subscriptions`); err != nil {
		t.Fatal(err)
	}
	return events, subs
}

// hostileEventRow is a stored event as the checks read it.
type hostileEventRow struct {
	Status    string `db:"status"`
	LastError string `db:"last_error"`
	Type      string `db:"type"`
	// SubscriptionID is the subscription the event names, "" for none.
	SubscriptionID string `db:"subscription_id"`
}

// event reads a stored event; ok is false when it is not stored.
func (h *hostileEnv) event(t *testing.T, id string) (hostileEventRow, bool) {
	t.Helper()
	var r hostileEventRow
	err := h.x.Get(&r, `SELECT status, coalesce(last_error, '') AS last_error, type, coalesce(subscription_id, '') AS subscription_id
		FROM stripe_webhook_events WHERE id = $1`, id)
	if err != nil {
		return r, false
	}
	return r, true
}

// settled waits until event id is stored and no longer waiting to be
// applied, and returns it.
func (h *hostileEnv) settled(t *testing.T, id string) hostileEventRow {
	t.Helper()
	var r hostileEventRow
	testenv.WaitFor(t, "event "+id+" processed", func() bool {
		var ok bool
		r, ok = h.event(t, id)
		return ok && r.Status != "pending" && r.Status != "failed"
	})
	return r
}

// hostileRow is a stored user_subscriptions row.
type hostileRow struct {
	User   *string `db:"user_id"`
	Plan   *string `db:"plan_id"`
	Price  *string `db:"stripe_price_id"`
	Period string  `db:"billing_period"`
	Status string  `db:"status"`
}

func (h *hostileEnv) row(t *testing.T, subID string) (hostileRow, bool) {
	t.Helper()
	var r hostileRow
	err := h.x.Get(&r, `SELECT user_id, plan_id, stripe_price_id, billing_period, status FROM user_subscriptions WHERE stripe_subscription_id = $1`, subID)
	return r, err == nil
}

var hostileOutcomeLine = regexp.MustCompile(`(?m)^subsync_webhook_requests_total\{outcome="([a-z_]+)"\} ([0-9.e+]+)$`)

// outcomes reads subsync_webhook_requests_total from /metrics.
func (h *hostileEnv) outcomes(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := get(t, "http://"+h.d.metrics+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	m := map[string]float64{}
	for _, g := range hostileOutcomeLine.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(g[2], 64)
		m[g[1]] = v
	}
	return m
}

// liveSub creates a subscription to the mapped price, linked to a new user,
// in the fake.
func (h *hostileEnv) liveSub(t *testing.T) *stripe.Subscription {
	return h.subscribe(t, h.mapped.ID, map[string]string{"user_id": hostileID("user-")}, nil)
}

// appliedRow checks that the event was applied and the row of the
// subscription it names matches the fake, and returns the row.
func (h *hostileEnv) appliedRow(t *testing.T, id string) hostileRow {
	t.Helper()
	ev := h.settled(t, id)
	if ev.Status != "applied" {
		t.Fatalf("event %s is %s (%s), want applied", id, ev.Status, ev.LastError)
	}
	subID := ev.SubscriptionID
	r, ok := h.row(t, subID)
	if !ok {
		t.Fatalf("no row for %s", subID)
	}
	sub, err := h.fake.Subscription(subID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != string(sub.Status) || r.Price == nil || *r.Price != sub.Items.Data[0].Price.ID {
		t.Fatalf("row %+v differs from Stripe (status %s)", r, sub.Status)
	}
	return r
}

// ignoredFor checks that event id was settled as ignored with a reason
// that contains reason, and returns it.
func (h *hostileEnv) ignoredFor(t *testing.T, id, reason string) hostileEventRow {
	t.Helper()
	ev := h.settled(t, id)
	if ev.Status != "ignored" || !strings.Contains(ev.LastError, reason) {
		t.Fatalf("event is %s (%q), want ignored with a reason", ev.Status, ev.LastError)
	}
	return ev
}

// hostileApplied is a check that the event was applied and its row equals
// Stripe; what describes it for the table.
func hostileApplied(what string) func(*testing.T, *hostileEnv, string) string {
	return func(t *testing.T, h *hostileEnv, id string) string {
		h.appliedRow(t, id)
		return what
	}
}

// hostileEventIs is a check that the event is stored with status; what
// describes it for the table.
func hostileEventIs(status, what string) func(*testing.T, *hostileEnv, string) string {
	return func(t *testing.T, h *hostileEnv, id string) string {
		if ev, _ := h.event(t, id); ev.Status != status {
			t.Fatalf("event is %s, want %s", ev.Status, status)
		}
		return what
	}
}

// sendSubEvent posts, signed, a new event of type typ about subscription
// subID and returns the answer and the event's id.
func (h *hostileEnv) sendSubEvent(t *testing.T, typ, subID string) (hostileAnswer, string) {
	t.Helper()
	id, body := h.subEvent(t, typ, subID)
	return h.signed(t, body), id
}
