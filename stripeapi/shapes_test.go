package stripeapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/stripeapi"
)

// mockGet fetches path from stripe-mock as stripe-go would ask it
// (Stripe-Version 2023-10-16) and returns the raw body.
func mockGet(t *testing.T, base, path string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer sk_test_123")
	req.Header.Set("Stripe-Version", stripe.APIVersion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", path, resp.StatusCode, err, b)
	}
	return b
}

func asMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestShapesOfTheLatestAPIVersion checks the version-tolerant reader
// against Stripe's own description of today's shapes: the OpenAPI of
// 2026-08-26.dahlia that stripe-mock v0.203.0 embeds, and the objects it
// serves. The spec must have moved the period to the items and the
// invoice's subscription under parent (else this test no longer tests
// what it says); the reader must find both; and the events of
// testdata/stripe-events-more built from stripe-mock's objects must hold
// exactly what stripe-mock serves.
func TestShapesOfTheLatestAPIVersion(t *testing.T) {
	t.Parallel()
	specBytes, err := os.ReadFile(testenv.StripeMockLatestSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Info       struct{ Version string } `json:"info"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(specBytes, &spec); err != nil {
		t.Fatal(err)
	}
	has := func(schema, prop string) bool {
		_, ok := spec.Components.Schemas[schema].Properties[prop]
		return ok
	}
	switch {
	case spec.Info.Version != testenv.StripeMockLatestVersion:
		t.Fatalf("spec version %q, want %q", spec.Info.Version, testenv.StripeMockLatestVersion)
	case has("subscription", "current_period_start") || has("subscription", "current_period_end"):
		t.Fatal("the spec's subscription still has current_period_*")
	case !has("subscription_item", "current_period_start") || !has("subscription_item", "current_period_end"):
		t.Fatal("the spec's subscription_item has no current_period_*")
	case has("invoice", "subscription") || !has("invoice", "parent"):
		t.Fatal("the spec's invoice still has subscription, or no parent")
	case !has("line_item", "parent"):
		t.Fatal("the spec's invoice line has no parent")
	}

	base := testenv.StartStripeMockLatest(t)
	subRaw := mockGet(t, base, "/v1/subscriptions/sub_1")
	sub := asMap(t, subRaw)
	if _, ok := sub["current_period_end"]; ok {
		t.Fatal("stripe-mock's subscription has a top-level current_period_end")
	}
	item := sub["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	price := item["price"].(map[string]any)
	rec := price["recurring"].(map[string]any)
	got, err := stripeapi.DecodeSubscription(subRaw, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": sub["id"], "status": sub["status"], "customer": sub["customer"],
		"cancel_at_period_end": sub["cancel_at_period_end"], "canceled_at": sub["canceled_at"],
		"period_start": item["current_period_start"], "period_end": item["current_period_end"],
		"price": price["id"], "interval": rec["interval"], "interval_count": rec["interval_count"],
	}
	have := map[string]any{
		"id": got.ID, "status": string(got.Status), "customer": got.Customer.ID,
		"cancel_at_period_end": got.CancelAtPeriodEnd, "canceled_at": float64(got.CanceledAt),
		"period_start": float64(got.CurrentPeriodStart), "period_end": float64(got.CurrentPeriodEnd),
		"price": got.Items.Data[0].Price.ID, "interval": string(got.Items.Data[0].Price.Recurring.Interval),
		"interval_count": float64(got.Items.Data[0].Price.Recurring.IntervalCount),
	}
	if !reflect.DeepEqual(have, want) || got.CurrentPeriodEnd == 0 {
		t.Fatalf("decoded %v\nwant    %v", have, want)
	}

	invRaw := mockGet(t, base, "/v1/invoices/in_1")
	inv := asMap(t, invRaw)
	parentSub, _ := inv["parent"].(map[string]any)["subscription_details"].(map[string]any)["subscription"].(string)
	if _, ok := inv["subscription"]; ok || parentSub == "" {
		t.Fatalf("stripe-mock's invoice: subscription %v, parent.subscription_details.subscription %q", inv["subscription"], parentSub)
	}
	if id := stripeapi.InvoiceSubscriptionID(inv); id != parentSub {
		t.Fatalf("InvoiceSubscriptionID = %q, want %q", id, parentSub)
	}

	checkMockCorpus(t, map[string][]byte{
		"GET /v1/subscriptions/sub_1": subRaw,
		"GET /v1/invoices/in_1":       invRaw,
	})
}

// checkMockCorpus asserts that each stripe-mock event of
// testdata/stripe-events-more carries exactly the object stripe-mock
// serves at the path sources.json names.
func checkMockCorpus(t *testing.T, served map[string][]byte) {
	t.Helper()
	dir := "../testdata/stripe-events-more"
	b, err := os.ReadFile(filepath.Join(dir, "sources.json"))
	if err != nil {
		t.Fatal(err)
	}
	var srcs []struct {
		File, Repo, Type string
		ObjectFrom       string `json:"object_from"`
	}
	if err := json.Unmarshal(b, &srcs); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range srcs {
		if s.Repo != "stripe/stripe-mock" {
			continue
		}
		n++
		body, err := os.ReadFile(filepath.Join(dir, s.File))
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Type string
			Data struct{ Object json.RawMessage }
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatalf("%s: %v", s.File, err)
		}
		live, ok := served[s.ObjectFrom]
		if !ok || ev.Type != s.Type || !jsonEqual(t, ev.Data.Object, live) {
			t.Errorf("%s: its object is not what stripe-mock serves at %q (or its type is not %s)", s.File, s.ObjectFrom, s.Type)
		}
	}
	if n == 0 || !strings.Contains(string(b), "stripe-mock") {
		t.Fatal("no stripe-mock event in testdata/stripe-events-more")
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.NewDecoder(bytes.NewReader(a)).Decode(&x) != nil || json.NewDecoder(bytes.NewReader(b)).Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
