package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

func TestPeriodOf(t *testing.T) {
	rec := func(i stripe.PriceRecurringInterval, n int64) *stripe.Price {
		return &stripe.Price{Recurring: &stripe.PriceRecurring{Interval: i, IntervalCount: n}}
	}
	cases := []struct {
		p    *stripe.Price
		want string
	}{
		{rec("year", 1), PeriodAnnual},
		{rec("month", 1), PeriodMonthly},
		{rec("month", 12), PeriodOther},
		{rec("month", 3), PeriodOther},
		{rec("week", 1), PeriodOther},
		{rec("year", 2), PeriodOther},
		{&stripe.Price{}, PeriodOther},
		{nil, PeriodOther},
	}
	for _, c := range cases {
		if got := PeriodOf(c.p); got != c.want {
			t.Errorf("PeriodOf(%+v) = %s, want %s", c.p, got, c.want)
		}
	}
}

type customerMap map[string]*stripe.Customer

func (m customerMap) GetCustomer(_ context.Context, id string) (*stripe.Customer, error) {
	c, ok := m[id]
	if !ok {
		return nil, &stripe.Error{HTTPStatusCode: 404, Msg: "no such customer"}
	}
	return c, nil
}

func TestDesired(t *testing.T) {
	plans, err := NewPlans(PlanEntry{Price: "price_mq_y", Plan: "maquina", Period: PeriodAnnual})
	if err != nil {
		t.Fatal(err)
	}
	monthly := &stripe.Price{ID: "price_addon", Recurring: &stripe.PriceRecurring{Interval: "month", IntervalCount: 1}}
	mapped := &stripe.Price{ID: "price_mq_y", Recurring: &stripe.PriceRecurring{Interval: "month", IntervalCount: 1}}
	sub := func(meta map[string]string, cus string, prices ...*stripe.Price) *stripe.Subscription {
		s := &stripe.Subscription{ID: "sub_1", Status: "active", Customer: &stripe.Customer{ID: cus}, Metadata: meta,
			CurrentPeriodStart: 1700000000, CurrentPeriodEnd: 1731536000, Items: &stripe.SubscriptionItemList{}}
		for _, p := range prices {
			s.Items.Data = append(s.Items.Data, &stripe.SubscriptionItem{Price: p})
		}
		return s
	}
	r := &Resolver{Plans: plans, Customers: customerMap{
		"cus_meta":    {ID: "cus_meta", Metadata: map[string]string{"user_id": "from-customer"}},
		"cus_deleted": {ID: "cus_deleted", Deleted: true},
	}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx := context.Background()

	t.Run("mapped item wins and its mapping sets the period", func(t *testing.T) {
		row, err := r.Desired(ctx, sub(map[string]string{"user_id": "u1"}, "cus_x", monthly, mapped), at, false)
		if err != nil {
			t.Fatal(err)
		}
		if *row.StripePriceID != "price_mq_y" || *row.PlanID != "maquina" || row.BillingPeriod != PeriodAnnual {
			t.Fatalf("row = price %s plan %v period %s", *row.StripePriceID, row.PlanID, row.BillingPeriod)
		}
		if *row.UserID != "u1" || row.StripeCustomerID != "cus_x" || !row.StripeStateAt.Equal(at) {
			t.Fatalf("row = %+v", row)
		}
		if row.CurrentPeriodEnd.Unix() != 1731536000 || row.CanceledAt != nil {
			t.Fatalf("period end %v canceled %v", row.CurrentPeriodEnd, row.CanceledAt)
		}
	})
	t.Run("unmapped price falls back to its interval", func(t *testing.T) {
		row, err := r.Desired(ctx, sub(map[string]string{"user_id": "u1"}, "cus_x", monthly), at, false)
		if err != nil {
			t.Fatal(err)
		}
		if row.PlanID != nil || row.BillingPeriod != PeriodMonthly {
			t.Fatalf("plan %v period %s", row.PlanID, row.BillingPeriod)
		}
	})
	t.Run("user from customer metadata", func(t *testing.T) {
		row, err := r.Desired(ctx, sub(nil, "cus_meta", mapped), at, false)
		if err != nil || row.UserID == nil || *row.UserID != "from-customer" {
			t.Fatalf("row.UserID = %v, err %v", row.UserID, err)
		}
	})
	t.Run("known user skips the customer fetch", func(t *testing.T) {
		row, err := r.Desired(ctx, sub(nil, "cus_unknown", mapped), at, true)
		if err != nil || row.UserID != nil {
			t.Fatalf("row.UserID = %v, err %v", row.UserID, err)
		}
	})
	t.Run("deleted customer leaves the user unset", func(t *testing.T) {
		row, err := r.Desired(ctx, sub(nil, "cus_deleted", mapped), at, false)
		if err != nil || row.UserID != nil {
			t.Fatalf("row.UserID = %v, err %v", row.UserID, err)
		}
	})
	t.Run("missing customer is an error", func(t *testing.T) {
		if _, err := r.Desired(ctx, sub(nil, "cus_unknown", mapped), at, false); err == nil {
			t.Fatal("want an error for a customer Stripe does not know")
		}
	})
	t.Run("oversized user id is not taken", func(t *testing.T) {
		row, err := r.Desired(ctx, sub(map[string]string{"user_id": strings.Repeat("x", 10<<10)}, "cus_deleted", mapped), at, false)
		if err != nil || row.UserID != nil {
			t.Fatalf("row.UserID set from a 10 KB value (err %v)", err)
		}
	})
	t.Run("no items", func(t *testing.T) {
		_, err := r.Desired(ctx, sub(map[string]string{"user_id": "u1"}, "cus_x"), at, false)
		if !errors.Is(err, ErrNoItems) {
			t.Fatalf("err = %v, want ErrNoItems", err)
		}
	})
	t.Run("custom metadata key", func(t *testing.T) {
		r2 := &Resolver{Plans: plans, MetadataKey: "app_user"}
		row, err := r2.Desired(ctx, sub(map[string]string{"app_user": "u9", "user_id": "other"}, "cus_x", mapped), at, false)
		if err != nil || *row.UserID != "u9" {
			t.Fatalf("row.UserID = %v, err %v", row.UserID, err)
		}
	})
}
