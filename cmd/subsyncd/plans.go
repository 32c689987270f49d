package main

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/subsync/subsync/reconcile"
)

// priceVar is the name of a price variable: STRIPE_PRICE_<PLAN>_<PERIOD>.
var priceVar = regexp.MustCompile(`^STRIPE_PRICE_([A-Z0-9_]+)_(ANUAL|ANNUAL|MENSAL|MONTHLY)$`)

// loadPlans builds the price mapping from PLANS_FILE (file, when not empty)
// and the STRIPE_PRICE_<PLAN>_<PERIOD> variables of env; an empty variable
// maps nothing. Every error names the variable, and for the file the key,
// that is wrong; a price mapped twice names both.
func loadPlans(env map[string]string, file string) (reconcile.Plans, error) {
	var entries []reconcile.PlanEntry
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return reconcile.Plans{}, fmt.Errorf("PLANS_FILE: %w", err)
		}
		fromFile, err := reconcile.ParsePlansYAML(raw)
		if err != nil {
			return reconcile.Plans{}, fmt.Errorf("PLANS_FILE %s: %w", file, err)
		}
		for _, e := range fromFile {
			e.Source = fmt.Sprintf("PLANS_FILE %s (%s)", file, e.Source)
			entries = append(entries, e)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		v := strings.TrimSpace(env[k])
		if !strings.HasPrefix(k, "STRIPE_PRICE_") || v == "" {
			continue
		}
		m := priceVar.FindStringSubmatch(k)
		if m == nil {
			return reconcile.Plans{}, fmt.Errorf("%s: name must be STRIPE_PRICE_<PLAN>_<PERIOD> with PERIOD one of ANUAL, ANNUAL, MENSAL, MONTHLY", k)
		}
		period, _ := reconcile.ParsePeriod(m[2])
		entries = append(entries, reconcile.PlanEntry{Price: v, Plan: strings.ToLower(m[1]), Period: period, Source: k})
	}
	return reconcile.NewPlans(entries...)
}
