package stripefake

import (
	"encoding/json"
	"maps"
	"strconv"
	"sync/atomic"
)

// The structs in this file marshal to the JSON Stripe answers for API version
// 2023-10-16. Fields the fake never sets are typed any and marshal as null;
// maps are never nil so that they marshal as {}.

type product struct {
	ID           string            `json:"id"`
	Object       string            `json:"object"`
	Active       bool              `json:"active"`
	Created      int64             `json:"created"`
	DefaultPrice any               `json:"default_price"`
	Description  any               `json:"description"`
	Images       []string          `json:"images"`
	Livemode     bool              `json:"livemode"`
	Metadata     map[string]string `json:"metadata"`
	Name         string            `json:"name"`
	Type         string            `json:"type"`
	Updated      int64             `json:"updated"`
	URL          any               `json:"url"`
}

func (p *product) sortKey() (int64, string) { return p.Created, p.ID }

type recurring struct {
	AggregateUsage  any    `json:"aggregate_usage"`
	Interval        string `json:"interval"`
	IntervalCount   int64  `json:"interval_count"`
	TrialPeriodDays any    `json:"trial_period_days"`
	UsageType       string `json:"usage_type"`
}

type price struct {
	ID                string            `json:"id"`
	Object            string            `json:"object"`
	Active            bool              `json:"active"`
	BillingScheme     string            `json:"billing_scheme"`
	Created           int64             `json:"created"`
	Currency          string            `json:"currency"`
	CustomUnitAmount  any               `json:"custom_unit_amount"`
	Livemode          bool              `json:"livemode"`
	LookupKey         *string           `json:"lookup_key"`
	Metadata          map[string]string `json:"metadata"`
	Nickname          *string           `json:"nickname"`
	Product           string            `json:"product"`
	Recurring         *recurring        `json:"recurring"`
	TaxBehavior       string            `json:"tax_behavior"`
	TiersMode         any               `json:"tiers_mode"`
	TransformQuantity any               `json:"transform_quantity"`
	Type              string            `json:"type"`
	UnitAmount        int64             `json:"unit_amount"`
	UnitAmountDecimal string            `json:"unit_amount_decimal"`

	legacyPlan *plan // the plan view of a recurring price, built once
}

func (p *price) sortKey() (int64, string) { return p.Created, p.ID }

// plan is the legacy view of a recurring price that Stripe still embeds next
// to it in subscription items and invoice lines.
type plan struct {
	ID              string            `json:"id"`
	Object          string            `json:"object"`
	Active          bool              `json:"active"`
	AggregateUsage  any               `json:"aggregate_usage"`
	Amount          int64             `json:"amount"`
	AmountDecimal   string            `json:"amount_decimal"`
	BillingScheme   string            `json:"billing_scheme"`
	Created         int64             `json:"created"`
	Currency        string            `json:"currency"`
	Interval        string            `json:"interval"`
	IntervalCount   int64             `json:"interval_count"`
	Livemode        bool              `json:"livemode"`
	Metadata        map[string]string `json:"metadata"`
	Nickname        *string           `json:"nickname"`
	Product         string            `json:"product"`
	TiersMode       any               `json:"tiers_mode"`
	TransformUsage  any               `json:"transform_usage"`
	TrialPeriodDays any               `json:"trial_period_days"`
	UsageType       string            `json:"usage_type"`
}

func newPlan(p *price) *plan {
	if p.Recurring == nil {
		return nil
	}
	return &plan{
		ID: p.ID, Object: "plan", Active: p.Active, Amount: p.UnitAmount,
		AmountDecimal: strconv.FormatInt(p.UnitAmount, 10), BillingScheme: p.BillingScheme,
		Created: p.Created, Currency: p.Currency, Interval: p.Recurring.Interval,
		IntervalCount: p.Recurring.IntervalCount, Metadata: maps.Clone(p.Metadata),
		Nickname: p.Nickname, Product: p.Product, UsageType: p.Recurring.UsageType,
	}
}

type invoiceSettings struct {
	CustomFields         any `json:"custom_fields"`
	DefaultPaymentMethod any `json:"default_payment_method"`
	Footer               any `json:"footer"`
	RenderingOptions     any `json:"rendering_options"`
}

type customer struct {
	ID                  string            `json:"id"`
	Object              string            `json:"object"`
	Address             any               `json:"address"`
	Balance             int64             `json:"balance"`
	Created             int64             `json:"created"`
	Currency            *string           `json:"currency"`
	DefaultSource       any               `json:"default_source"`
	Delinquent          bool              `json:"delinquent"`
	Description         *string           `json:"description"`
	Discount            any               `json:"discount"`
	Email               *string           `json:"email"`
	InvoicePrefix       string            `json:"invoice_prefix"`
	InvoiceSettings     invoiceSettings   `json:"invoice_settings"`
	Livemode            bool              `json:"livemode"`
	Metadata            map[string]string `json:"metadata"`
	Name                *string           `json:"name"`
	NextInvoiceSequence int64             `json:"next_invoice_sequence"`
	Phone               any               `json:"phone"`
	PreferredLocales    []string          `json:"preferred_locales"`
	Shipping            any               `json:"shipping"`
	TaxExempt           string            `json:"tax_exempt"`
	TestClock           any               `json:"test_clock"`

	deleted bool // answered as the deleted stub from then on
}

func (c *customer) sortKey() (int64, string) { return c.Created, c.ID }

// deletedStub is what Stripe answers for a deleted customer.
type deletedStub struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// cachedJSON memoises an object's JSON between changes. Readers under the
// read lock may fill it concurrently; writers clear it under the write lock.
type cachedJSON struct {
	p atomic.Pointer[[]byte]
}

func (c *cachedJSON) get(v any) []byte {
	if b := c.p.Load(); b != nil {
		return *b
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("stripefake: marshal model: " + err.Error()) // model structs always marshal
	}
	c.p.Store(&b)
	return b
}

func (c *cachedJSON) reset() { c.p.Store(nil) }

// strPtr returns nil for "" so that empty strings marshal as null.
func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// int64Ptr returns nil for 0 so that unset timestamps marshal as null.
func int64Ptr(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}

func derefStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
