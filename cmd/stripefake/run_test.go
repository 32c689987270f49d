package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"
)

// started runs run in the background and returns the variables it printed
// once STRIPE_API_BASE and the six prices are out, and a stop function that
// returns run's error.
func started(t *testing.T, args ...string) (map[string]string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, io.Discard)
		_ = pw.CloseWithError(io.EOF)
		done <- err
	}()
	vars := map[string]string{}
	sc := bufio.NewScanner(pr)
	for len(vars) < 7 && sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("stdout line %q is not NAME=value", sc.Text())
		}
		vars[k] = v
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if len(vars) < 7 {
		cancel()
		t.Fatalf("run printed %v before stopping: %v", vars, <-done)
	}
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("run did not return after cancel")
		}
	})
	t.Cleanup(func() { _ = stop() })
	return vars, stop
}

func apiFor(vars map[string]string) *client.API {
	b := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL: stripe.String(vars["STRIPE_API_BASE"]), MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	api := &client.API{}
	api.Init("sk_test_fake", &stripe.Backends{API: b, Connect: b, Uploads: b})
	return api
}

func TestRunSeedsAndPrintsPrices(t *testing.T) {
	t.Parallel()
	vars, stop := started(t, "-addr", "127.0.0.1:0", "-seed", "30")
	api := apiFor(vars)

	want := map[string]struct {
		amount   int64
		interval stripe.PriceRecurringInterval
	}{
		"STRIPE_PRICE_CONSULTOR_AGIL_ANUAL":  {285100, "year"},
		"STRIPE_PRICE_MAQUINA_ANUAL":         {573100, "year"},
		"STRIPE_PRICE_SALA_DE_GUERRA_ANUAL":  {1436200, "year"},
		"STRIPE_PRICE_CONSULTOR_AGIL_MENSAL": {29700, "month"},
		"STRIPE_PRICE_MAQUINA_MENSAL":        {59700, "month"},
		"STRIPE_PRICE_SALA_DE_GUERRA_MENSAL": {149600, "month"},
	}
	for name, w := range want {
		p, err := api.Prices.Get(vars[name], nil)
		if err != nil {
			t.Fatalf("%s=%s: %v", name, vars[name], err)
		}
		if p.UnitAmount != w.amount || p.Recurring.Interval != w.interval || p.Currency != "brl" {
			t.Fatalf("%s: amount %d interval %s currency %s", name, p.UnitAmount, p.Recurring.Interval, p.Currency)
		}
	}

	p := &stripe.SubscriptionListParams{Status: stripe.String("all")}
	p.Limit = stripe.Int64(100)
	it := api.Subscriptions.List(p)
	perPrice := map[string]int{}
	for it.Next() {
		perPrice[it.Subscription().Items.Data[0].Price.ID]++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	for name := range want {
		if perPrice[vars[name]] != 5 {
			t.Fatalf("subscriptions per price = %v, want 5 on each of the six", perPrice)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
}

func TestRunDeliversWebhooks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var types []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		evt, err := webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), "whsec_demo")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		types = append(types, string(evt.Type))
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	_, stop := started(t, "-addr", "127.0.0.1:0", "-seed", "2", "-seed-events",
		"-webhook-url", recv.URL, "-webhook-secret", "whsec_demo")
	// 6 price.created, then per subscription customer.created,
	// customer.subscription.created, invoice.paid, invoice.payment_succeeded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(types)
		mu.Unlock()
		if n == 6+2*4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d events: %v", n, types)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRunUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"-nope"}},
		{"webhook url without secret", []string{"-webhook-url", "http://127.0.0.1:1/"}},
		{"negative seed", []string{"-seed", "-1"}},
		{"error rate above 1", []string{"-error-rate", "2"}},
		{"stray argument", []string{"serve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, io.Discard, &stderr)
			if !errors.Is(err, errUsage) || exitCode(err, io.Discard) != 2 {
				t.Fatalf("run(%v) = %v, want a usage error", tt.args, err)
			}
		})
	}
}
