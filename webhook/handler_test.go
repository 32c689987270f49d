package webhook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/webhook"
)

// The events of the testdata payloads, as they must be stored.
var (
	subUpdated = storedEvent{
		id: "evt_1OxJ9kLkdIwHu7ixR2bTqM5a", typ: "customer.subscription.updated", apiVersion: "2023-10-16",
		status: reconcile.StatusPending, subscriptionID: "sub_1OwZ3dLkdIwHu7ixKp9mQe2R", created: 1711022400,
	}
	invoicePaid = storedEvent{
		id: "evt_1OxJBcLkdIwHu7ixHn4fRt8e", typ: "invoice.paid", apiVersion: "2023-10-16",
		status: reconcile.StatusPending, subscriptionID: "sub_1OwZ8eLkdIwHu7ixT4gH6jKl", created: 1711022510,
	}
	chargeSucceeded = storedEvent{
		id: "evt_3OxJBbLkdIwHu7ix0Yq2Lw4n", typ: "charge.succeeded", apiVersion: "2023-10-16",
		status: reconcile.StatusIgnored, created: 1711022508,
	}
	createdBasil = storedEvent{
		id: "evt_1R8kQzLkdIwHu7ixb5Nw3Ls7", typ: "customer.subscription.created", apiVersion: "2025-03-31.basil",
		status: reconcile.StatusPending, subscriptionID: "sub_1R8kQxLkdIwHu7ixY7cJ2mPn", created: 1743900000,
	}
)

// stored returns e with the payload it must be stored with.
func (e storedEvent) stored(payload []byte) *storedEvent {
	e.payload = payload
	return &e
}

// signed is a POST of body signed with secretA at testNow.
func signed(body []byte) request {
	return request{body: body, sig: signature(body, testNow, secretA)}
}

// padTo returns the event body padded with an extra top-level field to
// exactly n bytes.
func padTo(t testing.TB, body []byte, n int) []byte {
	t.Helper()
	base := withFields(t, body, map[string]any{"padding": ""})
	out := withFields(t, body, map[string]any{"padding": strings.Repeat("x", n-len(base))})
	if len(out) != n {
		t.Fatalf("padded body is %d bytes, want %d", len(out), n)
	}
	return out
}

// TestHandlerHTTPContract covers every row of the README's HTTP table: status
// code, JSON body, what stripe_webhook_events holds afterwards, the
// subsync_webhook_requests_total{outcome} counter and Notify. Each case has
// its own handler, metrics and server over a real migrated schema.
func TestHandlerHTTPContract(t *testing.T) {
	t.Parallel()
	sub := readTestdata(t, fileSubUpdated)
	inv := readTestdata(t, fileInvoicePaid)
	charge := readTestdata(t, fileChargeOK)
	// The same event id with other contents, as a buggy or hostile sender
	// might redeliver it: the first stored version must stay.
	subAltered := withFields(t, sub, map[string]any{"type": "customer.subscription.deleted", "pending_webhooks": 7})
	chargeAltered := withFields(t, charge, map[string]any{"type": "customer.subscription.updated"})
	exactlyMax := padTo(t, sub, webhook.MaxBodyBytes)
	escapedNUL := bytes.Replace(sub, []byte(`"u_48213"`), []byte(`"u_48\\u000013"`), 1) // a backslash, then the text u0000
	overMax := padTo(t, sub, webhook.MaxBodyBytes+1)
	overMaxLots := padTo(t, sub, 3*webhook.MaxBodyBytes)

	sigAt := func(body []byte, ts time.Time) request {
		return request{body: body, sig: signature(body, ts, secretA)}
	}
	withSig := func(body []byte, sig string) request { return request{body: body, sig: sig} }
	validV1 := signature(sub, testNow, secretA)[len(fmt.Sprintf("t=%d,", testNow.Unix())):]
	tolerance := 5 * time.Minute
	old := testNow.Add(-10 * time.Minute)

	// notEvent is a body with a valid signature that is not a Stripe event.
	notEvent := func(name string, body []byte) tcase {
		return tcase{name: "not an event/" + name, req: signed(body), wantCode: http.StatusBadRequest, wantOutcome: metrics.OutcomeBadRequest}
	}
	badSig := func(name string, rq request) tcase {
		return tcase{name: "signature/" + name, req: rq, wantCode: http.StatusBadRequest, wantOutcome: metrics.OutcomeInvalidSignature}
	}
	tooLarge := func(name string, rq request) tcase {
		return tcase{name: "too large/" + name, req: rq, wantCode: http.StatusRequestEntityTooLarge, wantOutcome: metrics.OutcomeTooLarge}
	}
	method := func(m string) tcase {
		return tcase{name: "method/" + m, req: request{method: m, body: sub, sig: signature(sub, testNow, secretA)},
			wantCode: http.StatusMethodNotAllowed, wantOutcome: metrics.OutcomeMethodNotAllowed}
	}

	cases := []tcase{
		// valid signature, new event, stored → 200 accepted
		{name: "accepted/subscription event", req: signed(sub), wantCode: 200, wantStatus: "accepted",
			wantOutcome: metrics.OutcomeAccepted, wantStored: subUpdated.stored(sub), wantNotify: 1},
		{name: "accepted/an escaped backslash before u0000 is text", req: signed(escapedNUL), wantCode: 200, wantStatus: "accepted",
			wantOutcome: metrics.OutcomeAccepted, wantStored: subUpdated.stored(escapedNUL), wantNotify: 1},
		{name: "accepted/invoice event through its subscription", req: signed(inv), wantCode: 200, wantStatus: "accepted",
			wantOutcome: metrics.OutcomeAccepted, wantStored: invoicePaid.stored(inv), wantNotify: 1},
		{name: "accepted/body of exactly 1 MiB", req: signed(exactlyMax), wantCode: 200, wantStatus: "accepted",
			wantOutcome: metrics.OutcomeAccepted, wantStored: subUpdated.stored(exactlyMax), wantNotify: 1},
		{name: "accepted/body of exactly 1 MiB chunked", req: request{body: exactlyMax, sig: signature(exactlyMax, testNow, secretA), chunked: true},
			wantCode: 200, wantStatus: "accepted", wantOutcome: metrics.OutcomeAccepted, wantStored: subUpdated.stored(exactlyMax), wantNotify: 1},

		// valid signature, event id already stored → 200 duplicate, nothing changes
		{name: "duplicate/same body", before: []request{signed(sub)}, req: signed(sub), wantCode: 200, wantStatus: "duplicate",
			wantOutcome: metrics.OutcomeDuplicate, wantStored: subUpdated.stored(sub), wantNotify: 1},
		{name: "duplicate/different body keeps the first", before: []request{signed(sub)}, req: signed(subAltered), wantCode: 200,
			wantStatus: "duplicate", wantOutcome: metrics.OutcomeDuplicate, wantStored: subUpdated.stored(sub), wantNotify: 1},
		{name: "duplicate/of an ignored event", before: []request{signed(charge)}, req: signed(chargeAltered), wantCode: 200,
			wantStatus: "duplicate", wantOutcome: metrics.OutcomeDuplicate, wantStored: chargeSucceeded.stored(charge)},

		// valid signature, event type not handled → 200 ignored, recorded as ignored
		{name: "ignored/charge.succeeded", req: signed(charge), wantCode: 200, wantStatus: "ignored",
			wantOutcome: metrics.OutcomeIgnored, wantStored: chargeSucceeded.stored(charge)},

		// Stripe-Signature missing, malformed, wrong, or too old → 400
		badSig("missing", request{body: sub}),
		badSig("malformed/garbage", withSig(sub, "not a signature")),
		badSig("malformed/timestamp not a number", withSig(sub, "t=yesterday,"+validV1)),
		badSig("malformed/negative timestamp", withSig(sub, "t=-5,"+validV1)),
		badSig("malformed/no timestamp", withSig(sub, validV1)),
		badSig("malformed/no v1", withSig(sub, fmt.Sprintf("t=%d", testNow.Unix()))),
		badSig("malformed/v1 not hex", withSig(sub, fmt.Sprintf("t=%d,v1=zz%s", testNow.Unix(), strings.Repeat("0", 62)))),
		badSig("malformed/only v0", withSig(sub, strings.Replace(signature(sub, testNow, secretA), "v1=", "v0=", 1))),
		badSig("malformed/header over 8 KiB", withSig(sub, signature(sub, testNow, secretA)+",v0="+strings.Repeat("a", 8192))),
		badSig("wrong secret", withSig(sub, signature(sub, testNow, secretOther))),
		badSig("signature of another body", withSig(sub, signature(inv, testNow, secretA))),
		badSig("signature with another timestamp", withSig(sub, fmt.Sprintf("t=%d,", testNow.Unix()-1)+validV1)),
		badSig("timestamp older than the tolerance", sigAt(sub, testNow.Add(-tolerance-time.Second))),
		badSig("timestamp in the future beyond the tolerance", sigAt(sub, testNow.Add(tolerance+time.Second))),
		// A captured old signature replayed behind a fresh timestamp: the
		// timestamp checked must be the one that was signed.
		badSig("old signature behind a fresh timestamp", withSig(sub, fmt.Sprintf("t=%d,", testNow.Unix())+signature(sub, old, secretA))),

		// valid signature but body not a Stripe event → 400
		notEvent("empty", []byte{}),
		notEvent("not JSON", []byte("id=evt_1&type=invoice.paid")),
		notEvent("truncated JSON", sub[:len(sub)/2]),
		notEvent("JSON array", []byte(`[`+string(sub)+`]`)),
		notEvent("JSON string", []byte(`"evt_1OxJ9kLkdIwHu7ixR2bTqM5a"`)),
		notEvent("JSON null", []byte(`null`)),
		notEvent("id not evt_", withFields(t, sub, map[string]any{"id": "ch_3OxJBbLkdIwHu7ix0v5Qm9Zs"})),
		notEvent("id missing", withFields(t, sub, map[string]any{"id": nil})),
		notEvent("id not a string", withFields(t, sub, map[string]any{"id": 42})),
		notEvent("id too long", withFields(t, sub, map[string]any{"id": "evt_" + strings.Repeat("a", 300)})),
		notEvent("type missing", withFields(t, sub, map[string]any{"type": nil})),
		notEvent("type empty", withFields(t, sub, map[string]any{"type": ""})),
		notEvent("created missing", withFields(t, sub, map[string]any{"created": nil})),
		notEvent("created zero", withFields(t, sub, map[string]any{"created": 0})),
		notEvent("created a string", withFields(t, sub, map[string]any{"created": "2024-03-21"})),
		notEvent("data missing", withFields(t, sub, map[string]any{"data": nil})),
		notEvent("data.object missing", withFields(t, sub, map[string]any{"data": map[string]any{"previous_attributes": map[string]any{}}})),
		notEvent("data.object null", []byte(`{"id":"evt_1","object":"event","type":"invoice.paid","created":1711022510,"data":{"object":null}}`)),
		notEvent("object not event", withFields(t, sub, map[string]any{"object": "subscription"})),
		notEvent("NUL character in a string", bytes.Replace(sub, []byte(`"u_48213"`), []byte(`"u_48\u000013"`), 1)),
		notEvent("invalid UTF-8", bytes.Replace(sub, []byte(`"u_48213"`), []byte("\"u_48\xff\xfe213\""), 1)),
		notEvent("lone surrogate Postgres refuses", bytes.Replace(sub, []byte(`"u_48213"`), []byte(`"u_48\ud800213"`), 1)),
		notEvent("number Postgres cannot store", withFields(t, sub, map[string]any{"amount": json.Number("1e999999")})),

		// body over 1 MiB → 413
		tooLarge("with Content-Length", signed(overMax)),
		tooLarge("chunked", request{body: overMax, sig: signature(overMax, testNow, secretA), chunked: true}),
		tooLarge("3 MiB chunked", request{body: overMaxLots, sig: signature(overMaxLots, testNow, secretA), chunked: true}),
		tooLarge("unsigned", request{body: overMax}),

		// method other than POST → 405
		method(http.MethodGet),
		method(http.MethodPut),
		method(http.MethodDelete),
		method(http.MethodPatch),

		// database unavailable → 503, nothing half-written
		{name: "database unavailable", closeStore: true, req: signed(sub), wantCode: http.StatusServiceUnavailable,
			wantOutcome: metrics.OutcomeUnavailable},
	}
	// Cases that write get a schema of their own and run in parallel.
	// The others must leave the table empty: they share one schema and run
	// one after another (each with its own handler, metrics and server),
	// emptying the table after themselves so that a failure stays theirs.
	database := testenv.DatabaseURL(t)
	shared := newSchema(t, database)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fixtureConfig{tolerance: tolerance, databaseURL: database}
			if len(tc.before) > 0 || tc.wantStored != nil || tc.closeStore {
				t.Parallel()
			} else {
				cfg.schema = shared
				t.Cleanup(func() {
					if _, err := shared.check.X().Exec(`DELETE FROM stripe_webhook_events`); err != nil {
						t.Errorf("empty the shared table: %v", err)
					}
				})
			}
			f := newFixture(t, cfg)
			for _, rq := range tc.before {
				if res := f.do(t, rq); res.code != http.StatusOK {
					t.Fatalf("first delivery: %d %s", res.code, res.body)
				}
			}
			if tc.closeStore {
				f.store.Close()
			}
			res := f.do(t, tc.req)
			tc.check(t, f, res)
		})
	}
}

// tcase is one request of TestHandlerHTTPContract and what must follow.
type tcase struct {
	name        string
	before      []request // delivered first, each must get a 200
	closeStore  bool      // close the handler's pool before the request
	req         request
	wantCode    int
	wantStatus  string // the body's status for a 200
	wantOutcome string
	wantStored  *storedEvent // nil: the table must be empty
	wantNotify  int64
}

func (tc tcase) check(t *testing.T, f *fixture, res response) {
	t.Helper()
	if res.code != tc.wantCode {
		t.Errorf("status code = %d, want %d (body %s)", res.code, tc.wantCode, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	body := res.json(t)
	if tc.wantCode == http.StatusOK {
		if want := map[string]string{"status": tc.wantStatus}; !maps.Equal(body, want) {
			t.Errorf("body = %v, want %v", body, want)
		}
	} else if len(body) != 1 || body["error"] == "" {
		t.Errorf("body = %v, want one non-empty \"error\"", body)
	}
	if allow := res.header.Get("Allow"); (tc.wantCode == http.StatusMethodNotAllowed) != (allow == http.MethodPost) {
		t.Errorf("Allow = %q for a %d", allow, res.code)
	}
	if ra := res.header.Get("Retry-After"); (tc.wantCode == http.StatusServiceUnavailable) != (ra != "") {
		t.Errorf("Retry-After = %q for a %d", ra, res.code)
	}

	if tc.wantStored == nil {
		if n := f.rowCount(t); n != 0 {
			t.Errorf("stripe_webhook_events has %d rows, want none", n)
		}
	} else {
		f.wantStored(t, *tc.wantStored)
	}

	want := map[string]float64{tc.wantOutcome: 1}
	for range tc.before {
		switch {
		case tc.wantStored != nil && tc.wantStored.status == reconcile.StatusIgnored:
			want[metrics.OutcomeIgnored]++
		default:
			want[metrics.OutcomeAccepted]++
		}
	}
	f.wantOutcomes(t, want)
	if n := f.notify.Load(); n != tc.wantNotify {
		t.Errorf("Notify called %d times, want %d", n, tc.wantNotify)
	}
}

// TestHandlerSecretRotation: during a rotation both secrets are configured
// and a signature made with either is accepted; Stripe may also send one
// v1 per secret. A third secret is refused.
func TestHandlerSecretRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureConfig{secrets: []string{secretA, secretB}})
	base := readTestdata(t, fileSubUpdated)
	cases := []struct {
		name     string
		secrets  []string
		wantCode int
		want     string
	}{
		{"old secret", []string{secretA}, 200, "accepted"},
		{"new secret", []string{secretB}, 200, "accepted"},
		{"both, as Stripe sends while rolling", []string{secretA, secretB}, 200, "accepted"},
		{"unknown and new", []string{secretOther, secretB}, 200, "accepted"},
		{"third secret", []string{secretOther}, 400, ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("evt_rotation_%d", i)
			body := withFields(t, base, map[string]any{"id": id})
			res := f.do(t, request{body: body, sig: signature(body, testNow, tc.secrets...)})
			if res.code != tc.wantCode {
				t.Fatalf("status code = %d, want %d (body %s)", res.code, tc.wantCode, res.body)
			}
			if tc.wantCode == 200 {
				if got := res.json(t)["status"]; got != tc.want {
					t.Errorf("status = %q, want %q", got, tc.want)
				}
				f.event(t, id)
			} else if _, err := f.check.GetEvent(t.Context(), id); err == nil {
				t.Errorf("event %s signed with an unknown secret was stored", id)
			}
		})
	}
	t.Cleanup(func() {
		f.wantOutcomes(t, map[string]float64{metrics.OutcomeAccepted: 4, metrics.OutcomeInvalidSignature: 1})
		if n := f.rowCount(t); n != 4 {
			t.Errorf("%d rows stored, want 4", n)
		}
	})
}

// TestHandlerTimestampTolerance: the signature's timestamp is checked
// against the injected clock, on both sides, with the configured tolerance.
func TestHandlerTimestampTolerance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureConfig{tolerance: 5 * time.Minute})
	base := readTestdata(t, fileSubUpdated)
	cases := []struct {
		name     string
		signedAt time.Time
		wantCode int
	}{
		{"signed 10 minutes ago", testNow.Add(-10 * time.Minute), 400},
		{"signed 5m1s ago", testNow.Add(-5*time.Minute - time.Second), 400},
		{"signed exactly 5m ago", testNow.Add(-5 * time.Minute), 200},
		{"signed 4 minutes ago", testNow.Add(-4 * time.Minute), 200},
		{"signed now", testNow, 200},
		{"signed 4 minutes ahead", testNow.Add(4 * time.Minute), 200},
		{"signed 10 minutes ahead", testNow.Add(10 * time.Minute), 400},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("evt_tolerance_%d", i)
			body := withFields(t, base, map[string]any{"id": id})
			res := f.do(t, request{body: body, sig: signature(body, tc.signedAt, secretA)})
			if res.code != tc.wantCode {
				t.Fatalf("status code = %d, want %d (body %s)", res.code, tc.wantCode, res.body)
			}
			_, err := f.check.GetEvent(t.Context(), id)
			if stored := err == nil; stored != (tc.wantCode == 200) {
				t.Errorf("stored = %v after a %d (lookup: %v)", stored, res.code, err)
			}
		})
	}
}

// TestHandlerConcurrentDeliveries: Stripe (or several of its retries) may
// deliver one event many times at once; exactly one delivery stores it.
func TestHandlerConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	const n = 20
	f := newFixture(t, fixtureConfig{})
	body := readTestdata(t, fileSubUpdated)
	rq := signed(body)

	start := make(chan struct{})
	statuses := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			res, err := f.send(rq)
			var answer map[string]string
			if err == nil {
				err = json.Unmarshal(res.body, &answer)
			}
			if err != nil || res.code != http.StatusOK {
				t.Errorf("answer %d %s, %v; want a 200", res.code, res.body, err)
			}
			statuses <- answer["status"]
		})
	}
	close(start)
	wg.Wait()
	close(statuses)

	count := map[string]int{}
	for s := range statuses {
		count[s]++
	}
	if count["accepted"] != 1 || count["duplicate"] != n-1 || len(count) != 2 {
		t.Errorf("answers = %v, want 1 accepted and %d duplicate", count, n-1)
	}
	f.wantStored(t, *subUpdated.stored(body))
	f.wantOutcomes(t, map[string]float64{metrics.OutcomeAccepted: 1, metrics.OutcomeDuplicate: n - 1})
	if got := f.notify.Load(); got != 1 {
		t.Errorf("Notify called %d times, want 1", got)
	}
}

// TestHandlerNewerAPIVersion: an event of an API version newer than the one
// stripe-go v76 pins is still accepted and stored with its own version.
func TestHandlerNewerAPIVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureConfig{})
	body := readTestdata(t, fileCreatedBasil)
	res := f.post(t, body)
	if res.code != http.StatusOK || res.json(t)["status"] != "accepted" {
		t.Fatalf("answer = %d %s, want 200 accepted", res.code, res.body)
	}
	f.wantStored(t, *createdBasil.stored(body))
	f.wantOutcomes(t, map[string]float64{metrics.OutcomeAccepted: 1})
	if got := f.notify.Load(); got != 1 {
		t.Errorf("Notify called %d times, want 1", got)
	}
}

// TestHandlerLogs: every log line about an event names it (event_id, type,
// subscription_id), and no secret ever reaches a log line or a response.
func TestHandlerLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureConfig{secrets: []string{secretA, secretB}})
	sub := readTestdata(t, fileSubUpdated)
	inv := readTestdata(t, fileInvoicePaid)
	charge := readTestdata(t, fileChargeOK)

	type about struct{ id, typ, sub string } // the event a log line is about; zero when none
	steps := []struct {
		name  string
		req   request
		about about
	}{
		{"accepted", signed(sub), about{subUpdated.id, subUpdated.typ, subUpdated.subscriptionID}},
		{"duplicate", signed(sub), about{subUpdated.id, subUpdated.typ, subUpdated.subscriptionID}},
		{"accepted invoice", signed(inv), about{invoicePaid.id, invoicePaid.typ, invoicePaid.subscriptionID}},
		{"ignored", signed(charge), about{chargeSucceeded.id, chargeSucceeded.typ, ""}},
		{"wrong secret", request{body: sub, sig: signature(sub, testNow, secretOther)}, about{}},
		{"old timestamp", request{body: sub, sig: signature(sub, testNow.Add(-time.Hour), secretB)}, about{}},
		{"not an event", signed([]byte(`{"id":"ch_1","type":"charge.succeeded"}`)), about{}},
		{"too large", signed(padTo(t, sub, webhook.MaxBodyBytes+1)), about{}},
		{"method", request{method: http.MethodGet}, about{}},
	}
	var responses []string
	for _, st := range steps {
		before := strings.Count(f.logs.String(), "\n")
		res := f.do(t, st.req)
		responses = append(responses, string(res.body))
		lines := strings.Split(strings.TrimSuffix(f.logs.String(), "\n"), "\n")[before:]
		if len(lines) != 1 {
			t.Fatalf("%s: %d log lines, want 1:\n%s", st.name, len(lines), strings.Join(lines, "\n"))
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
			t.Fatalf("%s: log line is not JSON: %v\n%s", st.name, err, lines[0])
		}
		if st.about == (about{}) {
			continue
		}
		for key, want := range map[string]string{"event_id": st.about.id, "type": st.about.typ, "subscription_id": st.about.sub} {
			if got, ok := rec[key]; !ok || got != want {
				t.Errorf("%s: log %s = %v (present %v), want %q\n%s", st.name, key, got, ok, want, lines[0])
			}
		}
	}

	// The store going away after the events above: the 503 line names the
	// event too.
	f.store.Close()
	res := f.post(t, sub)
	responses = append(responses, string(res.body))
	if res.code != http.StatusServiceUnavailable {
		t.Fatalf("after closing the store: %d %s, want 503", res.code, res.body)
	}
	lines := strings.Split(strings.TrimSpace(f.logs.String()), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last["event_id"] != subUpdated.id || last["type"] != subUpdated.typ || last["subscription_id"] != subUpdated.subscriptionID {
		t.Errorf("503 log line does not name the event: %v", last)
	}

	logs := f.logs.String()
	for _, secret := range []string{secretA, secretB, secretOther} {
		if strings.Contains(logs, secret) {
			t.Errorf("a log line contains the secret %s…:\n%s", secret[:14], logs)
		}
		for i, body := range responses {
			if strings.Contains(body, secret) {
				t.Errorf("response %d contains the secret %s…: %s", i, secret[:14], body)
			}
		}
	}
}
