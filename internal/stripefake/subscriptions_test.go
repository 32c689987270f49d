package stripefake_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
)

func TestSubscriptionLifecycleThroughStripeGo(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 31, 12, 0, 0, 0, time.UTC)
	f, api := newFake(t, stripefake.Options{Clock: frozenClock(now), Seed: 7})

	product, err := api.Products.New(&stripe.ProductParams{Name: stripe.String("Máquina")})
	if err != nil {
		t.Fatal(err)
	}
	monthly, err := api.Prices.New(&stripe.PriceParams{
		Product: stripe.String(product.ID), UnitAmount: stripe.Int64(59700), Currency: stripe.String("brl"),
		Recurring: &stripe.PriceRecurringParams{Interval: stripe.String("month")},
		LookupKey: stripe.String("maquina_mensal"),
	})
	if err != nil {
		t.Fatal(err)
	}
	annual, err := api.Prices.New(&stripe.PriceParams{
		Product: stripe.String(product.ID), UnitAmount: stripe.Int64(573100), Currency: stripe.String("brl"),
		Recurring: &stripe.PriceRecurringParams{Interval: stripe.String("year"), IntervalCount: stripe.Int64(1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := api.Prices.Get(annual.ID, nil); err != nil || got.Recurring.Interval != "year" || got.Recurring.IntervalCount != 1 {
		t.Fatalf("GET price = %+v, %v", got, err)
	}
	cusParams := &stripe.CustomerParams{Email: stripe.String("ana@example.com")}
	cusParams.AddMetadata("user_id", "u1")
	cus, err := api.Customers.New(cusParams)
	if err != nil {
		t.Fatal(err)
	}

	params := &stripe.SubscriptionParams{
		Customer: stripe.String(cus.ID),
		Items:    []*stripe.SubscriptionItemsParams{{Price: stripe.String(monthly.ID)}},
	}
	params.AddMetadata("user_id", "u1")
	sub, err := api.Subscriptions.New(params)
	if err != nil {
		t.Fatal(err)
	}
	item := sub.Items.Data[0]
	switch {
	case sub.Status != stripe.SubscriptionStatusActive, sub.Customer.ID != cus.ID, sub.Metadata["user_id"] != "u1":
		t.Fatalf("created subscription = %+v", sub)
	case item.Price.ID != monthly.ID, item.Price.Recurring.Interval != "month", item.Price.Recurring.IntervalCount != 1:
		t.Fatalf("item price = %+v", item.Price)
	case sub.CurrentPeriodStart != now.Unix(), sub.CurrentPeriodEnd != time.Date(2024, 3, 2, 12, 0, 0, 0, time.UTC).Unix():
		t.Fatalf("period = %d..%d", sub.CurrentPeriodStart, sub.CurrentPeriodEnd) // Jan 31 + 1 month normalises like Go's AddDate
	case sub.LatestInvoice == nil || sub.LatestInvoice.ID == "":
		t.Fatal("no latest_invoice")
	}
	inv, err := api.Invoices.Get(sub.LatestInvoice.ID, nil)
	if err != nil || inv.Subscription.ID != sub.ID || !inv.Paid || inv.AmountPaid != 59700 {
		t.Fatalf("invoice = %+v, %v", inv, err)
	}

	// Switch to the annual price: same item, new interval, period restarts.
	later := now.Add(time.Hour)
	f.SetClock(frozenClock(later))
	up, err := api.Subscriptions.Update(sub.ID, &stripe.SubscriptionParams{
		Items: []*stripe.SubscriptionItemsParams{{ID: stripe.String(item.ID), Price: stripe.String(annual.ID)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.Items.Data[0].ID != item.ID || up.Items.Data[0].Price.ID != annual.ID ||
		up.CurrentPeriodStart != later.Unix() || up.CurrentPeriodEnd != later.AddDate(1, 0, 0).Unix() {
		t.Fatalf("updated = item %s price %s period %d..%d", up.Items.Data[0].ID, up.Items.Data[0].Price.ID,
			up.CurrentPeriodStart, up.CurrentPeriodEnd)
	}

	up, err = api.Subscriptions.Update(sub.ID, &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if !up.CancelAtPeriodEnd || up.CancelAt != up.CurrentPeriodEnd || up.CanceledAt != later.Unix() {
		t.Fatalf("cancel_at_period_end: %+v", up)
	}

	canceled, err := api.Subscriptions.Cancel(sub.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if canceled.Status != stripe.SubscriptionStatusCanceled || canceled.EndedAt != later.Unix() {
		t.Fatalf("canceled = %s ended_at %d", canceled.Status, canceled.EndedAt)
	}
	if _, err := api.Subscriptions.Update(sub.ID, &stripe.SubscriptionParams{CancelAtPeriodEnd: stripe.Bool(false)}); err == nil {
		t.Fatal("update of a canceled subscription succeeded")
	} else {
		stripeError(t, err, http.StatusBadRequest)
	}

	want := []string{
		"price.created", "price.created", "customer.created",
		"customer.subscription.created", "invoice.paid", "invoice.payment_succeeded",
		"customer.subscription.updated", "invoice.paid", "invoice.payment_succeeded",
		"customer.subscription.updated", "customer.subscription.deleted",
	}
	if got := f.EventTypes(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	evts := f.Events()
	upd := evts[6]
	if upd.Request == nil || upd.Request.ID == "" {
		t.Fatal("API-made event has no request id")
	}
	prevItems, ok := upd.Data.PreviousAttributes["items"].(map[string]any)
	if !ok || prevItems["data"] == nil {
		t.Fatalf("previous_attributes = %v, want the old items", upd.Data.PreviousAttributes)
	}
	if got := upd.GetObjectValue("items", "data", "0", "price", "id"); got != annual.ID {
		t.Fatalf("event object price = %s, want %s", got, annual.ID)
	}
}

func TestSubscriptionMetadataAndPrevious(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	fx := newFixture(t, f)
	sub := subscribe(t, f, fx.customer, fx.monthly)

	p := &stripe.SubscriptionParams{}
	p.AddMetadata("user_id", "u2")
	p.AddMetadata("plan", "maquina")
	got, err := api.Subscriptions.Update(sub.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata["user_id"] != "u2" || got.Metadata["plan"] != "maquina" {
		t.Fatalf("metadata = %v", got.Metadata)
	}
	evts := f.Events()
	last := evts[len(evts)-1]
	md, _ := last.Data.PreviousAttributes["metadata"].(map[string]any)
	if last.Type != "customer.subscription.updated" || len(md) != 2 {
		t.Fatalf("last event %s, previous metadata = %v, want both added keys", last.Type, md)
	}
	for _, k := range []string{"user_id", "plan"} {
		if v, ok := md[k]; !ok || v != nil {
			t.Fatalf("previous metadata[%s] = %v (present %v), want null", k, v, ok)
		}
	}

	// Helpers: "" deletes a key.
	if got, err := f.SetSubscriptionMetadata(sub.ID, map[string]string{"plan": ""}); err != nil || got.Metadata["plan"] != "" || got.Metadata["user_id"] != "u2" {
		t.Fatalf("SetSubscriptionMetadata = %v, %v", got.Metadata, err)
	}
	c, err := f.SetCustomerMetadata(fx.customer, map[string]string{"user_id": "u9"})
	if err != nil || c.Metadata["user_id"] != "u9" {
		t.Fatalf("SetCustomerMetadata = %v, %v", c, err)
	}
	if fetched, err := api.Customers.Get(fx.customer, nil); err != nil || fetched.Metadata["user_id"] != "u9" {
		t.Fatalf("GET customer = %v, %v", fetched, err)
	}
	cp := &stripe.CustomerParams{Name: stripe.String("Ana")}
	cp.AddMetadata("user_id", "u10")
	if updated, err := api.Customers.Update(fx.customer, cp); err != nil || updated.Metadata["user_id"] != "u10" || updated.Name != "Ana" {
		t.Fatalf("POST customer = %v, %v", updated, err)
	}
	evts = f.Events()
	if last := evts[len(evts)-1]; last.Type != "customer.updated" || last.GetPreviousValue("metadata", "user_id") != "u9" {
		t.Fatalf("last event %s previous %v", last.Type, last.Data.PreviousAttributes)
	}
}

func TestDeleteCustomerCancelsSubscriptions(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	fx := newFixture(t, f)
	a := subscribe(t, f, fx.customer, fx.monthly)
	b := subscribe(t, f, fx.customer, fx.annual)

	del, err := api.Customers.Del(fx.customer, nil)
	if err != nil || !del.Deleted || del.ID != fx.customer {
		t.Fatalf("DELETE customer = %+v, %v", del, err)
	}
	got, err := api.Customers.Get(fx.customer, nil)
	if err != nil || !got.Deleted || got.Email != "" {
		t.Fatalf("GET deleted customer = %+v, %v", got, err)
	}
	for _, id := range []string{a.ID, b.ID} {
		s, err := api.Subscriptions.Get(id, nil)
		if err != nil || s.Status != stripe.SubscriptionStatusCanceled {
			t.Fatalf("subscription %s after customer deletion = %v, %v", id, s.Status, err)
		}
	}
	types := f.EventTypes()
	if n := len(types); types[n-1] != "customer.deleted" || types[n-2] != "customer.subscription.deleted" || types[n-3] != "customer.subscription.deleted" {
		t.Fatalf("events end with %v", types[max(0, n-3):])
	}
	_, err = api.Subscriptions.New(&stripe.SubscriptionParams{
		Customer: stripe.String(fx.customer),
		Items:    []*stripe.SubscriptionItemsParams{{Price: stripe.String(fx.monthly)}},
	})
	if se := stripeError(t, err, http.StatusBadRequest); se.Code != stripe.ErrorCodeResourceMissing || se.Param != "customer" {
		t.Fatalf("subscribe deleted customer: %+v", se)
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	f, api := newFake(t, stripefake.Options{})
	fx := newFixture(t, f)

	tests := []struct {
		name   string
		call   func() error
		status int
		code   stripe.ErrorCode
		param  string
	}{
		{"missing subscription", func() error { _, err := api.Subscriptions.Get("sub_nope", nil); return err },
			http.StatusNotFound, stripe.ErrorCodeResourceMissing, "id"},
		{"missing price", func() error { _, err := api.Prices.Get("price_nope", nil); return err },
			http.StatusNotFound, stripe.ErrorCodeResourceMissing, "id"},
		{"missing event", func() error { _, err := api.Events.Get("evt_nope", nil); return err },
			http.StatusNotFound, stripe.ErrorCodeResourceMissing, "id"},
		{"unknown price on create", func() error {
			_, err := api.Subscriptions.New(&stripe.SubscriptionParams{Customer: stripe.String(fx.customer),
				Items: []*stripe.SubscriptionItemsParams{{Price: stripe.String("price_nope")}}})
			return err
		}, http.StatusBadRequest, stripe.ErrorCodeResourceMissing, "items[0][price]"},
		{"limit too big", func() error {
			p := &stripe.SubscriptionListParams{}
			p.Limit = stripe.Int64(101)
			p.Single = true
			it := api.Subscriptions.List(p)
			it.Next()
			return it.Err()
		}, http.StatusBadRequest, stripe.ErrorCodeParameterInvalidInteger, "limit"},
		{"bad status", func() error {
			it := api.Subscriptions.List(&stripe.SubscriptionListParams{Status: stripe.String("nope")})
			it.Next()
			return it.Err()
		}, http.StatusBadRequest, "", "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			se := stripeError(t, tt.call(), tt.status)
			if se.Code != tt.code || se.Param != tt.param || se.Type != stripe.ErrorTypeInvalidRequest {
				t.Fatalf("error = type %s code %q param %q", se.Type, se.Code, se.Param)
			}
		})
	}
}

func TestAuthenticationAndUnknownRoute(t *testing.T) {
	t.Parallel()
	f, _ := newFake(t, stripefake.Options{APIKey: "sk_test_right"})

	wrong := stripe.GetBackendWithConfig(stripe.APIBackend, f.BackendConfig())
	var bal stripe.Balance
	err := wrong.Call(http.MethodGet, "/v1/balance", "sk_test_wrong", nil, &bal)
	stripeError(t, err, http.StatusUnauthorized)
	if err := wrong.Call(http.MethodGet, "/v1/balance", "sk_test_right", nil, &bal); err != nil || bal.Object != "balance" {
		t.Fatalf("balance = %+v, %v", bal, err)
	}
	var acct stripe.Account
	if err := wrong.Call(http.MethodGet, "/v1/account", "sk_test_right", nil, &acct); err != nil || acct.ID == "" {
		t.Fatalf("account = %+v, %v", acct, err)
	}
	err = wrong.Call(http.MethodGet, "/v1/charges", "sk_test_right", nil, &bal)
	stripeError(t, err, http.StatusNotFound)
	if got := f.Stats().ByRoute["unknown"]; got != 1 {
		t.Fatalf("unknown routes counted %d, want 1", got)
	}
}
