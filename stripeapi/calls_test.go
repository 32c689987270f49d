package stripeapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

func TestNotFound(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/subscriptions/sub_gone" {
			writeJSON(w, http.StatusNotFound, stripeErr("invalid_request_error", "resource_missing", "No such subscription: 'sub_gone'"))
			return
		}
		// Stripe's answer to a path it does not know: 404 without code.
		writeJSON(w, http.StatusNotFound, stripeErr("invalid_request_error", "", "Unrecognized request URL"))
	}))
	defer srv.Close()
	env := newTestClient(t, srv.URL, func(c *Config) { c.Metrics = nil })

	_, err := env.c.GetSubscription(t.Context(), "sub_gone")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if want := "get subscription sub_gone: "; err.Error()[:len(want)] != want {
		t.Errorf("error = %q, want prefix %q", err, want)
	}
	var se *stripe.Error
	if !errors.As(err, &se) || se.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("error %v does not unwrap to the stripe-go error", err)
	}
	if _, err := env.c.GetPrice(t.Context(), "price_x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("404 without resource_missing: err = %v, want an error that is not ErrNotFound", err)
	}
	if _, err := env.c.GetSubscription(t.Context(), ""); err == nil {
		t.Error("empty id accepted")
	}
}

// recorded is what the server saw of one request.
type recorded struct {
	path  string
	query url.Values
}

func recordingServer(t *testing.T, answer func(r *http.Request, n int) any) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		mu.Lock()
		reqs = append(reqs, recorded{path: r.URL.Path, query: r.URL.Query()})
		n := len(reqs)
		mu.Unlock()
		writeJSON(w, 200, answer(r, n))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reqs)
	}
}

// arrayParam reads a form array, as types[]=a or types[0]=a.
func arrayParam(q url.Values, name string) []string {
	if v := q[name+"[]"]; len(v) > 0 {
		return v
	}
	var out []string
	for i := 0; ; i++ {
		v, ok := q[name+"["+strconv.Itoa(i)+"]"]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

func event(id string, created int64) map[string]any {
	e := obj("event", id)
	e["created"] = created
	e["type"] = "customer.subscription.updated"
	return e
}

func TestListEventsPaginates(t *testing.T) {
	t.Parallel()
	srv, seen := recordingServer(t, func(r *http.Request, n int) any {
		if r.URL.Query().Get("starting_after") == "" {
			return list("/v1/events", true, event("evt_3", 1700000300), event("evt_2", 1700000200))
		}
		return list("/v1/events", false, event("evt_1", 1700000100))
	})
	env := newTestClient(t, srv.URL, nil)
	since := time.Unix(1700000000, 0)
	types := []string{"customer.subscription.updated", "invoice.paid"}

	var got []string
	err := env.c.ListEvents(WithPriority(t.Context(), PriorityLow), types, since, func(e *stripe.Event) error {
		got = append(got, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"evt_3", "evt_2", "evt_1"}; !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	reqs := seen()
	if len(reqs) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.path != "/v1/events" {
			t.Errorf("request %d path = %s", i, r.path)
		}
		if ts := arrayParam(r.query, "types"); !slices.Equal(ts, types) {
			t.Errorf("request %d types = %v, want %v (query %v)", i, ts, types, r.query)
		}
		if v := r.query.Get("created[gte]"); v != "1700000000" {
			t.Errorf("request %d created[gte] = %q", i, v)
		}
		if v := r.query.Get("limit"); v != "100" {
			t.Errorf("request %d limit = %q", i, v)
		}
	}
	if v := reqs[1].query.Get("starting_after"); v != "evt_2" {
		t.Errorf("second page starting_after = %q, want evt_2", v)
	}

	// fn's error stops the listing and comes back unchanged.
	stop := errors.New("stop")
	calls := 0
	err = env.c.ListEvents(t.Context(), nil, time.Time{}, func(*stripe.Event) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("err = %v after %d calls, want stop after 1", err, calls)
	}
	if r := seen()[2]; len(arrayParam(r.query, "types")) != 0 || r.query.Has("created[gte]") {
		t.Errorf("unfiltered listing sent filters: %v", r.query)
	}
	if err := env.c.ListEvents(t.Context(), make([]string, 21), since, nil); err == nil {
		t.Error("21 types accepted")
	}
}

func TestListSubscriptionsPage(t *testing.T) {
	t.Parallel()
	srv, seen := recordingServer(t, func(r *http.Request, n int) any {
		return list("/v1/subscriptions", true, obj("subscription", "sub_9"), obj("subscription", "sub_8"))
	})
	env := newTestClient(t, srv.URL, nil)
	gte := time.Unix(1700000000, 0)
	lt := time.Unix(1700086400, 500) // rounded up: created < lt must stay included

	page, hasMore, err := env.c.ListSubscriptionsPage(t.Context(), SubscriptionPageQuery{
		CreatedGTE: gte, CreatedLT: lt, StartingAfter: "sub_10",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != "sub_9" || page[1].ID != "sub_8" || !hasMore {
		t.Errorf("page = %v, hasMore = %v", page, hasMore)
	}
	reqs := seen()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1: a page is one request even when has_more", len(reqs))
	}
	q := reqs[0].query
	for k, want := range map[string]string{
		"status": "all", "limit": "100", "created[gte]": "1700000000",
		"created[lt]": "1700086401", "starting_after": "sub_10",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	if _, _, err := env.c.ListSubscriptionsPage(t.Context(), SubscriptionPageQuery{Status: "active", Limit: 10}); err != nil {
		t.Fatal(err)
	}
	q = seen()[1].query
	if q.Get("status") != "active" || q.Get("limit") != "10" || q.Has("created[gte]") || q.Has("starting_after") {
		t.Errorf("query = %v", q)
	}
	if _, _, err := env.c.ListSubscriptionsPage(t.Context(), SubscriptionPageQuery{Limit: 101}); err == nil {
		t.Error("limit 101 accepted")
	}
}

func TestListWebhookEndpointsAllPages(t *testing.T) {
	t.Parallel()
	srv, seen := recordingServer(t, func(r *http.Request, n int) any {
		if n == 1 {
			return list("/v1/webhook_endpoints", true, obj("webhook_endpoint", "we_2"))
		}
		return list("/v1/webhook_endpoints", false, obj("webhook_endpoint", "we_1"))
	})
	env := newTestClient(t, srv.URL, nil)
	eps, err := env.c.ListWebhookEndpoints(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].ID != "we_2" || eps[1].ID != "we_1" {
		t.Errorf("endpoints = %v", eps)
	}
	if r := seen(); len(r) != 2 || r[1].query.Get("starting_after") != "we_2" {
		t.Errorf("requests = %v", r)
	}
}
