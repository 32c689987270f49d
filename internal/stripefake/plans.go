package stripefake

import (
	"fmt"
	"strings"
)

// Plan is one of the three plans of the catalogue the fake's tools sell,
// prices in centavos (BRL); the annual price is twelve months at 20% off.
type Plan struct {
	Key     string // plan_id in user_subscriptions, lookup key prefix
	Name    string
	Monthly int64
	Annual  int64
}

// Plans returns the catalogue.
func Plans() []Plan {
	return []Plan{
		{"consultor_agil", "Consultor Ágil", 29700, 285100},
		{"maquina", "Máquina", 59700, 573100},
		{"sala_de_guerra", "Sala de Guerra", 149600, 1436200},
	}
}

// PlanPrice is one price CreatePlans created.
type PlanPrice struct {
	Plan   Plan
	Period string // ANUAL or MENSAL, as the daemon's configuration names it
	ID     string
	Amount int64
}

// CreatePlans creates a product per plan of Plans with an annual and a
// monthly price, annual first.
func (s *Server) CreatePlans() ([]PlanPrice, error) {
	var out []PlanPrice
	for _, p := range Plans() {
		prod, err := s.CreateProduct(p.Name, map[string]string{"plan": p.Key})
		if err != nil {
			return nil, fmt.Errorf("create product %s: %w", p.Key, err)
		}
		for _, v := range []struct {
			period, interval string
			amount           int64
		}{{"ANUAL", "year", p.Annual}, {"MENSAL", "month", p.Monthly}} {
			pr, err := s.CreatePrice(PriceParams{
				Product: prod.ID, UnitAmount: v.amount, Currency: "brl", Interval: v.interval,
				LookupKey: p.Key + "_" + strings.ToLower(v.period), Nickname: p.Name + " " + v.period,
			})
			if err != nil {
				return nil, fmt.Errorf("create %s %s price: %w", p.Key, v.interval, err)
			}
			out = append(out, PlanPrice{Plan: p, Period: v.period, ID: pr.ID, Amount: v.amount})
		}
	}
	return out, nil
}
