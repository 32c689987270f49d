package stripefake

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// TestDirectConversionMatchesJSON holds subToStripe to what stripe-go
// decodes from the JSON the API answers, across the states a subscription
// goes through.
func TestDirectConversionMatchesJSON(t *testing.T) {
	t.Parallel()
	s := NewUnstarted(Options{Seed: 1, Clock: func() time.Time { return time.Unix(1700000000, 0) }})
	pr, err := s.CreatePrice(PriceParams{UnitAmount: 100, Interval: "month", LookupKey: "k", Nickname: "n"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateCustomer(CustomerParams{Email: "a@b.c"})
	if err != nil {
		t.Fatal(err)
	}
	newSub := func(p SubscriptionParams) string {
		p.Customer, p.Price = c.ID, pr.ID
		sub, err := s.CreateSubscription(p)
		if err != nil {
			t.Fatal(err)
		}
		return sub.ID
	}
	steps := map[string]func(id string) error{
		"active":   func(string) error { return nil },
		"trialing": func(string) error { return nil },
		"canceled": func(id string) error { _, err := s.CancelSubscription(id); return err },
		"cape":     func(id string) error { _, err := s.SetCancelAtPeriodEnd(id, true); return err },
		"past_due": func(id string) error { _, err := s.FailPayment(id); return err },
		"paused":   func(id string) error { _, err := s.Pause(id); return err },
		"pause_collection": func(id string) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			_, err := s.updateSubLocked(id, subUpdate{pause: &pauseCollection{Behavior: "void", ResumesAt: int64Ptr(5)}}, reqInfo{})
			return err
		},
		"metadata": func(id string) error {
			_, err := s.SetSubscriptionMetadata(id, map[string]string{"user_id": "u"})
			return err
		},
	}
	for name, step := range steps {
		t.Run(name, func(t *testing.T) {
			p := SubscriptionParams{}
			if name == "trialing" {
				p.TrialPeriodDays = 7
			}
			id := newSub(p)
			if err := step(id); err != nil {
				t.Fatal(err)
			}
			s.mu.RLock()
			sub, _ := s.subs.get(id)
			raw := sub.json()
			direct := subToStripe(sub)
			s.mu.RUnlock()
			var decoded stripe.Subscription
			if err := json.Unmarshal(raw, &decoded); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(direct, &decoded) {
				d, _ := json.Marshal(direct)
				e, _ := json.Marshal(&decoded)
				t.Fatalf("direct conversion differs from decoding:\n direct %s\ndecoded %s", d, e)
			}
		})
	}
}

// TestWireShape checks the raw JSON of a subscription and of a list against
// Stripe's shape: ids (not objects) for customer and latest_invoice, a full
// price with recurring, null for unset timestamps.
func TestWireShape(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	t.Cleanup(s.Close)
	pr, _ := s.CreatePrice(PriceParams{UnitAmount: 100, Interval: "year"})
	c, _ := s.CreateCustomer(CustomerParams{})
	sub, err := s.CreateSubscription(SubscriptionParams{Customer: c.ID, Price: pr.ID})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) map[string]any {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
		return m
	}
	m := get("/v1/subscriptions/" + sub.ID)
	items := m["items"].(map[string]any)
	price := items["data"].([]any)[0].(map[string]any)["price"].(map[string]any)
	rec := price["recurring"].(map[string]any)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"object", m["object"], "subscription"},
		{"customer", m["customer"], c.ID},
		{"latest_invoice is an id", reflect.TypeOf(m["latest_invoice"]).Kind(), reflect.String},
		{"canceled_at", m["canceled_at"], nil},
		{"livemode", m["livemode"], false},
		{"items.object", items["object"], "list"},
		{"price.object", price["object"], "price"},
		{"recurring.interval", rec["interval"], "year"},
		{"recurring.interval_count", rec["interval_count"], 1.0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	l := get("/v1/subscriptions?limit=1")
	if l["object"] != "list" || l["url"] != "/v1/subscriptions" || l["has_more"] != false || len(l["data"].([]any)) != 1 {
		t.Errorf("list = %v", l)
	}
	inv := get("/v1/invoices/" + m["latest_invoice"].(string))
	if inv["subscription"] != sub.ID || inv["object"] != "invoice" {
		t.Errorf("invoice subscription = %v", inv["subscription"])
	}
	e := get("/v1/subscriptions/" + sub.ID + "?expand[]=customer")
	if cus, ok := e["customer"].(map[string]any); !ok || cus["id"] != c.ID {
		t.Errorf("expanded customer = %v", e["customer"])
	}
}
