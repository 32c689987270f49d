// Package reconcile is the domain of subsyncd: the desired row of a Stripe
// subscription, the applier that drains the inbox, the events catch-up, the
// subscription sweep and their schedules.
package reconcile

import (
	"fmt"
	"os"
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
	Source string // where the mapping came from (variable name or file), for messages
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
	priceVar = regexp.MustCompile(`^STRIPE_PRICE_([A-Z0-9_]+)_(ANUAL|ANNUAL|MENSAL|MONTHLY)$`)
	planID   = regexp.MustCompile(`^[a-z0-9_]+$`)
	priceID  = regexp.MustCompile(`^(price|plan)_[A-Za-z0-9_]+$`)
)

func periodOf(word string) (string, bool) {
	switch strings.ToLower(word) {
	case "anual", "annual", "year", "yearly":
		return PeriodAnnual, true
	case "mensal", "monthly", "month":
		return PeriodMonthly, true
	}
	return "", false
}

// plansFile is the YAML layout of PLANS_FILE:
//
//	plans:
//	  maquina:
//	    name: Máquina
//	    prices:
//	      annual: price_…
//	      monthly: price_…
type plansFile struct {
	Plans map[string]struct {
		Name   string            `yaml:"name"`
		Prices map[string]string `yaml:"prices"`
	} `yaml:"plans"`
}

// LoadPlans builds the price mapping from the STRIPE_PRICE_<PLAN>_<PERIOD>
// variables of env and, when file is not empty, the YAML file. A price
// mapped to two different plans or periods is an error naming both sources.
func LoadPlans(env map[string]string, file string) (Plans, error) {
	p := Plans{byPrice: map[string]Plan{}}
	add := func(price string, pl Plan) error {
		if !priceID.MatchString(price) {
			return fmt.Errorf("%s: %q is not a Stripe price id (price_…)", pl.Source, price)
		}
		if prev, ok := p.byPrice[price]; ok && (prev.ID != pl.ID || prev.Period != pl.Period) {
			return fmt.Errorf("%s: price %s is already mapped to %s/%s by %s", pl.Source, price, prev.ID, prev.Period, prev.Source)
		}
		p.byPrice[price] = pl
		return nil
	}
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return p, fmt.Errorf("PLANS_FILE: %w", err)
		}
		var pf plansFile
		if err := yaml.Unmarshal(raw, &pf); err != nil {
			return p, fmt.Errorf("PLANS_FILE %s: %w", file, err)
		}
		ids := make([]string, 0, len(pf.Plans))
		for id := range pf.Plans {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if !planID.MatchString(id) {
				return p, fmt.Errorf("PLANS_FILE %s: plan id %q must be lower-case letters, digits and _", file, id)
			}
			for word, price := range pf.Plans[id].Prices {
				period, ok := periodOf(word)
				if !ok {
					return p, fmt.Errorf("PLANS_FILE %s: plan %s: period %q is not annual or monthly", file, id, word)
				}
				src := fmt.Sprintf("PLANS_FILE %s (plans.%s.prices.%s)", file, id, word)
				if err := add(price, Plan{ID: id, Period: period, Source: src}); err != nil {
					return p, err
				}
			}
		}
	}
	names := make([]string, 0)
	for k := range env {
		if strings.HasPrefix(k, "STRIPE_PRICE_") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		v := strings.TrimSpace(env[k])
		if v == "" {
			continue
		}
		m := priceVar.FindStringSubmatch(k)
		if m == nil {
			return p, fmt.Errorf("%s: name must be STRIPE_PRICE_<PLAN>_<PERIOD> with PERIOD one of ANUAL, ANNUAL, MENSAL, MONTHLY", k)
		}
		period, _ := periodOf(m[2])
		if err := add(v, Plan{ID: strings.ToLower(m[1]), Period: period, Source: k}); err != nil {
			return p, err
		}
	}
	return p, nil
}
