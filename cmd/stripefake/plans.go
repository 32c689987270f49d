package main

import (
	"fmt"
	"strings"

	"github.com/subsync/subsync/internal/stripefake"
)

// planPrice is one created price, named as the daemon's configuration names
// it: STRIPE_PRICE_<plan>_<period>.
type planPrice struct {
	plan   string // CONSULTOR_AGIL
	period string // ANUAL or MENSAL
	id     string
}

// plan is one of the three plans, with its prices in centavos (BRL); the
// annual price is twelve months at 20% off.
type plan struct {
	key     string // lookup key prefix and env name, lower-cased
	name    string
	monthly int64
	annual  int64
}

func plans() []plan {
	return []plan{
		{"consultor_agil", "Consultor Ágil", 29700, 285100},
		{"maquina", "Máquina", 59700, 573100},
		{"sala_de_guerra", "Sala de Guerra", 149600, 1436200},
	}
}

// createPlans creates a product per plan with an annual and a monthly price.
func createPlans(fake *stripefake.Server) ([]planPrice, error) {
	var out []planPrice
	for _, p := range plans() {
		prod, err := fake.CreateProduct(p.name, map[string]string{"plan": p.key})
		if err != nil {
			return nil, fmt.Errorf("create product %s: %w", p.key, err)
		}
		for _, v := range []struct {
			period, interval string
			amount           int64
		}{{"ANUAL", "year", p.annual}, {"MENSAL", "month", p.monthly}} {
			pr, err := fake.CreatePrice(stripefake.PriceParams{
				Product: prod.ID, UnitAmount: v.amount, Currency: "brl", Interval: v.interval,
				LookupKey: p.key + "_" + strings.ToLower(v.period),
				Nickname:  p.name + " " + v.period,
			})
			if err != nil {
				return nil, fmt.Errorf("create %s %s price: %w", p.key, v.interval, err)
			}
			out = append(out, planPrice{plan: strings.ToUpper(p.key), period: v.period, id: pr.ID})
		}
	}
	return out, nil
}
