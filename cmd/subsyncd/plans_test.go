package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/subsync/subsync/reconcile"
)

func TestLoadPlansFromEnv(t *testing.T) {
	env := map[string]string{
		"STRIPE_PRICE_CONSULTOR_AGIL_ANUAL":   "price_ca_y",
		"STRIPE_PRICE_CONSULTOR_AGIL_MENSAL":  "price_ca_m",
		"STRIPE_PRICE_MAQUINA_ANNUAL":         " price_mq_y ",
		"STRIPE_PRICE_SALA_DE_GUERRA_MONTHLY": "price_sg_m",
		"STRIPE_PRICE_EMPTY_ANUAL":            "",
		"UNRELATED":                           "x",
	}
	p, err := loadPlans(env, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]reconcile.Plan{
		"price_ca_y": {ID: "consultor_agil", Period: reconcile.PeriodAnnual, Source: "STRIPE_PRICE_CONSULTOR_AGIL_ANUAL"},
		"price_ca_m": {ID: "consultor_agil", Period: reconcile.PeriodMonthly, Source: "STRIPE_PRICE_CONSULTOR_AGIL_MENSAL"},
		"price_mq_y": {ID: "maquina", Period: reconcile.PeriodAnnual, Source: "STRIPE_PRICE_MAQUINA_ANNUAL"},
		"price_sg_m": {ID: "sala_de_guerra", Period: reconcile.PeriodMonthly, Source: "STRIPE_PRICE_SALA_DE_GUERRA_MONTHLY"},
	}
	if p.Len() != len(want) {
		t.Fatalf("mapped %d prices, want %d: %v", p.Len(), len(want), p.PriceIDs())
	}
	for price, w := range want {
		if got, ok := p.Lookup(price); !ok || got != w {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", price, got, ok, w)
		}
	}
}

func TestLoadPlansErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "plans.yaml")
	writeFile(t, good, "plans:\n  maquina:\n    name: Máquina\n    prices:\n      annual: price_mq_y\n      monthly: price_mq_m\n")
	badPeriod := filepath.Join(dir, "bad.yaml")
	writeFile(t, badPeriod, "plans:\n  maquina:\n    prices:\n      weekly: price_w\n")
	badPlan := filepath.Join(dir, "badplan.yaml")
	writeFile(t, badPlan, "plans:\n  Maquina:\n    prices:\n      annual: price_w\n")
	cases := []struct {
		name string
		env  map[string]string
		file string
		want []string
	}{
		{"bad period word", map[string]string{"STRIPE_PRICE_MAQUINA_WEEKLY": "price_x"}, "", []string{"STRIPE_PRICE_MAQUINA_WEEKLY:"}},
		{"not a price id", map[string]string{"STRIPE_PRICE_MAQUINA_ANUAL": "prod_x"}, "", []string{"STRIPE_PRICE_MAQUINA_ANUAL:", "prod_x"}},
		{"price mapped twice", map[string]string{"STRIPE_PRICE_MAQUINA_ANUAL": "price_mq_m"}, good,
			[]string{"STRIPE_PRICE_MAQUINA_ANUAL:", "already mapped", "PLANS_FILE " + good + " (plans.maquina.prices.monthly)"}},
		{"file period", nil, badPeriod, []string{"PLANS_FILE " + badPeriod + ":", "plans.maquina.prices.weekly"}},
		{"file plan id", nil, badPlan, []string{"PLANS_FILE " + badPlan + " (plans.Maquina.prices.annual):", "plan id"}},
		{"missing file", nil, filepath.Join(dir, "nope.yaml"), []string{"PLANS_FILE:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadPlans(c.env, c.file)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
	t.Run("file and env agree", func(t *testing.T) {
		p, err := loadPlans(map[string]string{"STRIPE_PRICE_MAQUINA_ANUAL": "price_mq_y"}, good)
		if err != nil {
			t.Fatal(err)
		}
		if pl, _ := p.Lookup("price_mq_m"); pl.ID != "maquina" || pl.Period != reconcile.PeriodMonthly {
			t.Fatalf("file mapping lost: %+v", pl)
		}
	})
}

// writeFile writes a test file or ends the test.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
