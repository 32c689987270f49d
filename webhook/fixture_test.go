package webhook_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/migrations"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/webhook"
)

// Secrets the tests sign with. They are long and distinctive so that a
// search of logs and responses for them cannot match by accident.
const (
	secretA     = "whsec_test_A_7f3c9a1e5b2d8f4061c7e9a3b5d2f8e4c6a1b9d3"
	secretB     = "whsec_test_B_2e8b4d6f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b"
	secretOther = "whsec_test_X_9d1f3a5c7e9b2e8b4d6f0a1c3e5b7d9f1a3c5e7b"
)

// testNow is the handler's clock in every test: signatures are made
// relative to it, so no test depends on the wall clock.
var testNow = time.Date(2024, time.March, 21, 12, 0, 0, 0, time.UTC)

// Testdata payloads (API version 2023-10-16 unless the name says otherwise).
const (
	fileSubUpdated   = "customer_subscription_updated.json"
	fileInvoicePaid  = "invoice_paid.json"
	fileChargeOK     = "charge_succeeded.json"
	fileCreatedBasil = "customer_subscription_created_basil.json"
)

// allOutcomes are the values of subsync_webhook_requests_total's label.
var allOutcomes = []string{
	metrics.OutcomeAccepted, metrics.OutcomeDuplicate, metrics.OutcomeIgnored,
	metrics.OutcomeInvalidSignature, metrics.OutcomeBadRequest, metrics.OutcomeTooLarge,
	metrics.OutcomeUnavailable, metrics.OutcomeMethodNotAllowed,
}

// fixtureConfig adjusts a fixture; the zero value is one secret (secretA),
// a 5m tolerance and a fresh database.
type fixtureConfig struct {
	secrets   []string
	tolerance time.Duration
	// schema is the migrated schema to use, shared with other fixtures;
	// nil means a new one in databaseURL.
	schema *schema
	// databaseURL is the database a new schema is created in; empty means
	// a fresh database from testenv. Table tests share one database between
	// their cases, each case having its own schema: creating a database
	// costs far more.
	databaseURL string
}

// schema is a migrated schema of its own in a real database.
type schema struct {
	url   string // the database URL with the schema as search_path
	store *db.DB // the handler's pool
	check *db.DB // a pool of its own for assertions
}

// newSchema creates and migrates a schema in the database of base.
func newSchema(t testing.TB, base string) *schema {
	t.Helper()
	s := &schema{url: createSchema(t, base)}
	// The assertions' pool migrates; it may skip waiting for the WAL flush
	// (the handler's pool keeps the server's durability settings).
	s.check = openDB(t, withParams(t, s.url, "synchronous_commit", "off"))
	migrate(t, s.check)
	s.store = openDB(t, s.url)
	return s
}

// fixture is a handler on a real, migrated database schema, served over
// real HTTP, with metrics, logs and Notify calls of its own.
type fixture struct {
	*schema
	url     string       // the webhook endpoint
	handler http.Handler // the handler itself, for the fuzz target
	metrics *metrics.Metrics
	logs    *testenv.Buffer
	notify  atomic.Int64
}

func newFixture(t testing.TB, cfg fixtureConfig) *fixture {
	t.Helper()
	f := &fixture{schema: cfg.schema, logs: &testenv.Buffer{}}
	if f.schema == nil {
		base := cfg.databaseURL
		if base == "" {
			base = testenv.DatabaseURL(t)
		}
		f.schema = newSchema(t, base)
	}
	f.metrics = metrics.New(prometheus.NewRegistry(), false)
	secrets := cfg.secrets
	if secrets == nil {
		secrets = []string{secretA}
	}
	h, err := webhook.New(webhook.Config{
		Secrets:   secrets,
		Tolerance: cfg.tolerance,
		Logger:    slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:   f.metrics,
		Notify:    func() { f.notify.Add(1) },
		Clock:     func() time.Time { return testNow },
	}, f.store)
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	f.handler = h
	mux := http.NewServeMux()
	mux.Handle("/webhooks/stripe", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL + "/webhooks/stripe"
	return f
}

// createSchema creates an empty schema in the database of base and returns
// base with that schema as its search_path (lib/pq sends the parameter to
// the server), so migrations and queries stay inside it.
func createSchema(t testing.TB, base string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	return withParams(t, base, "search_path", name)
}

// migrate applies every migration to d's schema: goose on the same
// embedded files as db.Migrate, without its session locker. That lock is
// per database and a waiter polls it every 5 s, while each schema here has
// a goose_db_version of its own, so cases migrating in parallel need no
// lock between them. db.Ready then confirms the schema is current.
func migrate(t testing.TB, d *db.DB) {
	t.Helper()
	p, err := goose.NewProvider(goose.DialectPostgres, d.X().DB, migrations.FS, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := d.Ready(context.Background()); err != nil {
		t.Fatalf("after migrating: %v", err)
	}
}

// withParams returns the postgres URL u with the query parameter k set to v.
func withParams(t testing.TB, u, k, v string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("database URL: %v", err)
	}
	q := p.Query()
	q.Set(k, v)
	p.RawQuery = q.Encode()
	return p.String()
}

func openDB(t testing.TB, url string) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{URL: url, MaxOpenConns: 25})
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// readTestdata returns the contents of webhook/testdata/name.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withFields returns body (a JSON object) with the top-level fields set
// (a nil value deletes the field).
func withFields(t testing.TB, body []byte, fields map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("testdata is not a JSON object: %v", err)
	}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signature returns a Stripe-Signature header for body signed with each
// secret at ts, the way Stripe builds it (several v1 during a rotation).
func signature(body []byte, ts time.Time, secrets ...string) string {
	h := fmt.Sprintf("t=%d", ts.Unix())
	for _, s := range secrets {
		h += ",v1=" + hex.EncodeToString(stripewebhook.ComputeSignature(ts, body, s))
	}
	return h
}

// response is what the endpoint answered.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// json decodes the response body as a JSON object of strings.
func (r response) json(t testing.TB) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body %q is not a JSON object of strings: %v", r.body, err)
	}
	return m
}

// request is one request to the endpoint.
type request struct {
	method  string // default POST
	body    []byte
	sig     string // Stripe-Signature; "" sends none
	chunked bool   // send the body without Content-Length
}

func (f *fixture) do(t testing.TB, rq request) response {
	t.Helper()
	res, err := f.send(rq)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// send is do for goroutines other than the test's: it returns errors.
func (f *fixture) send(rq request) (response, error) {
	method := rq.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader = bytes.NewReader(rq.body)
	if rq.chunked {
		body = struct{ io.Reader }{body} // hides the length
	}
	req, err := http.NewRequest(method, f.url, body)
	if err != nil {
		return response{}, err
	}
	if rq.chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	if rq.sig != "" {
		req.Header.Set("Stripe-Signature", rq.sig)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, f.url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, fmt.Errorf("read response: %w", err)
	}
	return response{code: res.StatusCode, header: res.Header, body: b}, nil
}

// post sends body signed with secretA at testNow.
func (f *fixture) post(t testing.TB, body []byte) response {
	t.Helper()
	return f.do(t, request{body: body, sig: signature(body, testNow, secretA)})
}

// rowCount counts every row of stripe_webhook_events.
func (f *fixture) rowCount(t testing.TB) int {
	t.Helper()
	var n int
	if err := f.check.X().Get(&n, `SELECT count(*) FROM stripe_webhook_events`); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}

// event reads the stored event id.
func (f *fixture) event(t testing.TB, id string) db.EventRow {
	t.Helper()
	ev, err := f.check.GetEvent(context.Background(), id)
	if err != nil {
		t.Fatalf("event %s is not stored: %v", id, err)
	}
	return ev
}

// outcomes returns subsync_webhook_requests_total by outcome, zeros left out.
func (f *fixture) outcomes() map[string]float64 {
	m := map[string]float64{}
	for _, o := range allOutcomes {
		if v := testutil.ToFloat64(f.metrics.WebhookRequests.WithLabelValues(o)); v != 0 {
			m[o] = v
		}
	}
	return m
}

func (f *fixture) wantOutcomes(t testing.TB, want map[string]float64) {
	t.Helper()
	if got := f.outcomes(); !reflect.DeepEqual(got, want) {
		t.Errorf("subsync_webhook_requests_total = %v, want %v", got, want)
	}
}

// storedEvent is what a stored row must hold.
type storedEvent struct {
	id, typ, apiVersion, status, subscriptionID string
	created                                     int64
	payload                                     []byte // compared as JSON
}

// wantStored checks the only row of the table against want.
func (f *fixture) wantStored(t testing.TB, want storedEvent) {
	t.Helper()
	if n := f.rowCount(t); n != 1 {
		t.Errorf("stripe_webhook_events has %d rows, want 1", n)
	}
	got := f.event(t, want.id)
	if got.Type != want.typ {
		t.Errorf("type = %q, want %q", got.Type, want.typ)
	}
	if got.APIVersion.String != want.apiVersion || !got.APIVersion.Valid {
		t.Errorf("api_version = %v, want %q", got.APIVersion, want.apiVersion)
	}
	if got.Status != want.status {
		t.Errorf("status = %q, want %q", got.Status, want.status)
	}
	if got.Source != reconcile.SourceWebhook {
		t.Errorf("source = %q, want %q", got.Source, reconcile.SourceWebhook)
	}
	if !got.Created.Equal(time.Unix(want.created, 0)) {
		t.Errorf("stripe_created_at = %v, want %v", got.Created.UTC(), time.Unix(want.created, 0).UTC())
	}
	if want.subscriptionID == "" {
		if got.SubscriptionID.Valid {
			t.Errorf("subscription_id = %q, want NULL", got.SubscriptionID.String)
		}
	} else if got.SubscriptionID.String != want.subscriptionID {
		t.Errorf("subscription_id = %v, want %q", got.SubscriptionID, want.subscriptionID)
	}
	if got.Attempts != 0 || got.LastError.Valid || got.Livemode {
		t.Errorf("attempts, last_error, livemode = %d, %v, %v; want 0, NULL, false", got.Attempts, got.LastError, got.Livemode)
	}
	if done := want.status == reconcile.StatusIgnored; got.ProcessedAt.Valid != done {
		t.Errorf("processed_at = %v, want set: %v", got.ProcessedAt, done)
	}
	if !jsonEqual(t, got.Payload, want.payload) {
		t.Errorf("payload differs from the body that was first stored:\n got %.300s\nwant %.300s", got.Payload, want.payload)
	}
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("stored payload is not JSON: %v", err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("expected payload is not JSON: %v", err)
	}
	return reflect.DeepEqual(x, y)
}
