package stripefake

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/stripe/stripe-go/v76"
)

// PriceParams describes a price to create.
type PriceParams struct {
	// Product is the product id; when empty a product named ProductName (or
	// the lookup key, or "Fake product") is created.
	Product string
	// ProductName names the product created when Product is empty.
	ProductName string
	// UnitAmount is in the currency's smallest unit (centavos for brl).
	UnitAmount int64
	// Currency is a lowercase ISO code; "brl" when empty.
	Currency string
	// Interval is day, week, month or year; "" makes a one-time price.
	Interval string
	// IntervalCount defaults to 1 for recurring prices.
	IntervalCount int64
	// LookupKey must be unique among prices; empty reads as null.
	LookupKey string
	// Nickname is optional; empty reads as null.
	Nickname string
	// Metadata is the price's metadata.
	Metadata map[string]string
}

// CreateProduct creates a product (no event: the fake does not emit
// product.* events).
func (s *Server) CreateProduct(name string, metadata map[string]string) (*stripe.Product, error) {
	s.mu.Lock()
	p := s.createProductLocked(name, metadata)
	b, err := json.Marshal(p)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("marshal product: %w", err)
	}
	return decodeAs[stripe.Product](b)
}

func (s *Server) createProductLocked(name string, metadata map[string]string) *product {
	now := s.nowLocked()
	p := &product{
		ID: s.newIDLocked("prod_"), Object: "product", Active: true, Created: now,
		Images: []string{}, Metadata: mergeMetadata(nil, metadata), Name: name,
		Type: "service", Updated: now,
	}
	s.products.insert(p)
	return p
}

// CreatePrice creates a price (and its product when p.Product is empty) and
// emits price.created.
func (s *Server) CreatePrice(p PriceParams) (*stripe.Price, error) {
	s.mu.Lock()
	pr, err := s.createPriceLocked(p, reqInfo{})
	var b []byte
	if err == nil {
		b, err = json.Marshal(pr)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("create price: %w", err)
	}
	return decodeAs[stripe.Price](b)
}

func (s *Server) createPriceLocked(p PriceParams, rq reqInfo) (*price, error) {
	if p.UnitAmount < 0 {
		return nil, invalid("unit_amount", "parameter_invalid_integer", "This value must be greater than or equal to 0.")
	}
	currency := strings.ToLower(p.Currency)
	if currency == "" {
		currency = "brl"
	}
	var rec *recurring
	if p.Interval != "" {
		switch p.Interval {
		case "day", "week", "month", "year":
		default:
			return nil, invalid("recurring[interval]", "", "Invalid recurring[interval]: must be one of day, month, week, or year")
		}
		count := p.IntervalCount
		if count == 0 {
			count = 1
		}
		if count < 1 || intervalDays(p.Interval, count) > 3*366 {
			return nil, invalid("recurring[interval_count]", "",
				"The maximum billing interval is 3 years (3 years, 36 months, or 156 weeks).")
		}
		rec = &recurring{Interval: p.Interval, IntervalCount: count, UsageType: "licensed"}
	}
	if p.LookupKey != "" {
		if id, taken := s.lookupKeys[p.LookupKey]; taken {
			return nil, invalid("lookup_key", "",
				"A price (`%s`) already uses that lookup key.", id)
		}
	}
	productID := p.Product
	if productID == "" {
		name := p.ProductName
		if name == "" {
			name = "Fake product"
			if p.LookupKey != "" {
				name = p.LookupKey
			}
		}
		productID = s.createProductLocked(name, nil).ID
	} else if _, ok := s.products.get(productID); !ok {
		return nil, missingRef("product", productID, "product")
	}
	pr := &price{
		ID: s.newIDLocked("price_"), Object: "price", Active: true, BillingScheme: "per_unit",
		Created: s.nowLocked(), Currency: currency, LookupKey: strPtr(p.LookupKey),
		Metadata: mergeMetadata(nil, p.Metadata), Nickname: strPtr(p.Nickname), Product: productID,
		Recurring: rec, TaxBehavior: "unspecified", Type: "one_time", UnitAmount: p.UnitAmount,
		UnitAmountDecimal: strconv.FormatInt(p.UnitAmount, 10),
	}
	if rec != nil {
		pr.Type = "recurring"
	}
	pr.legacyPlan = newPlan(pr)
	s.prices.insert(pr)
	if p.LookupKey != "" {
		s.lookupKeys[p.LookupKey] = pr.ID
	}
	b, err := json.Marshal(pr)
	if err != nil {
		return nil, fmt.Errorf("marshal price: %w", err)
	}
	s.emitLocked("price.created", "price", b, nil, rq)
	return pr, nil
}

// intervalDays approximates an interval's length, for validation only.
func intervalDays(interval string, count int64) int64 {
	switch interval {
	case "day":
		return count
	case "week":
		return 7 * count
	case "month":
		return 30 * count
	default:
		return 365 * count
	}
}

func (s *Server) handleCreateProduct(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	name := form.Get("name")
	if name == "" {
		writeError(w, missingParam("name"))
		return
	}
	md, _ := parseMetadata(form)
	s.mu.Lock()
	p := s.createProductLocked(name, md.apply(nil))
	s.mu.Unlock()
	writeJSON(w, p)
}

func (s *Server) handleGetProduct(w http.ResponseWriter, r *http.Request) {
	serveGet(s, w, r, "product", s.products.get, marshal[*product])
}

func (s *Server) handleCreatePrice(w http.ResponseWriter, r *http.Request) {
	form, ok := parseForm(w, r)
	if !ok {
		return
	}
	amount, ok, err := intParam(form, "unit_amount")
	if err != nil {
		writeError(w, err)
		return
	}
	if !ok {
		writeError(w, missingParam("unit_amount"))
		return
	}
	if form.Get("currency") == "" {
		writeError(w, missingParam("currency"))
		return
	}
	rec, _ := bracketed(form, "recurring")
	var count int64
	if c := rec["interval_count"]; c != "" {
		if count, err = strconv.ParseInt(c, 10, 64); err != nil {
			writeError(w, invalid("recurring[interval_count]", "parameter_invalid_integer", "Invalid integer: %s", c))
			return
		}
	}
	if len(rec) > 0 && rec["interval"] == "" {
		writeError(w, missingParam("recurring[interval]"))
		return
	}
	pd, _ := bracketed(form, "product_data")
	if form.Get("product") == "" && pd["name"] == "" {
		writeError(w, missingParam("product"))
		return
	}
	md, _ := parseMetadata(form)
	p := PriceParams{
		Product: form.Get("product"), ProductName: pd["name"], UnitAmount: amount,
		Currency: form.Get("currency"), Interval: rec["interval"], IntervalCount: count,
		LookupKey: form.Get("lookup_key"), Nickname: form.Get("nickname"), Metadata: md.apply(nil),
	}
	s.mu.Lock()
	pr, err := s.createPriceLocked(p, requestInfo(w, r))
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, pr)
}

func (s *Server) handleGetPrice(w http.ResponseWriter, r *http.Request) {
	serveGet(s, w, r, "price", s.prices.get, marshal[*price])
}

func (s *Server) handleListPrices(w http.ResponseWriter, r *http.Request) {
	serveList(s, w, r, "/v1/prices", s.prices.page, func(form url.Values) (listing[*price], error) {
		active, hasActive, err := boolParam(form, "active")
		if err != nil {
			return listing[*price]{}, err
		}
		keys := map[string]bool{}
		for _, k := range repeated(form, "lookup_keys") {
			keys[k] = true
		}
		product, typ := form.Get("product"), form.Get("type")
		return listing[*price]{
			match: func(p *price) bool {
				return (!hasActive || p.Active == active) && (product == "" || p.Product == product) &&
					(typ == "" || p.Type == typ) && (len(keys) == 0 || keys[derefStr(p.LookupKey)])
			},
			render: marshal[*price],
		}, nil
	})
}

// decodeAs decodes the fake's own JSON into a stripe-go type.
func decodeAs[T any](b []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("decode %T: %w", v, err)
	}
	return &v, nil
}

// cloneMetadata copies a metadata map, never returning nil.
func cloneMetadata(md map[string]string) map[string]string {
	if md == nil {
		return map[string]string{}
	}
	return maps.Clone(md)
}
