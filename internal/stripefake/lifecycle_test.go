package stripefake_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
)

func TestLifecycleHelpers(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		params     stripefake.SubscriptionParams
		steps      func(f *stripefake.Server, id string) (*stripe.Subscription, error)
		wantStatus stripe.SubscriptionStatus
		wantEvents []string // after customer.subscription.created and its invoice events
		check      func(t *testing.T, s *stripe.Subscription)
	}{
		{
			name: "renew advances one interval",
			steps: func(f *stripefake.Server, id string) (*stripe.Subscription, error) {
				return f.Renew(id)
			},
			wantStatus: "active",
			wantEvents: []string{"invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"},
			check: func(t *testing.T, s *stripe.Subscription) {
				if s.CurrentPeriodStart != start.AddDate(0, 1, 0).Unix() || s.CurrentPeriodEnd != start.AddDate(0, 2, 0).Unix() {
					t.Fatalf("period %d..%d", s.CurrentPeriodStart, s.CurrentPeriodEnd)
				}
			},
		},
		{
			name: "failed payment then paid",
			steps: func(f *stripefake.Server, id string) (*stripe.Subscription, error) {
				s, err := f.FailPayment(id)
				if err != nil || s.Status != "past_due" {
					return s, errors.Join(err, errors.New("not past_due after FailPayment"))
				}
				return f.Renew(id)
			},
			wantStatus: "active",
			wantEvents: []string{"invoice.payment_failed", "customer.subscription.updated",
				"invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"},
			check: func(t *testing.T, s *stripe.Subscription) {
				if s.CurrentPeriodStart != start.AddDate(0, 1, 0).Unix() {
					t.Fatalf("paying the open invoice moved the period again: %d", s.CurrentPeriodStart)
				}
			},
		},
		{
			name: "cancel at period end then renew ends it",
			steps: func(f *stripefake.Server, id string) (*stripe.Subscription, error) {
				if _, err := f.SetCancelAtPeriodEnd(id, true); err != nil {
					return nil, err
				}
				return f.Renew(id)
			},
			wantStatus: "canceled",
			wantEvents: []string{"customer.subscription.updated", "customer.subscription.deleted"},
			check: func(t *testing.T, s *stripe.Subscription) {
				if s.EndedAt != s.CurrentPeriodEnd || s.CanceledAt != start.Unix() {
					t.Fatalf("ended_at %d canceled_at %d", s.EndedAt, s.CanceledAt)
				}
			},
		},
		{
			name: "pause and resume",
			steps: func(f *stripefake.Server, id string) (*stripe.Subscription, error) {
				if s, err := f.Pause(id); err != nil || s.Status != "paused" {
					return s, errors.Join(err, errors.New("not paused"))
				}
				return f.Resume(id)
			},
			wantStatus: "active",
			wantEvents: []string{"customer.subscription.updated", "customer.subscription.paused",
				"customer.subscription.updated", "customer.subscription.resumed"},
		},
		{
			name:   "trial, reminder, first charge",
			params: stripefake.SubscriptionParams{TrialPeriodDays: 14},
			steps: func(f *stripefake.Server, id string) (*stripe.Subscription, error) {
				if s, err := f.TrialWillEnd(id); err != nil || s.Status != "trialing" {
					return s, errors.Join(err, errors.New("not trialing"))
				}
				return f.Renew(id)
			},
			wantStatus: "active",
			wantEvents: []string{"customer.subscription.trial_will_end",
				"invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"},
			check: func(t *testing.T, s *stripe.Subscription) {
				if s.TrialEnd != start.AddDate(0, 0, 14).Unix() || s.CurrentPeriodStart != s.TrialEnd {
					t.Fatalf("trial_end %d period start %d", s.TrialEnd, s.CurrentPeriodStart)
				}
			},
		},
		{
			name:   "default incomplete paid by renew",
			params: stripefake.SubscriptionParams{DefaultIncomplete: true},
			steps: func(f *stripefake.Server, id string) (*stripe.Subscription, error) {
				return f.Renew(id)
			},
			wantStatus: "active",
			wantEvents: []string{"invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := stripefake.NewUnstarted(stripefake.Options{Clock: frozenClock(start)})
			fx := newFixture(t, f)
			p := tt.params
			p.Customer, p.Price = fx.customer, fx.monthly
			sub, err := f.CreateSubscription(p)
			if err != nil {
				t.Fatal(err)
			}
			before := len(f.EventTypes())
			got, err := tt.steps(f, sub.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus {
				t.Fatalf("status = %s, want %s", got.Status, tt.wantStatus)
			}
			if events := f.EventTypes()[before:]; !slices.Equal(events, tt.wantEvents) {
				t.Fatalf("events = %v, want %v", events, tt.wantEvents)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
			if snap, err := f.Subscription(sub.ID); err != nil || snap.Status != got.Status {
				t.Fatalf("Subscription() = %v, %v", snap, err)
			}
		})
	}
}

func TestHelpersRefuseInvalidChanges(t *testing.T) {
	t.Parallel()
	f := stripefake.NewUnstarted(stripefake.Options{})
	fx := newFixture(t, f)
	sub := subscribe(t, f, fx.customer, fx.monthly)
	if _, err := f.CancelSubscription(sub.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"renew canceled", func() error { _, err := f.Renew(sub.ID); return err }, stripefake.ErrInvalid},
		{"cancel twice", func() error { _, err := f.CancelSubscription(sub.ID); return err }, stripefake.ErrInvalid},
		{"resume active", func() error {
			_, err := f.Resume(subscribe(t, f, fx.customer, fx.monthly).ID)
			return err
		}, stripefake.ErrInvalid},
		{"unknown subscription", func() error { _, err := f.Pause("sub_nope"); return err }, stripefake.ErrNotFound},
		{"unknown price", func() error {
			_, err := f.UpdateSubscriptionPrice(subscribe(t, f, fx.customer, fx.monthly).ID, "price_nope")
			return err
		}, stripefake.ErrNotFound},
		{"delete unknown customer", func() error { return f.DeleteCustomer("cus_nope") }, stripefake.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
