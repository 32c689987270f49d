package reconcile

import (
	"slices"
	"strings"
	"testing"
)

func TestNewPlans(t *testing.T) {
	p, err := NewPlans(
		PlanEntry{Price: "price_ca_y", Plan: "consultor_agil", Period: PeriodAnnual, Source: "a"},
		PlanEntry{Price: "price_ca_m", Plan: "consultor_agil", Period: PeriodMonthly, Source: "b"},
		PlanEntry{Price: "price_mq_y", Plan: "maquina", Period: PeriodAnnual, Source: "c"},
		PlanEntry{Price: "price_mq_y", Plan: "maquina", Period: PeriodAnnual, Source: "d"}, // the same mapping twice
	)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.PriceIDs(), []string{"price_ca_m", "price_ca_y", "price_mq_y"}; !slices.Equal(got, want) {
		t.Fatalf("PriceIDs = %v, want %v", got, want)
	}
	want := map[string]Plan{
		"price_ca_y": {ID: "consultor_agil", Period: PeriodAnnual, Source: "a"},
		"price_ca_m": {ID: "consultor_agil", Period: PeriodMonthly, Source: "b"},
		"price_mq_y": {ID: "maquina", Period: PeriodAnnual, Source: "d"},
	}
	for price, w := range want {
		if got, ok := p.Lookup(price); !ok || got != w {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", price, got, ok, w)
		}
	}
	if _, ok := p.Lookup("price_other"); ok {
		t.Error("Lookup(price_other) found a plan")
	}
}

func TestNewPlansErrorsNameTheSource(t *testing.T) {
	cases := []struct {
		name    string
		entries []PlanEntry
		want    []string
	}{
		{"not a price id", []PlanEntry{{Price: "prod_x", Plan: "maquina", Period: PeriodAnnual, Source: "SRC"}},
			[]string{"SRC:", `"prod_x"`}},
		{"bad plan id", []PlanEntry{{Price: "price_x", Plan: "Máquina", Period: PeriodAnnual, Source: "SRC"}},
			[]string{"SRC:", "plan id"}},
		{"bad period", []PlanEntry{{Price: "price_x", Plan: "maquina", Period: "weekly", Source: "SRC"}},
			[]string{"SRC:", `"weekly"`}},
		{"price mapped twice", []PlanEntry{
			{Price: "price_x", Plan: "maquina", Period: PeriodAnnual, Source: "FIRST"},
			{Price: "price_x", Plan: "maquina", Period: PeriodMonthly, Source: "SECOND"},
		}, []string{"SECOND:", "already mapped to maquina/annual by FIRST"}},
		{"no source", []PlanEntry{{Price: "price_x", Plan: "maquina", Period: PeriodAnnual}, {Price: "x"}},
			[]string{"plan entry 2:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewPlans(c.entries...)
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
}

func TestParsePlansYAML(t *testing.T) {
	entries, err := ParsePlansYAML([]byte(`
plans:
  maquina:
    name: Máquina
    prices:
      monthly: price_mq_m
      annual: price_mq_y
  consultor_agil:
    prices:
      ANUAL: price_ca_y
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []PlanEntry{
		{Price: "price_ca_y", Plan: "consultor_agil", Period: PeriodAnnual, Source: "plans.consultor_agil.prices.ANUAL"},
		{Price: "price_mq_y", Plan: "maquina", Period: PeriodAnnual, Source: "plans.maquina.prices.annual"},
		{Price: "price_mq_m", Plan: "maquina", Period: PeriodMonthly, Source: "plans.maquina.prices.monthly"},
	}
	if !slices.Equal(entries, want) {
		t.Fatalf("entries = %+v\nwant %+v", entries, want)
	}

	for _, c := range []struct{ name, yaml, want string }{
		{"bad period word", "plans:\n  maquina:\n    prices:\n      weekly: price_w\n", `plans.maquina.prices.weekly: period "weekly"`},
		{"not YAML", "plans: [", "yaml"},
		{"wrong shape", "plans:\n  maquina: 3\n", "yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePlansYAML([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestParsePeriod(t *testing.T) {
	for word, want := range map[string]string{
		"ANUAL": PeriodAnnual, "annual": PeriodAnnual, "Yearly": PeriodAnnual, "year": PeriodAnnual,
		"MENSAL": PeriodMonthly, "monthly": PeriodMonthly, "month": PeriodMonthly,
		"weekly": "", "": "",
	} {
		got, ok := ParsePeriod(word)
		if got != want || ok != (want != "") {
			t.Errorf("ParsePeriod(%q) = %q, %v; want %q", word, got, ok, want)
		}
	}
}
