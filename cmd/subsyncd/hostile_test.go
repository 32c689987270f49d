package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/stripefake"
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
}

// event reads a stored event; ok is false when it is not stored.
func (h *hostileEnv) event(t *testing.T, id string) (hostileEventRow, bool) {
	t.Helper()
	var r hostileEventRow
	err := h.x.Get(&r, `SELECT status, coalesce(last_error, '') AS last_error, type FROM stripe_webhook_events WHERE id = $1`, id)
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
	waitFor(t, "event "+id+" processed", 20*time.Second, func() bool {
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

// hostileCase is one kind of hostile input: how to send it, the answer it
// must get, what it may store.
type hostileCase struct {
	kind string
	// payload: run against the payload-mode daemon.
	payload bool
	// send performs the request(s) and returns the answer of the hostile
	// one and, when it is about one event, that event's id.
	send    func(t *testing.T, h *hostileEnv) (hostileAnswer, string)
	code    int
	status  string             // "status" of a 200 answer
	metrics map[string]float64 // expected increments of subsync_webhook_requests_total
	events  int                // expected new stripe_webhook_events rows
	subs    int                // expected new user_subscriptions rows
	// check proves what was stored; it returns the description for the table.
	check func(t *testing.T, h *hostileEnv, eventID string) string
}

// TestHostileInput sends a table of hostile or odd requests through a real
// serve and proves, for each, the answer and what was (not) stored. It
// logs one Markdown table row per kind, the table of docs/reliability.md.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	tol := "STRIPE_WEBHOOK_TOLERANCE=" + hostileTolerance.String()
	refetch := newHostileEnv(t, "refetch", tol)
	payload := newHostileEnv(t, "payload", tol)

	nothing := func(t *testing.T, h *hostileEnv, id string) string {
		if id != "" {
			if _, ok := h.event(t, id); ok {
				t.Errorf("event %s stored", id)
			}
		}
		return "nothing"
	}
	inv := map[string]float64{"invalid_signature": 1}
	bad := map[string]float64{"bad_request": 1}
	acc := map[string]float64{"accepted": 1}
	// appliedRow checks that the event was applied and the row matches the
	// fake, and describes it.
	appliedRow := func(t *testing.T, h *hostileEnv, id, subID string) hostileRow {
		t.Helper()
		ev := h.settled(t, id)
		if ev.Status != "applied" {
			t.Fatalf("event %s is %s (%s), want applied", id, ev.Status, ev.LastError)
		}
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
	liveSub := func(t *testing.T, h *hostileEnv) *stripe.Subscription {
		return h.subscribe(t, h.mapped.ID, map[string]string{"user_id": hostileID("user-")}, nil)
	}

	cases := []hostileCase{
		{
			kind: "GET instead of POST",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				req, _ := http.NewRequest(http.MethodGet, h.hook, nil)
				return hostileDo(req), ""
			},
			code: 405, metrics: map[string]float64{"method_not_allowed": 1}, check: nothing,
		},
		{
			kind: "no Stripe-Signature header",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				return h.post(t, bytes.NewReader(body), "", "application/json"), id
			},
			code: 400, metrics: inv, check: nothing,
		},
		{
			kind: "signature made with another secret",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				sig := stripefake.SignPayload(body, "whsec_not_the_configured_one_0123456789", time.Now())
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: nothing,
		},
		{
			kind: "old timestamp (valid HMAC, signed 1 h ago)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				sig := stripefake.SignPayload(body, hostileSecret, time.Now().Add(-time.Hour))
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: nothing,
		},
		{
			kind: "future timestamp (valid HMAC, signed 1 h ahead)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				sig := stripefake.SignPayload(body, hostileSecret, time.Now().Add(time.Hour))
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: nothing,
		},
		{
			kind: "old signature behind a fresh timestamp (t=now,t=old,v1=old)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				sig := fmt.Sprintf("t=%d,", time.Now().Unix()) + stripefake.SignPayload(body, hostileSecret, time.Now().Add(-time.Hour))
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: inv, check: nothing,
		},
		{
			kind: "captured body+signature replayed after the tolerance (" + hostileTolerance.String() + ")",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := liveSub(t, h)
				id, body := h.subEvent(t, "customer.subscription.updated", sub.ID)
				at := time.Now()
				sig := stripefake.SignPayload(body, hostileSecret, at)
				if a := h.post(t, bytes.NewReader(body), sig, "application/json"); a.code != 200 {
					t.Fatalf("first delivery: %v", a)
				}
				h.settled(t, id)
				// Signature times are whole seconds: wait until the captured one
				// is surely older than the tolerance.
				waitFor(t, "the captured signature to expire", 3*hostileTolerance, func() bool {
					return time.Since(at.Truncate(time.Second)) > hostileTolerance+time.Second
				})
				return h.post(t, bytes.NewReader(body), sig, "application/json"), id
			},
			code: 400, metrics: map[string]float64{"accepted": 1, "invalid_signature": 1}, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				if ev, _ := h.event(t, id); ev.Status != "applied" {
					t.Fatalf("first delivery is %s, want applied", ev.Status)
				}
				return "only the first delivery (applied); the replay nothing"
			},
		},
		{
			kind: "body over 1 MiB (1 MiB + 1 byte, Content-Length)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				body = hostilePad(t, body, 1<<20+1)
				return h.signed(t, body), id
			},
			code: 413, metrics: map[string]float64{"too_large": 1}, check: nothing,
		},
		{
			kind: "body over 1 MiB, chunked (no Content-Length), 8 MiB",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				body = hostilePad(t, body, 8<<20)
				// An io.Reader of unknown length makes the client send chunks.
				r := io.MultiReader(bytes.NewReader(body))
				return h.post(t, r, stripefake.SignPayload(body, hostileSecret, time.Now()), "application/json"), id
			},
			code: 413, metrics: map[string]float64{"too_large": 1}, check: nothing,
		},
		{
			kind: "body of exactly 1 MiB (valid event padded with blanks)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				return h.signed(t, hostilePad(t, body, 1<<20)), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				var sub string
				h.x.Get(&sub, `SELECT subscription_id FROM stripe_webhook_events WHERE id = $1`, id)
				appliedRow(t, h, id, sub)
				return "event applied, row = Stripe"
			},
		},
		{
			kind: "headers over 64 KiB (80 KiB header)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id, body := h.subEvent(t, "customer.subscription.updated", liveSub(t, h).ID)
				return hostileRaw(t, h.d.listen, "POST /webhooks/stripe HTTP/1.1\r\nHost: subsync\r\nContent-Type: application/json\r\n"+
					"Stripe-Signature: "+stripefake.SignPayload(body, hostileSecret, time.Now())+"\r\n"+
					"X-Padding: "+strings.Repeat("a", 80<<10)+"\r\n"+
					"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+string(body)), id
			},
			code: 431, metrics: map[string]float64{}, check: nothing,
		},
		{
			kind: "wrong Content-Type (text/plain), signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := liveSub(t, h)
				id, body := h.subEvent(t, "customer.subscription.updated", sub.ID)
				return h.post(t, bytes.NewReader(body), stripefake.SignPayload(body, hostileSecret, time.Now()), "text/plain"), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				var sub string
				h.x.Get(&sub, `SELECT subscription_id FROM stripe_webhook_events WHERE id = $1`, id)
				appliedRow(t, h, id, sub)
				return "event applied, row = Stripe (the signature, not the header, proves the sender)"
			},
		},
		{
			kind: "invalid UTF-8 in a string, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				body := []byte(`{"id":"` + id + `","object":"event","type":"customer.subscription.updated","created":` +
					strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{"object":{"id":"sub_x","object":"subscription","description":"` + "\xff\xfe\xc3" + `"}}}`)
				return h.signed(t, body), id
			},
			code: 400, metrics: bad, check: nothing,
		},
		{
			kind: `NUL character (\u0000) in a string, signature valid`,
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				body := []byte(`{"id":"` + id + `","object":"event","type":"charge.succeeded","created":` +
					strconv.FormatInt(time.Now().Unix(), 10) + `,"data":{"object":{"id":"ch_x","description":"a\u0000b"}}}`)
				return h.signed(t, body), id
			},
			code: 400, metrics: bad, check: nothing,
		},
		{
			kind: "100,000 nested [ , signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				return h.signed(t, bytes.Repeat([]byte("["), 100_000)), ""
			},
			code: 400, metrics: bad,
			check: func(t *testing.T, h *hostileEnv, _ string) string {
				if code, _ := get(t, "http://"+h.d.listen+"/healthz"); code != 200 {
					t.Fatalf("/healthz = %d after the nested body", code)
				}
				return "nothing; the daemon still answers /healthz"
			},
		},
		{
			kind: "100,000 nested { inside a valid event, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				body := `{"id":"` + id + `","object":"event","type":"charge.succeeded","created":1,"data":{"object":{"a":` +
					strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000) + "}}}"
				return h.signed(t, []byte(body)), id
			},
			code: 400, metrics: bad, check: nothing,
		},
		{
			kind: "id that is not evt_ (ch_…), signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := liveSub(t, h)
				return h.signed(t, hostileEvent(t, hostileID("ch_"), "customer.subscription.updated", sub)), ""
			},
			code: 400, metrics: bad, check: nothing,
		},
		{
			kind: "empty body, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) { return h.signed(t, []byte{}), "" },
			code: 400, metrics: bad, check: nothing,
		},
		{
			kind: "JSON null, signature valid",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) { return h.signed(t, []byte("null")), "" },
			code: 400, metrics: bad, check: nothing,
		},
		{
			kind: "duplicate delivery (same body twice)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := liveSub(t, h)
				id, body := h.subEvent(t, "customer.subscription.updated", sub.ID)
				if a := h.signed(t, body); a.code != 200 || !strings.Contains(a.body, "accepted") {
					t.Fatalf("first delivery: %v", a)
				}
				return h.signed(t, body), id
			},
			code: 200, status: "duplicate", metrics: map[string]float64{"accepted": 1, "duplicate": 1}, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				var sub string
				h.x.Get(&sub, `SELECT subscription_id FROM stripe_webhook_events WHERE id = $1`, id)
				appliedRow(t, h, id, sub)
				return "one event (applied), one row"
			},
		},
		{
			kind: "event type not handled (charge.succeeded)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				return h.signed(t, hostileEvent(t, id, "charge.succeeded", map[string]any{"id": "ch_1", "object": "charge"})), id
			},
			code: 200, status: "ignored", metrics: map[string]float64{"ignored": 1}, events: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				if ev, _ := h.event(t, id); ev.Status != "ignored" {
					t.Fatalf("event is %s, want ignored", ev.Status)
				}
				return "event with status ignored, no row"
			},
		},
		{
			kind: "subscription that does not exist in Stripe",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				obj := map[string]any{"id": "sub_doesnotexist", "object": "subscription", "status": "active"}
				return h.signed(t, hostileEvent(t, id, "customer.subscription.updated", obj)), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				ev := h.settled(t, id)
				if ev.Status != "ignored" || !strings.Contains(ev.LastError, "not found") {
					t.Fatalf("event is %s (%q), want ignored with a reason", ev.Status, ev.LastError)
				}
				if _, ok := h.row(t, "sub_doesnotexist"); ok {
					t.Fatal("a row was written")
				}
				return fmt.Sprintf("event ignored, last_error %q, no row", ev.LastError)
			},
		},
		{
			kind: "price that is not mapped (year × 1)",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.unmapped.ID, map[string]string{"user_id": "user-unmapped"}, nil)
				id, body := h.subEvent(t, "customer.subscription.created", sub.ID)
				return h.signed(t, body), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				var sub string
				h.x.Get(&sub, `SELECT subscription_id FROM stripe_webhook_events WHERE id = $1`, id)
				r := appliedRow(t, h, id, sub)
				if r.Plan != nil || r.Period != "annual" {
					t.Fatalf("plan %v period %s, want null/annual", r.Plan, r.Period)
				}
				return "row with plan_id null, billing_period annual (from the interval)"
			},
		},
		{
			kind:    "subscription with no items (payload mode, hand-made event)",
			payload: true,
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				id := hostileID("evt_hostile_")
				obj := map[string]any{"id": hostileID("sub_noitems_"), "object": "subscription", "status": "active",
					"customer": "cus_x", "items": map[string]any{"object": "list", "data": []any{}}}
				return h.signed(t, hostileEvent(t, id, "customer.subscription.updated", obj)), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				ev := h.settled(t, id)
				if ev.Status != "ignored" || !strings.Contains(ev.LastError, "no items") {
					t.Fatalf("event is %s (%q), want ignored with a reason", ev.Status, ev.LastError)
				}
				return fmt.Sprintf("event ignored, last_error %q, no row", ev.LastError)
			},
		},
		{
			kind: "customer deleted in Stripe before any delivery",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.mapped.ID, map[string]string{"user_id": "user-gone"}, nil)
				if err := h.fake.DeleteCustomer(sub.Customer.ID); err != nil {
					t.Fatal(err)
				}
				id, body := h.subEvent(t, "customer.subscription.deleted", sub.ID)
				return h.signed(t, body), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				var sub string
				h.x.Get(&sub, `SELECT subscription_id FROM stripe_webhook_events WHERE id = $1`, id)
				r := appliedRow(t, h, id, sub)
				if r.User != nil || r.Status != "canceled" {
					t.Fatalf("user %v status %s, want null/canceled", r.User, r.Status)
				}
				return "row canceled, user_id null (the deleted customer's metadata is not read)"
			},
		},
		{
			kind: "customer deleted in Stripe after the row was linked",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.mapped.ID, map[string]string{"user_id": "user-kept"}, nil)
				first, body := h.subEvent(t, "customer.subscription.created", sub.ID)
				if a := h.signed(t, body); a.code != 200 {
					t.Fatalf("first delivery: %v", a)
				}
				if ev := h.settled(t, first); ev.Status != "applied" {
					t.Fatalf("first event %s", ev.Status)
				}
				if err := h.fake.DeleteCustomer(sub.Customer.ID); err != nil {
					t.Fatal(err)
				}
				id, body := h.subEvent(t, "customer.subscription.deleted", sub.ID)
				return h.signed(t, body), id
			},
			code: 200, status: "accepted", metrics: map[string]float64{"accepted": 2}, events: 2, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				var sub string
				h.x.Get(&sub, `SELECT subscription_id FROM stripe_webhook_events WHERE id = $1`, id)
				r := appliedRow(t, h, id, sub)
				if r.User == nil || *r.User != "user-kept" || r.Status != "canceled" {
					t.Fatalf("user %v status %s, want user-kept/canceled", r.User, r.Status)
				}
				return "row canceled, user_id kept"
			},
		},
		{
			kind: "metadata user id of 10 KB",
			send: func(t *testing.T, h *hostileEnv) (hostileAnswer, string) {
				sub := h.subscribe(t, h.mapped.ID, nil, map[string]string{"user_id": strings.Repeat("u", 10<<10)})
				id, body := h.subEvent(t, "customer.subscription.created", sub.ID)
				return h.signed(t, body), id
			},
			code: 200, status: "accepted", metrics: acc, events: 1, subs: 1,
			check: func(t *testing.T, h *hostileEnv, id string) string {
				var sub string
				h.x.Get(&sub, `SELECT subscription_id FROM stripe_webhook_events WHERE id = $1`, id)
				r := appliedRow(t, h, id, sub)
				if r.User != nil {
					t.Fatalf("user_id set to %d bytes", len(*r.User))
				}
				return "row stored, user_id null (values over 500 bytes are not ids)"
			},
		},
	}

	// The table of docs/reliability.md.
	var table strings.Builder
	table.WriteString("| kind | answer | stored |\n| --- | --- | --- |\n")
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			h := refetch
			if c.payload {
				h = payload
			}
			ev0, sub0 := h.counts(t)
			m0 := h.outcomes(t)
			ans, id := c.send(t, h)
			if ans.err != nil {
				t.Fatalf("transport error: %v", ans.err)
			}
			if ans.code != c.code {
				t.Fatalf("answer %v, want %d", ans, c.code)
			}
			if c.status != "" && !strings.Contains(ans.body, `"status":"`+c.status+`"`) {
				t.Fatalf("answer %v, want status %s", ans, c.status)
			}
			if c.code >= 400 && !strings.Contains(ans.body, "error") && c.code != 431 {
				t.Fatalf("answer %v has no error message", ans)
			}
			if id != "" && c.code == 200 {
				h.settled(t, id)
			}
			stored := c.check(t, h, id)
			ev1, sub1 := h.counts(t)
			if ev1-ev0 != c.events || sub1-sub0 != c.subs {
				t.Fatalf("stripe_webhook_events +%d, user_subscriptions +%d; want +%d, +%d", ev1-ev0, sub1-sub0, c.events, c.subs)
			}
			m1 := h.outcomes(t)
			for o, v := range m1 {
				if d := v - m0[o]; d != c.metrics[o] {
					t.Errorf("subsync_webhook_requests_total{outcome=%q} +%v, want +%v", o, d, c.metrics[o])
				}
			}
			fmt.Fprintf(&table, "| %s | %s | %s (events +%d, subscriptions +%d) |\n", c.kind, ans, stored, ev1-ev0, sub1-sub0)
		})
	}
	t.Logf("hostile input:\n%s", table.String())
}

// hostilePad pads a JSON object with blanks before its closing brace to
// exactly n bytes.
func hostilePad(t *testing.T, body []byte, n int) []byte {
	t.Helper()
	if len(body) > n || body[len(body)-1] != '}' {
		t.Fatalf("cannot pad %d bytes to %d", len(body), n)
	}
	out := make([]byte, 0, n)
	out = append(out, body[:len(body)-1]...)
	out = append(out, bytes.Repeat([]byte(" "), n-len(body))...)
	return append(out, '}')
}

// hostileRaw writes a raw request on a fresh connection and reads the
// answer.
func hostileRaw(t *testing.T, addr, raw string) hostileAnswer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return hostileAnswer{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return hostileAnswer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hostileAnswer{code: resp.StatusCode, body: string(b)}
}

// TestSlowClientsAreCut shows that the listeners' timeouts (newHTTPServer)
// hold against clients that are slow on purpose, while other clients are
// served: headers sent one byte a second are cut by ReadHeaderTimeout, a
// body sent one byte a second by ReadTimeout, and a client that pipelines
// requests but never reads the answers by WriteTimeout. The cases run in
// parallel; each must be cut after its timeout and within three times it.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	h := newHostileEnv(t, "refetch")
	limits := newHTTPServer(nil, slogDiscard())

	t.Run("headers one byte a second", func(t *testing.T) {
		t.Parallel()
		c := slowDial(t, h.d.listen)
		raw := "POST /webhooks/stripe HTTP/1.1\r\nHost: subsync\r\nContent-Type: application/json\r\n" +
			"Stripe-Signature: t=1,v1=00\r\nContent-Length: 2\r\n\r\n{}"
		cut, sent, got := slowTrickle(t, c, []byte(raw), time.Second, 3*limits.ReadHeaderTimeout)
		slowWithin(t, "ReadHeaderTimeout", cut, limits.ReadHeaderTimeout)
		t.Logf("slow headers: cut after %s (ReadHeaderTimeout %s), %d of %d bytes sent, server said %q",
			cut.Round(10*time.Millisecond), limits.ReadHeaderTimeout, sent, len(raw), got)
	})

	t.Run("body one byte a second", func(t *testing.T) {
		t.Parallel()
		id, body := h.subEvent(t, "customer.subscription.updated",
			h.subscribe(t, h.mapped.ID, map[string]string{"user_id": "user-slow"}, nil).ID)
		head := "POST /webhooks/stripe HTTP/1.1\r\nHost: subsync\r\nContent-Type: application/json\r\n" +
			"Stripe-Signature: " + stripefake.SignPayload(body, hostileSecret, time.Now()) + "\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		c := slowDial(t, h.d.listen)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		cut, sent, got := slowTrickle(t, c, body, time.Second, 3*limits.ReadTimeout)
		slowWithin(t, "ReadTimeout", cut, limits.ReadTimeout)
		if _, ok := h.event(t, id); ok {
			t.Fatalf("event %s stored from a body that never arrived", id)
		}
		t.Logf("slow body: cut after %s (ReadTimeout %s), %d of %d body bytes sent, server said %q, nothing stored",
			cut.Round(10*time.Millisecond), limits.ReadTimeout, sent, len(body), got)
	})

	t.Run("client never reads the response", func(t *testing.T) {
		t.Parallel()
		// GET /metrics answers tens of KiB: pipelining many of them fills
		// the socket buffers, so the server's write blocks until
		// WriteTimeout gives up on the connection.
		c := slowDial(t, h.d.metrics)
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		const n = 2000
		start := time.Now()
		go io.WriteString(c, strings.Repeat("GET /metrics HTTP/1.1\r\nHost: subsync\r\n\r\n", n))
		client, server := slowPorts(c)
		// Meanwhile every other client is served.
		served, slowest := 0, time.Duration(0)
		var cut time.Duration
		waitFor(t, "the server to drop the connection that never reads", 3*limits.WriteTimeout, func() bool {
			for _, u := range []string{"http://" + h.d.listen + "/healthz", "http://" + h.d.metrics + "/metrics"} {
				t0 := time.Now()
				if code, _ := get(t, u); code != 200 {
					t.Fatalf("%s = %d while a client does not read", u, code)
				}
				served++
				slowest = max(slowest, time.Since(t0))
			}
			established, known := slowEstablished(server, client)
			if !known {
				// No /proc/net/tcp: the read below shows the cut.
				return time.Since(start) > limits.WriteTimeout+5*time.Second
			}
			if !established {
				cut = time.Since(start)
				return true
			}
			time.Sleep(200 * time.Millisecond)
			return false
		})
		// Now read everything the server wrote before it gave up: the
		// connection must end before all the answers were sent.
		c.SetReadDeadline(time.Now().Add(limits.WriteTimeout))
		all, err := io.ReadAll(c)
		answers := bytes.Count(all, []byte("HTTP/1.1 200 OK"))
		if answers >= n {
			t.Fatalf("all %d answers arrived: the server never gave up (err %v)", answers, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection is still open after %s (%d answers read)", time.Since(start), answers)
		}
		if cut > 0 {
			slowWithin(t, "WriteTimeout", cut, limits.WriteTimeout)
		}
		t.Logf("never reads: connection dropped after %s (WriteTimeout %s) with %d of %d answers (%d KiB) delivered; "+
			"meanwhile %d requests of other clients served, slowest %s",
			cut.Round(10*time.Millisecond), limits.WriteTimeout, answers, n, len(all)>>10, served, slowest.Round(time.Millisecond))
	})
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func slowDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slowTrickle writes data one byte per every until the server closes the
// connection (or answers and closes) or limit passes. It returns when the
// server cut it (measured from the start), how many bytes were sent and
// what the server said.
func slowTrickle(t *testing.T, c net.Conn, data []byte, every, limit time.Duration) (time.Duration, int, string) {
	t.Helper()
	start := time.Now()
	type result struct {
		at  time.Duration
		got string
	}
	done := make(chan result, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(limit))
		b, _ := io.ReadAll(c) // until the server closes
		line, _, _ := strings.Cut(string(b), "\r\n")
		done <- result{time.Since(start), line}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case r := <-done:
			if r.at >= limit {
				t.Fatalf("not cut within %s (%d bytes sent)", limit, sent)
			}
			return r.at, sent, r.got
		case <-tick.C:
			if sent < len(data) {
				if _, err := c.Write(data[sent : sent+1]); err == nil {
					sent++
				}
			}
		}
	}
}

// slowWithin fails unless the cut came after the timeout (less a second
// of slack: the server's clock starts when it accepts) and within three
// times it.
func slowWithin(t *testing.T, name string, cut, timeout time.Duration) {
	t.Helper()
	if cut < timeout-time.Second || cut > 3*timeout {
		t.Fatalf("cut after %s; %s is %s: want between %s and %s", cut, name, timeout, timeout-time.Second, 3*timeout)
	}
}

// slowPorts returns the client's and the server's port of c.
func slowPorts(c net.Conn) (client, server int) {
	return c.LocalAddr().(*net.TCPAddr).Port, c.RemoteAddr().(*net.TCPAddr).Port
}

// slowEstablished reports whether the server's end of the connection
// (local port server, remote port client) is still ESTABLISHED, from
// Linux's /proc/net/tcp; known is false where that file does not exist.
func slowEstablished(server, client int) (established, known bool) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, false
	}
	local := fmt.Sprintf(":%04X ", server)
	remote := fmt.Sprintf(":%04X ", client)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		if strings.HasSuffix(f[1]+" ", local) && strings.HasSuffix(f[2]+" ", remote) {
			return f[3] == "01", true
		}
	}
	return false, true
}
