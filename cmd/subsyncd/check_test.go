package main

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

// checkLines returns the check output as "status name" pairs, e.g.
// "ok database", in order.
func checkLines(out string) []string {
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			got = append(got, f[0]+" "+f[1])
		}
	}
	return got
}

func TestCheckCommand(t *testing.T) {
	e := newRecEnv(t)
	if _, errOut, code := e.cli(t, "migrate"); code != 0 {
		t.Fatal(errOut)
	}
	quarterly, err := e.fake.CreatePrice(stripefake.PriceParams{UnitAmount: 900, Interval: "month", IntervalCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.AddWebhookEndpoint("https://example.com/hook", "whsec_x", stripe.APIVersion, nil)
	unmigrated := testenv.DatabaseURL(t)

	cases := []struct {
		name  string
		env   []string // added to (and overriding) the base environment
		setup func()
		code  int
		want  []string // "status name" lines, in order
		says  string   // a detail that must appear
	}{
		{
			name: "all good", code: 0,
			want: []string{"ok config", "ok database", "ok stripe", "ok price", "ok price", "ok webhooks"},
			says: "recurring year×1",
		},
		{
			name: "price with the wrong interval", code: 1,
			env:  []string{"STRIPE_PRICE_MAQUINA_ANUAL=" + quarterly.ID},
			want: []string{"ok config", "ok database", "ok stripe", "ok price", "FAIL price", "ok webhooks"},
			says: "recurs every 3 month, which is other",
		},
		{
			name: "annual price mapped as monthly", code: 1,
			env:  []string{"STRIPE_PRICE_MAQUINA_ANUAL=", "STRIPE_PRICE_MAQUINA_MENSAL=" + e.annual},
			want: []string{"ok config", "ok database", "ok stripe", "FAIL price", "ok webhooks"},
			says: "which is annual",
		},
		{
			name: "price missing", code: 1,
			env:  []string{"STRIPE_PRICE_SALA_ANUAL=price_doesNotExist"},
			want: []string{"ok config", "ok database", "ok stripe", "ok price", "ok price", "FAIL price", "ok webhooks"},
			says: "not found",
		},
		{
			name: "key rejected", code: 1,
			env:  []string{"STRIPE_SECRET_KEY=sk_test_wrongwrongwrong"},
			want: []string{"ok config", "ok database", "FAIL stripe"},
			says: "key rejected",
		},
		{
			name: "database not migrated", code: 1,
			env:  []string{"DATABASE_URL=" + unmigrated},
			want: []string{"ok config", "FAIL database", "ok stripe", "ok price", "ok price", "ok webhooks"},
			says: "reachable but not ready",
		},
		{
			name: "database down", code: 1,
			env:  []string{"DATABASE_URL=postgres://postgres:hunter2@127.0.0.1:1/none?sslmode=disable"},
			want: []string{"ok config", "FAIL database", "ok stripe", "ok price", "ok price", "ok webhooks"},
			says: "unreachable",
		},
		{
			name: "webhook endpoint lacks types", code: 0,
			setup: func() {
				e.fake.AddWebhookEndpoint("https://example.com/partial", "whsec_y", "", []string{"customer.subscription.updated"})
			},
			want: []string{"ok config", "ok database", "ok stripe", "ok price", "ok price", "ok webhooks", "warn webhooks"},
			says: "lacks 10 handled event type(s): customer.subscription.created,",
		},
		{
			name: "webhook endpoint in another API version", code: 0,
			setup: func() {
				e.fake.AddWebhookEndpoint("https://example.com/basil", "whsec_z", "2025-03-31.basil", []string{"*"})
			},
			want: []string{"ok config", "ok database", "ok stripe", "ok price", "ok price", "ok webhooks", "warn webhooks", "ok webhooks"},
			says: "api_version 2025-03-31.basil: events come in that version, not 2023-10-16, and are accepted; refetch mode",
		},
		{
			name: "configuration error", code: 2,
			env:  []string{"STRIPE_PRICE_MAQUINA_WEEKLY=price_x"},
			want: []string{"FAIL config"},
			says: "STRIPE_PRICE_MAQUINA_WEEKLY",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			env := append(append([]string(nil), e.env...), c.env...)
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"check"}, env, &out, &errOut)
			code := exitCode(err, &errOut)
			got := checkLines(out.String())
			slices.Sort(got) // prices come in id order, which is random
			want := slices.Sorted(slices.Values(c.want))
			if code != c.code || !slices.Equal(got, want) || !strings.Contains(out.String(), c.says) {
				t.Fatalf("exit %d (want %d), lines %v (want %v), should say %q:\n%s%s", code, c.code, got, c.want, c.says, out.String(), errOut.String())
			}
			for _, secret := range []string{e.fake.APIKey(), "wrongwrongwrong", "hunter2"} {
				if strings.Contains(out.String()+errOut.String(), secret) {
					t.Fatalf("output leaks %q", secret)
				}
			}
			if !regexp.MustCompile(`(?m)^(ok|warn|FAIL)\s+\S+`).MatchString(out.String()) {
				t.Fatalf("unexpected format:\n%s", out.String())
			}
		})
	}
}

func TestMissingTypes(t *testing.T) {
	cases := []struct {
		name    string
		enabled []string
		missing int
	}{
		{"wildcard", []string{"*"}, 0},
		{"everything", reconcile.HandledTypes, 0},
		{"none", nil, len(reconcile.HandledTypes)},
		{"one", []string{"invoice.paid"}, len(reconcile.HandledTypes) - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := missingTypes(c.enabled); len(got) != c.missing {
				t.Fatalf("missing %v", got)
			}
		})
	}
}
