package stripefake

import (
	"github.com/stripe/stripe-go/v76"
)

// Direct conversions from the fake's model to stripe-go types. They build
// exactly what json.Unmarshal of the model's JSON builds (a test holds them
// to that) but cost far less, so that Subscriptions() stays cheap for
// 100,000 subscriptions.

func subToStripe(s *subscription) *stripe.Subscription {
	out := &stripe.Subscription{
		AutomaticTax:       &stripe.SubscriptionAutomaticTax{Enabled: s.AutomaticTax.Enabled},
		BillingCycleAnchor: s.BillingCycleAnchor,
		CancelAt:           derefInt(s.CancelAt),
		CancelAtPeriodEnd:  s.CancelAtPeriodEnd,
		CanceledAt:         derefInt(s.CanceledAt),
		CancellationDetails: &stripe.SubscriptionCancellationDetails{
			Reason: stripe.SubscriptionCancellationDetailsReason(derefStr(s.CancellationDetails.Reason)),
		},
		CollectionMethod:   stripe.SubscriptionCollectionMethod(s.CollectionMethod),
		Created:            s.Created,
		Currency:           stripe.Currency(s.Currency),
		CurrentPeriodEnd:   s.CurrentPeriodEnd,
		CurrentPeriodStart: s.CurrentPeriodStart,
		Customer:           &stripe.Customer{ID: s.Customer},
		DefaultTaxRates:    []*stripe.TaxRate{},
		EndedAt:            derefInt(s.EndedAt),
		ID:                 s.ID,
		Items: &stripe.SubscriptionItemList{
			ListMeta: stripe.ListMeta{HasMore: s.Items.HasMore, URL: s.Items.URL, TotalCount: uint32(s.Items.TotalCount)},
			Data:     make([]*stripe.SubscriptionItem, len(s.Items.Data)),
		},
		Livemode: s.Livemode,
		Metadata: cloneMetadata(s.Metadata),
		Object:   s.Object,
		PaymentSettings: &stripe.SubscriptionPaymentSettings{
			SaveDefaultPaymentMethod: stripe.SubscriptionPaymentSettingsSaveDefaultPaymentMethod(s.PaymentSettings.SaveDefaultPaymentMethod),
		},
		StartDate: s.StartDate,
		Status:    stripe.SubscriptionStatus(s.Status),
		TrialEnd:  derefInt(s.TrialEnd),
		TrialSettings: &stripe.SubscriptionTrialSettings{EndBehavior: &stripe.SubscriptionTrialSettingsEndBehavior{
			MissingPaymentMethod: stripe.SubscriptionTrialSettingsEndBehaviorMissingPaymentMethod(s.TrialSettings.EndBehavior.MissingPaymentMethod),
		}},
		TrialStart: derefInt(s.TrialStart),
	}
	if s.LatestInvoice != nil {
		out.LatestInvoice = &stripe.Invoice{ID: *s.LatestInvoice}
	}
	if s.PauseCollection != nil {
		out.PauseCollection = &stripe.SubscriptionPauseCollection{
			Behavior:  stripe.SubscriptionPauseCollectionBehavior(s.PauseCollection.Behavior),
			ResumesAt: derefInt(s.PauseCollection.ResumesAt),
		}
	}
	for i, it := range s.Items.Data {
		out.Items.Data[i] = &stripe.SubscriptionItem{
			Created:      it.Created,
			ID:           it.ID,
			Metadata:     map[string]string{},
			Object:       it.Object,
			Plan:         planToStripe(it.Plan),
			Price:        priceToStripe(it.Price),
			Quantity:     it.Quantity,
			Subscription: it.Subscription,
			TaxRates:     []*stripe.TaxRate{},
		}
	}
	return out
}

func priceToStripe(p *price) *stripe.Price {
	out := &stripe.Price{
		Active:            p.Active,
		BillingScheme:     stripe.PriceBillingScheme(p.BillingScheme),
		Created:           p.Created,
		Currency:          stripe.Currency(p.Currency),
		ID:                p.ID,
		Livemode:          p.Livemode,
		LookupKey:         derefStr(p.LookupKey),
		Metadata:          cloneMetadata(p.Metadata),
		Nickname:          derefStr(p.Nickname),
		Object:            p.Object,
		Product:           &stripe.Product{ID: p.Product},
		TaxBehavior:       stripe.PriceTaxBehavior(p.TaxBehavior),
		Type:              stripe.PriceType(p.Type),
		UnitAmount:        p.UnitAmount,
		UnitAmountDecimal: float64(p.UnitAmount),
	}
	if p.Recurring != nil {
		out.Recurring = &stripe.PriceRecurring{
			Interval:      stripe.PriceRecurringInterval(p.Recurring.Interval),
			IntervalCount: p.Recurring.IntervalCount,
			UsageType:     stripe.PriceRecurringUsageType(p.Recurring.UsageType),
		}
	}
	return out
}

func planToStripe(p *plan) *stripe.Plan {
	if p == nil {
		return nil
	}
	return &stripe.Plan{
		Active:        p.Active,
		Amount:        p.Amount,
		AmountDecimal: float64(p.Amount),
		BillingScheme: stripe.PlanBillingScheme(p.BillingScheme),
		Created:       p.Created,
		Currency:      stripe.Currency(p.Currency),
		ID:            p.ID,
		Interval:      stripe.PlanInterval(p.Interval),
		IntervalCount: p.IntervalCount,
		Livemode:      p.Livemode,
		Metadata:      cloneMetadata(p.Metadata),
		Nickname:      derefStr(p.Nickname),
		Object:        p.Object,
		Product:       &stripe.Product{ID: p.Product},
		UsageType:     stripe.PlanUsageType(p.UsageType),
	}
}
