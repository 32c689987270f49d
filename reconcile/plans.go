// Package reconcile is the domain of subsyncd: the desired row of a Stripe
// subscription, the applier that drains the inbox (and, in payload mode,
// settles events in the transaction that stores them), the events
// catch-up, the subscription sweep and their schedules.
package reconcile

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Billing periods stored in user_subscriptions.billing_period.
const (
	PeriodMonthly = "monthly"
	PeriodAnnual  = "annual"
	PeriodOther   = "other"
)

// Plan is what a mapped price means to the application.
type Plan struct {
	ID     string // lower-case plan id, e.g. "maquina"
	Period string // PeriodMonthly or PeriodAnnual
	Source string // where the mapping was configured, as PlanEntry.Source says, for messages
}

// Plans maps Stripe price ids to plans.
type Plans struct {
	byPrice map[string]Plan
}

// Lookup returns the plan of a price id.
func (p Plans) Lookup(priceID string) (Plan, bool) {
	pl, ok := p.byPrice[priceID]
	return pl, ok
}

// Len is the number of mapped prices.
func (p Plans) Len() int { return len(p.byPrice) }

// PriceIDs lists the mapped price ids, sorted.
func (p Plans) PriceIDs() []string {
	ids := make([]string, 0, len(p.byPrice))
	for id := range p.byPrice {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

var (
	planID  = regexp.MustCompile(`^[a-z0-9_]+$`)
	priceID = regexp.MustCompile(`^(price|plan)_[A-Za-z0-9_]+$`)
)

// ParsePeriod maps a period word of the configuration (annual, anual,
// yearly, year, monthly, mensal, month; any case) to PeriodAnnual or
// PeriodMonthly.
func ParsePeriod(word string) (string, bool) {
	switch strings.ToLower(word) {
	case "anual", "annual", "year", "yearly":
		return PeriodAnnual, true
	case "mensal", "monthly", "month":
		return PeriodMonthly, true
	}
	return "", false
}

// PlanEntry is one configured mapping of a Stripe price to a plan.
type PlanEntry struct {
	Price  string // Stripe price id, price_… (or a legacy plan_…)
	Plan   string // plan id: lower-case letters, digits and _
	Period string // PeriodAnnual or PeriodMonthly
	// Source says where the entry was configured (a setting, a file and
	// key); errors about the entry start with it.
	Source string
}

// NewPlans builds the price mapping from entries. An entry whose price is
// not a Stripe price id, whose plan id or period is not valid, or whose
// price another entry maps to a different plan or period is an error
// naming the Source of the entries concerned.
func NewPlans(entries ...PlanEntry) (Plans, error) {
	p := Plans{byPrice: map[string]Plan{}}
	for i, e := range entries {
		src := e.Source
		if src == "" {
			src = fmt.Sprintf("plan entry %d", i+1)
		}
		switch {
		case !priceID.MatchString(e.Price):
			return p, fmt.Errorf("%s: %q is not a Stripe price id (price_…)", src, e.Price)
		case !planID.MatchString(e.Plan):
			return p, fmt.Errorf("%s: plan id %q must be lower-case letters, digits and _", src, e.Plan)
		case e.Period != PeriodAnnual && e.Period != PeriodMonthly:
			return p, fmt.Errorf("%s: period %q is not %s or %s", src, e.Period, PeriodAnnual, PeriodMonthly)
		}
		if prev, ok := p.byPrice[e.Price]; ok && (prev.ID != e.Plan || prev.Period != e.Period) {
			return p, fmt.Errorf("%s: price %s is already mapped to %s/%s by %s", src, e.Price, prev.ID, prev.Period, prev.Source)
		}
		p.byPrice[e.Price] = Plan{ID: e.Plan, Period: e.Period, Source: src}
	}
	return p, nil
}

// plansYAML is the YAML layout of a plans file:
//
//	plans:
//	  maquina:
//	    name: Máquina
//	    prices:
//	      annual: price_…
//	      monthly: price_…
type plansYAML struct {
	Plans map[string]struct {
		Name   string            `yaml:"name"`
		Prices map[string]string `yaml:"prices"`
	} `yaml:"plans"`
}

// ParsePlansYAML reads a plans file (see configs/plans.example.yaml) and
// returns its entries, by plan id then period word; each entry's Source is
// its key (plans.<plan>.prices.<period>). Errors name the key that is
// wrong. NewPlans checks the entries.
func ParsePlansYAML(data []byte) ([]PlanEntry, error) {
	var f plansYAML
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	var entries []PlanEntry
	for _, id := range slices.Sorted(maps.Keys(f.Plans)) {
		prices := f.Plans[id].Prices
		for _, word := range slices.Sorted(maps.Keys(prices)) {
			key := fmt.Sprintf("plans.%s.prices.%s", id, word)
			period, ok := ParsePeriod(word)
			if !ok {
				return nil, fmt.Errorf("%s: period %q is not annual or monthly", key, word)
			}
			entries = append(entries, PlanEntry{Price: prices[word], Plan: id, Period: period, Source: key})
		}
	}
	return entries, nil
}
