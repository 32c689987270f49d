package stripefake

// Subscription and invoice objects, shaped like Stripe's for 2023-10-16.

type automaticTax struct {
	Enabled   bool `json:"enabled"`
	Liability any  `json:"liability"`
}

type cancellationDetails struct {
	Comment  any     `json:"comment"`
	Feedback any     `json:"feedback"`
	Reason   *string `json:"reason"`
}

type pauseCollection struct {
	Behavior  string `json:"behavior"`
	ResumesAt *int64 `json:"resumes_at"`
}

type paymentSettings struct {
	PaymentMethodOptions     any    `json:"payment_method_options"`
	PaymentMethodTypes       any    `json:"payment_method_types"`
	SaveDefaultPaymentMethod string `json:"save_default_payment_method"`
}

type trialEndBehavior struct {
	MissingPaymentMethod string `json:"missing_payment_method"`
}

type trialSettings struct {
	EndBehavior trialEndBehavior `json:"end_behavior"`
}

type subItem struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	BillingThresholds any      `json:"billing_thresholds"`
	Created           int64    `json:"created"`
	Metadata          struct{} `json:"metadata"` // always {} in the fake
	Plan              *plan    `json:"plan"`
	Price             *price   `json:"price"`
	Quantity          int64    `json:"quantity"`
	Subscription      string   `json:"subscription"`
	TaxRates          []any    `json:"tax_rates"`
}

type itemList struct {
	Object     string     `json:"object"`
	Data       []*subItem `json:"data"`
	HasMore    bool       `json:"has_more"`
	TotalCount int        `json:"total_count"`
	URL        string     `json:"url"`
}

type subscription struct {
	ID                            string              `json:"id"`
	Object                        string              `json:"object"`
	Application                   any                 `json:"application"`
	ApplicationFeePercent         any                 `json:"application_fee_percent"`
	AutomaticTax                  automaticTax        `json:"automatic_tax"`
	BillingCycleAnchor            int64               `json:"billing_cycle_anchor"`
	BillingCycleAnchorConfig      any                 `json:"billing_cycle_anchor_config"`
	BillingThresholds             any                 `json:"billing_thresholds"`
	CancelAt                      *int64              `json:"cancel_at"`
	CancelAtPeriodEnd             bool                `json:"cancel_at_period_end"`
	CanceledAt                    *int64              `json:"canceled_at"`
	CancellationDetails           cancellationDetails `json:"cancellation_details"`
	CollectionMethod              string              `json:"collection_method"`
	Created                       int64               `json:"created"`
	Currency                      string              `json:"currency"`
	CurrentPeriodEnd              int64               `json:"current_period_end"`
	CurrentPeriodStart            int64               `json:"current_period_start"`
	Customer                      string              `json:"customer"`
	DaysUntilDue                  any                 `json:"days_until_due"`
	DefaultPaymentMethod          any                 `json:"default_payment_method"`
	DefaultSource                 any                 `json:"default_source"`
	DefaultTaxRates               []any               `json:"default_tax_rates"`
	Description                   any                 `json:"description"`
	Discount                      any                 `json:"discount"`
	EndedAt                       *int64              `json:"ended_at"`
	Items                         itemList            `json:"items"`
	LatestInvoice                 *string             `json:"latest_invoice"`
	Livemode                      bool                `json:"livemode"`
	Metadata                      map[string]string   `json:"metadata"`
	NextPendingInvoiceItemInvoice any                 `json:"next_pending_invoice_item_invoice"`
	OnBehalfOf                    any                 `json:"on_behalf_of"`
	PauseCollection               *pauseCollection    `json:"pause_collection"`
	PaymentSettings               paymentSettings     `json:"payment_settings"`
	PendingInvoiceItemInterval    any                 `json:"pending_invoice_item_interval"`
	PendingSetupIntent            any                 `json:"pending_setup_intent"`
	PendingUpdate                 any                 `json:"pending_update"`
	Schedule                      any                 `json:"schedule"`
	StartDate                     int64               `json:"start_date"`
	Status                        string              `json:"status"`
	TestClock                     any                 `json:"test_clock"`
	TransferData                  any                 `json:"transfer_data"`
	TrialEnd                      *int64              `json:"trial_end"`
	TrialSettings                 trialSettings       `json:"trial_settings"`
	TrialStart                    *int64              `json:"trial_start"`

	cache cachedJSON
}

func (s *subscription) sortKey() (int64, string) { return s.Created, s.ID }

// json returns the subscription's JSON, memoised until the next change.
func (s *subscription) json() []byte { return s.cache.get(s) }

// item returns the subscription's single plan item.
func (s *subscription) item() *subItem { return s.Items.Data[0] }

type period struct {
	End   int64 `json:"end"`
	Start int64 `json:"start"`
}

type prorationDetails struct {
	CreditedItems any `json:"credited_items"`
}

type lineItem struct {
	ID                     string            `json:"id"`
	Object                 string            `json:"object"`
	Amount                 int64             `json:"amount"`
	AmountExcludingTax     int64             `json:"amount_excluding_tax"`
	Currency               string            `json:"currency"`
	Description            string            `json:"description"`
	Discountable           bool              `json:"discountable"`
	DiscountAmounts        []any             `json:"discount_amounts"`
	Discounts              []any             `json:"discounts"`
	Invoice                string            `json:"invoice"`
	Livemode               bool              `json:"livemode"`
	Metadata               map[string]string `json:"metadata"`
	Period                 period            `json:"period"`
	Plan                   *plan             `json:"plan"`
	Price                  *price            `json:"price"`
	Proration              bool              `json:"proration"`
	ProrationDetails       prorationDetails  `json:"proration_details"`
	Quantity               int64             `json:"quantity"`
	Subscription           string            `json:"subscription"`
	SubscriptionItem       string            `json:"subscription_item"`
	TaxAmounts             []any             `json:"tax_amounts"`
	TaxRates               []any             `json:"tax_rates"`
	Type                   string            `json:"type"`
	UnitAmountExcludingTax string            `json:"unit_amount_excluding_tax"`
}

type lineList struct {
	Object     string      `json:"object"`
	Data       []*lineItem `json:"data"`
	HasMore    bool        `json:"has_more"`
	TotalCount int         `json:"total_count"`
	URL        string      `json:"url"`
}

type invoiceAutomaticTax struct {
	Enabled   bool `json:"enabled"`
	Liability any  `json:"liability"`
	Status    any  `json:"status"`
}

type statusTransitions struct {
	FinalizedAt           *int64 `json:"finalized_at"`
	MarkedUncollectibleAt *int64 `json:"marked_uncollectible_at"`
	PaidAt                *int64 `json:"paid_at"`
	VoidedAt              *int64 `json:"voided_at"`
}

type subscriptionDetails struct {
	Metadata map[string]string `json:"metadata"`
}

type invoice struct {
	ID                   string               `json:"id"`
	Object               string               `json:"object"`
	AccountCountry       string               `json:"account_country"`
	AccountName          any                  `json:"account_name"`
	AmountDue            int64                `json:"amount_due"`
	AmountPaid           int64                `json:"amount_paid"`
	AmountRemaining      int64                `json:"amount_remaining"`
	AmountShipping       int64                `json:"amount_shipping"`
	Application          any                  `json:"application"`
	AttemptCount         int64                `json:"attempt_count"`
	Attempted            bool                 `json:"attempted"`
	AutoAdvance          bool                 `json:"auto_advance"`
	AutomaticTax         invoiceAutomaticTax  `json:"automatic_tax"`
	BillingReason        string               `json:"billing_reason"`
	Charge               any                  `json:"charge"`
	CollectionMethod     string               `json:"collection_method"`
	Created              int64                `json:"created"`
	Currency             string               `json:"currency"`
	Customer             string               `json:"customer"`
	CustomerEmail        *string              `json:"customer_email"`
	CustomerName         *string              `json:"customer_name"`
	Description          any                  `json:"description"`
	Discount             any                  `json:"discount"`
	DueDate              any                  `json:"due_date"`
	EffectiveAt          *int64               `json:"effective_at"`
	EndingBalance        *int64               `json:"ending_balance"`
	HostedInvoiceURL     any                  `json:"hosted_invoice_url"`
	Lines                lineList             `json:"lines"`
	Livemode             bool                 `json:"livemode"`
	Metadata             struct{}             `json:"metadata"` // always {} in the fake
	NextPaymentAttempt   *int64               `json:"next_payment_attempt"`
	Number               *string              `json:"number"`
	Paid                 bool                 `json:"paid"`
	PaidOutOfBand        bool                 `json:"paid_out_of_band"`
	PaymentIntent        any                  `json:"payment_intent"`
	PeriodEnd            int64                `json:"period_end"`
	PeriodStart          int64                `json:"period_start"`
	Status               string               `json:"status"`
	StatusTransitions    statusTransitions    `json:"status_transitions"`
	Subscription         *string              `json:"subscription"`
	SubscriptionDetails  *subscriptionDetails `json:"subscription_details"`
	Subtotal             int64                `json:"subtotal"`
	SubtotalExcludingTax int64                `json:"subtotal_excluding_tax"`
	Tax                  any                  `json:"tax"`
	Total                int64                `json:"total"`
	TotalExcludingTax    int64                `json:"total_excluding_tax"`

	cache cachedJSON
}

func (i *invoice) sortKey() (int64, string) { return i.Created, i.ID }

// json returns the invoice's JSON, memoised until the next change.
func (i *invoice) json() []byte { return i.cache.get(i) }
