package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
	"github.com/subsync/subsync/webhook"
)

// moreCorpusDir holds further event shapes, each with its source in
// sources.json: Stripe SDK fixtures and stripe-mock's OpenAPI fixtures.
const moreCorpusDir = "../testdata/stripe-events-more"

// corpusDir holds real Stripe events of many API versions, each with its
// source in sources.json.
const corpusDir = "../testdata/stripe-events"

// corpusEvent is one recorded event, ready to post.
type corpusEvent struct {
	File       string `json:"file"`
	ID         string `json:"id"`
	Type       string `json:"type"`
	APIVersion string `json:"api_version"`
	Created    int64  `json:"created"`
	body       []byte
}

// loadCorpus reads the events listed in dir/sources.json. An event id
// that does not start with evt_ (Stripe's always do) is given the prefix,
// and nothing else is changed.
func loadCorpus(t testing.TB, dir string) []corpusEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "sources.json"))
	if err != nil {
		t.Fatal(err)
	}
	var evs []corpusEvent
	if err := json.Unmarshal(b, &evs); err != nil {
		t.Fatalf("%s/sources.json: %v", dir, err)
	}
	if len(evs) == 0 {
		t.Fatalf("%s/sources.json lists no event", dir)
	}
	for i := range evs {
		e := &evs[i]
		if e.body, err = os.ReadFile(filepath.Join(dir, e.File)); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.ID, "evt_") {
			e.body = bytes.Replace(e.body, []byte(`"`+e.ID+`"`), []byte(`"evt_`+e.ID+`"`), 1)
			e.ID = "evt_" + e.ID
		}
		ev, err := reconcile.DecodeEvent(e.body)
		if err != nil || ev.ID != e.ID || string(ev.Type) != e.Type || ev.APIVersion != e.APIVersion || ev.Created != e.Created {
			t.Fatalf("%s: decodes as %+v (%v), sources.json says %s %s %s %d", e.File, ev, err, e.ID, e.Type, e.APIVersion, e.Created)
		}
	}
	return evs
}

// wantRow is what a subscription's row must hold after its events, read
// by hand from the latest event about it (or, for subscriptions only
// invoices name, from the invoice's line). It also seeds the fake, so that
// refetch mode reads the same state from the API.
type wantRow struct {
	sub, customer, price, interval string
	count                          int64
	status                         string
	start, end                     int64
	cancelAtPeriodEnd              bool
	canceledAt                     int64
	plan, period                   string // plan_id ("" = null) and billing_period
}

// corpusPlans maps two of the corpus's prices: a pre-Prices plan id and a
// dahlia price.
var corpusPlans = []reconcile.PlanEntry{
	{Price: "plan_E6SQ6RAtmLVtzg", Plan: "maquina", Period: reconcile.PeriodAnnual},
	{Price: "price_1TZtAjJEe0yY0QKr27Tj0mDA", Plan: "consultor", Period: reconcile.PeriodMonthly},
}

// corpusRows are the subscriptions testdata/stripe-events describes.
var corpusRows = []wantRow{
	// 2020-03-02: created, then deleted.
	{"sub_JdIzvfy6o5GZRd", "cus_IhGfebO16cMIGN", "price_1IDQm5JDPojXS6LNM31hxKzp", "month", 1, "canceled",
		1623148918, 1625740918, false, 1623149102, "", "monthly"},
	// 2016-07-06: a top-level plan, no items; also named by the lines of a
	// 2018-11-08 invoice.payment_succeeded whose top-level subscription is null.
	{"sub_00000000000000", "cus_00000000000000", "gold_00000000000000", "month", 1, "active",
		1480672107, 1483350507, false, 0, "", "monthly"},
	// 2018-11-08: items with a plan and no price; created, then updated.
	{"sub_E6STM5w5EX3K28", "cus_00000000000000", "plan_E6SQ6RAtmLVtzg", "year", 1, "trialing",
		1544075635, 1572609600, false, 0, "maquina", "annual"},
	// 2020-08-27.
	{"sub_000000000000000000000000", "cus_00000000000000", "price_000000000000000000000000", "month", 1, "active",
		1648320105, 1650998505, false, 0, "", "monthly"},
	// 2026-04-22.dahlia: periods only on the items; created, then deleted.
	{"sub_1TbGh3JEe0yY0QKrmHd5I4l8", "cus_UZ11RVzkmLf6Cf", "price_1TZtAjJEe0yY0QKr27Tj0mDA", "month", 1, "canceled",
		1779785433, 1782463833, false, 1779785575, "consultor", "monthly"},
	// 2026-04-22.dahlia: updated, then trial_will_end.
	{"sub_1TZtDLJEe0yY0QKroHU9hRvx", "cus_UZ11RVzkmLf6Cf", "price_1TZtAjJEe0yY0QKr27Tj0mDA", "month", 1, "trialing",
		1779785647, 1779872032, false, 0, "consultor", "monthly"},
	// Named only by 2020-03-02 invoice.paid events (values from their lines).
	{"sub_JbpBbyTnwwDuSH", "cus_In8hNR2sjxGIgG", "price_1IDQm5JDPojXS6LNM31hxKzp", "month", 1, "active",
		1622807394, 1625399394, false, 0, "", "monthly"},
	{"sub_JsuPyCPhXWfZar", "cus_JsuO3bmrj0QlAw", "price_1IDQm5JDPojXS6LNM31hxKzp", "month", 1, "active",
		1642645280, 1645323680, false, 0, "", "monthly"},
}

// corpusEventSubs is the subscription each handled corpus event must be
// stored and applied for; every other event must be ignored.
var corpusEventSubs = map[string]string{
	"evt_1J02NfJDPojXS6LNawmt1X8q":       "sub_JdIzvfy6o5GZRd",
	"evt_1J02QdJDPojXS6LNnOJB09Xb":       "sub_JdIzvfy6o5GZRd",
	"evt_1IybXDJDPojXS6LNQdMK9k5R":       "sub_JbpBbyTnwwDuSH",
	"evt_1KJrGtJDPojXS6LN15fcthM3":       "sub_JsuPyCPhXWfZar",
	"evt_00000000000000":                 "sub_00000000000000",
	"evt_1DeFYZDEQaroqDjsX811NXeq":       "sub_E6STM5w5EX3K28",
	"evt_1DeFo8DEQaroqDjsk4tzzzdV":       "sub_E6STM5w5EX3K28",
	"evt_1TbGh9JEe0yY0QKrWXxtlSFi":       "sub_1TbGh3JEe0yY0QKrmHd5I4l8",
	"evt_1TbGjLJEe0yY0QKrJVg6cuyY":       "sub_1TbGh3JEe0yY0QKrmHd5I4l8",
	"evt_1TbGkWJEe0yY0QKrVdOxWpbv":       "sub_1TZtDLJEe0yY0QKroHU9hRvx",
	"evt_1TbGl4JEe0yY0QKrTkegvQtJ":       "sub_1TZtDLJEe0yY0QKroHU9hRvx",
	"evt_invoice.payment_00000000000000": "sub_00000000000000",
	"evt_000000000000000000000000":       "sub_000000000000000000000000",
}

// corpusEnv is a webhook handler and an applier on one migrated database,
// with the Stripe fake seeded with the corpus's subscriptions.
type corpusEnv struct {
	db      *db.DB
	fake    *stripefake.Server
	applier *reconcile.Applier
	url     string
	secret  string
}

func newCorpusEnv(t *testing.T, mode string, rows []wantRow, plans []reconcile.PlanEntry) *corpusEnv {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry(), false)
	d := dbtest.Open(t, db.Config{Metrics: m})
	fake := newFake(t, 3)
	for _, r := range rows {
		if _, err := fake.PutSubscription(stripefake.SubscriptionState{
			ID: r.sub, Customer: r.customer, Price: r.price, Interval: r.interval, IntervalCount: r.count,
			Status: r.status, CurrentPeriodStart: r.start, CurrentPeriodEnd: r.end,
			CancelAtPeriodEnd: r.cancelAtPeriodEnd, CanceledAt: r.canceledAt,
		}); err != nil {
			t.Fatal(err)
		}
	}
	pl := mustPlans(t, plans...)
	client := fakeClient(t, fake, stripeapi.Config{Metrics: m})
	e := &corpusEnv{db: d, fake: fake, secret: "whsec_corpus_5c1d9e3a7b"}
	e.applier = reconcile.NewApplier(reconcile.ApplierConfig{Mode: mode, Metrics: m, MaxAttempts: 2},
		d, client, &reconcile.Resolver{Plans: pl, Customers: client})
	h, err := webhook.New(webhook.Config{Secrets: []string{e.secret}, Metrics: m}, d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// post sends body signed now and returns the answer's status field.
func (e *corpusEnv) post(t *testing.T, body []byte) string {
	t.Helper()
	sig := stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{
		Payload: body, Secret: e.secret, Timestamp: time.Now(),
	})
	req, err := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Stripe-Signature", sig.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct{ Status, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST answered %d %+v (%v)", resp.StatusCode, ans, err)
	}
	return ans.Status
}

// checkRows asserts that each subscription's row holds what want says.
func checkRows(t *testing.T, d *db.DB, rows []wantRow) {
	t.Helper()
	for _, w := range rows {
		got, err := d.GetSubscription(context.Background(), w.sub)
		if err != nil {
			t.Errorf("%s: %v", w.sub, err)
			continue
		}
		if diff := rowDiff(got, w); diff != "" {
			t.Errorf("%s: %s", w.sub, diff)
		}
	}
}

func rowDiff(got reconcile.Subscription, w wantRow) string {
	var out []string
	cmpField := func(name, g, x string) {
		if g != x {
			out = append(out, fmt.Sprintf("%s = %q, want %q", name, g, x))
		}
	}
	cmpField("status", got.Status, w.status)
	cmpField("stripe_customer_id", got.StripeCustomerID, w.customer)
	cmpField("stripe_price_id", deref(got.StripePriceID), w.price)
	cmpField("plan_id", deref(got.PlanID), w.plan)
	cmpField("billing_period", got.BillingPeriod, w.period)
	cmpField("current_period_start", unixOf(got.CurrentPeriodStart), unixText(w.start))
	cmpField("current_period_end", unixOf(got.CurrentPeriodEnd), unixText(w.end))
	cmpField("canceled_at", unixOf(got.CanceledAt), unixText(w.canceledAt))
	cmpField("cancel_at_period_end", fmt.Sprint(got.CancelAtPeriodEnd), fmt.Sprint(w.cancelAtPeriodEnd))
	return strings.Join(out, "; ")
}

func unixOf(t *time.Time) string {
	if t == nil {
		return "null"
	}
	return fmt.Sprint(t.Unix())
}

func unixText(sec int64) string {
	if sec == 0 {
		return "null"
	}
	return fmt.Sprint(sec)
}

// moreRows are the subscriptions testdata/stripe-events-more describes.
var moreRows = []wantRow{
	// stripe-mock v0.203.0 (2026-08-26.dahlia): the period only on the item
	// (stripe-mock's fixture has it end before it starts, and so must the row).
	{"sub_1", "cus_QXg1o8vcGmoR32", "price_1PgafmB7WZ01zgkW6dKueIc5", "month", 1, "active",
		1896570518, 976287773, true, 1234567890, "", "monthly"},
	// Named by stripe-mock's invoice under parent.subscription_details.
	{"subscription", "cus_QXg1o8vcGmoR32", "price_1PgafmB7WZ01zgkW6dKueIc5", "month", 1, "past_due",
		1780000000, 1782592000, false, 0, "", "monthly"},
}

// moreEventSubs is the subscription each event of testdata/stripe-events-more
// must be applied for.
var moreEventSubs = map[string]string{
	"evt_stripemock_customer_subscription_created":                "sub_1",
	"evt_stripemock_customer_subscription_updated":                "sub_1",
	"evt_stripemock_customer_subscription_paused":                 "sub_1",
	"evt_stripemock_customer_subscription_resumed":                "sub_1",
	"evt_stripemock_customer_subscription_trial_will_end":         "sub_1",
	"evt_stripemock_customer_subscription_pending_update_applied": "sub_1",
	"evt_stripemock_customer_subscription_pending_update_expired": "sub_1",
	"evt_stripemock_customer_subscription_deleted":                "sub_1",
	"evt_stripemock_invoice_paid":                                 "subscription",
	"evt_stripemock_invoice_payment_succeeded":                    "subscription",
	"evt_stripemock_invoice_payment_failed":                       "subscription",
}

// TestRecordedEventsOfEveryAPIVersion posts every event of both corpora
// signed, in both modes, and checks that each handled event is applied for
// the subscription it names (invoices included, whatever their version
// names it by), every other is ignored, and each subscription's row equals
// what its latest event says.
func TestRecordedEventsOfEveryAPIVersion(t *testing.T) {
	t.Parallel()
	corpora := []struct {
		name   string
		dir    string
		rows   []wantRow
		subsOf map[string]string
	}{
		{"recorded", corpusDir, corpusRows, corpusEventSubs},
		{"more", moreCorpusDir, moreRows, moreEventSubs},
	}
	for _, c := range corpora {
		corpus := loadCorpus(t, c.dir)
		for _, mode := range []string{reconcile.ModePayload, reconcile.ModeRefetch} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				e := newCorpusEnv(t, mode, c.rows, corpusPlans)
				for _, ev := range corpus {
					want := "ignored"
					if reconcile.Handled(ev.Type) {
						want = "accepted"
					}
					if got := e.post(t, ev.body); got != want {
						t.Errorf("%s (%s %s): answered %q, want %q", ev.File, ev.Type, ev.APIVersion, got, want)
					}
				}
				if _, err := e.applier.Drain(context.Background()); err != nil {
					t.Fatal(err)
				}
				for _, ev := range corpus {
					row, err := e.db.GetEvent(context.Background(), ev.ID)
					if err != nil {
						t.Fatal(err)
					}
					sub, handled := c.subsOf[ev.ID]
					switch {
					case handled && (row.Status != reconcile.StatusApplied || row.SubscriptionID.String != sub):
						t.Errorf("%s (%s %s): %s for %q (%s), want applied for %s", ev.File, ev.Type, ev.APIVersion,
							row.Status, row.SubscriptionID.String, row.LastError.String, sub)
					case !handled && row.Status != reconcile.StatusIgnored:
						t.Errorf("%s (%s %s): %s, want ignored", ev.File, ev.Type, ev.APIVersion, row.Status)
					}
				}
				checkRows(t, e.db, c.rows)
			})
		}
	}
}

// TestCatchUpPagesMixingAPIVersions has the account change its default API
// version three times (pre-Prices, 2023-10-16, basil, dahlia) while its
// subscriptions change: GET /v1/events renders each event in the version
// it was created with, so one page mixes four shapes. In both modes every
// caught-up event is applied for its subscription and the table ends equal
// to Stripe.
func TestCatchUpPagesMixingAPIVersions(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{reconcile.ModePayload, reconcile.ModeRefetch} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := newRecFixture(t)
			now := time.Date(2026, time.May, 1, 12, 0, 0, 0, time.UTC)
			clock := f.useClock(now)
			step := func(version string) {
				now = now.Add(time.Minute)
				clock.Set(now)
				f.fake.SetAPIVersion(version)
			}
			must := func(_ any, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			step("2018-11-08")
			a := f.subscribe(t, "user_a", f.annual)
			step(stripefake.DefaultAPIVersion)
			b := f.subscribe(t, "user_b", f.monthly)
			step("2025-03-31.basil")
			c := f.subscribe(t, "user_c", f.annual)
			step("2025-03-31.basil")
			must(f.fake.Renew(a))
			step("2026-04-22.dahlia")
			must(f.fake.FailPayment(b))
			step("2026-04-22.dahlia")
			must(f.fake.SetCancelAtPeriodEnd(c, true))
			step("2018-11-08")
			must(f.fake.UpdateSubscriptionPrice(a, f.monthly))
			step("2026-04-22.dahlia")

			// One event per batch: each is applied on its own, from its own
			// payload in payload mode (a batch refetches a subscription once
			// when any of its events is an invoice's).
			applier := reconcile.NewApplier(reconcile.ApplierConfig{Mode: mode, Metrics: f.metrics, Clock: clock.Now, BatchSize: 1},
				f.db, f.client(t, stripeapi.Config{}), f.resolver)
			rec := f.reconciler(t, reconcile.Config{Clock: clock.Now, EventsLookback: time.Hour, ApplyEvents: applier.Drain}, stripeapi.Config{})
			rep := f.run(t, rec, reconcile.JobEvents, false)
			handled := f.handledEvents("")
			if rep.Counts.Scanned != len(handled) || rep.Counts.Fixed != len(handled) {
				t.Fatalf("scanned %d, fixed %d; want %d each", rep.Counts.Scanned, rep.Counts.Fixed, len(handled))
			}
			versions := map[string]bool{}
			for _, id := range handled {
				ev, err := f.db.GetEvent(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				versions[ev.APIVersion.String] = true
				fev, _ := f.fake.Event(id)
				if want := reconcile.SubscriptionIDOf(fev); ev.Status != reconcile.StatusApplied || ev.SubscriptionID.String != want || want == "" {
					t.Errorf("%s %s (%s): %s for %q (%s), want applied for %q", id, ev.Type, ev.APIVersion.String,
						ev.Status, ev.SubscriptionID.String, ev.LastError.String, want)
				}
			}
			if len(versions) != 4 {
				t.Fatalf("caught-up events in versions %v, want four", versions)
			}
			f.assertTableMatchesStripe(t)
		})
	}
}
