package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/internal/stripefake"
)

// planPrice is one created price, named as subsyncd's configuration names
// it: STRIPE_PRICE_<PLAN>_<PERIOD>.
type planPrice struct{ stripefake.PlanPrice }

// envName is the variable that maps the price for subsyncd.
func (p planPrice) envName() string {
	return "STRIPE_PRICE_" + strings.ToUpper(p.Plan.Key) + "_" + p.Period
}

// billingPeriod is the value subsyncd stores for the price.
func (p planPrice) billingPeriod() string {
	if p.Period == "ANUAL" {
		return "annual"
	}
	return "monthly"
}

// label reads "Máquina monthly".
func (p planPrice) label() string { return p.Plan.Name + " " + p.billingPeriod() }

// brl formats centavos the Brazilian way: R$ 14.362,00.
func brl(centavos int64) string {
	reais := strconv.FormatInt(centavos/100, 10)
	var b strings.Builder
	for i, r := range reais {
		if i > 0 && (len(reais)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(r)
	}
	return fmt.Sprintf("R$ %s,%02d", b.String(), centavos%100)
}

// price returns the plan price with id, if it is one.
func (d *demo) price(id string) (planPrice, bool) {
	for _, p := range d.prices {
		if p.ID == id {
			return p, true
		}
	}
	return planPrice{}, false
}

// priceOf finds the plan price by plan key and period.
func (d *demo) priceOf(key, period string) planPrice {
	for _, p := range d.prices {
		if p.Plan.Key == key && p.Period == period {
			return p
		}
	}
	panic("no price " + key + " " + period)
}

// seedStatuses are cycled through by the seeding: mostly active, with some
// trials, a failed payment and a cancellation every ten.
var seedStatuses = []string{"active", "active", "trialing", "active", "active", "past_due", "active", "active", "canceled", "active"}

// startFake starts the fake on a port of 127.0.0.1, registers subsyncd's
// future webhook endpoint (so that every event from now on is owed to it),
// creates the plans and seeds the subscriptions with all their events.
func (d *demo) startFake() error {
	d.fake = stripefake.New(stripefake.Options{})
	d.fake.AddWebhookEndpoint("http://"+d.listenAddr+"/webhooks/stripe", webhookSecret, "", nil)
	prices, err := d.fake.CreatePlans()
	if err != nil {
		return err
	}
	for _, p := range prices {
		d.prices = append(d.prices, planPrice{p})
	}
	ids := make([]string, len(d.prices))
	for i, p := range d.prices {
		ids[i] = p.ID
	}
	d.subIDs, err = d.fake.SeedSubscriptions(d.cfg.subscriptions, stripefake.SeedOptions{
		Prices: ids, Statuses: seedStatuses, WithEvents: true,
	})
	if err != nil {
		return fmt.Errorf("seed the Stripe fake: %w", err)
	}

	d.say("in process, listening on 127.0.0.1 (what bin/stripefake -seed %d prints):", d.cfg.subscriptions)
	d.say("  STRIPE_API_BASE=%s", d.fake.URL())
	for _, p := range d.prices {
		d.say("  %s=%s", p.envName(), p.ID)
	}
	perPrice := map[string]int{}
	for _, s := range d.fake.Subscriptions() {
		perPrice[s.Items.Data[0].Price.ID]++
	}
	fmt.Fprintln(d.out)
	tw, flush := d.table()
	fmt.Fprintln(tw, "  PLAN\tPERIOD\tPRICE\tSUBSCRIPTIONS")
	for _, p := range d.prices {
		per := "/month"
		if p.Period == "ANUAL" {
			per = "/year"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\n", p.Plan.Name, p.billingPeriod(), brl(p.Amount)+per, perPrice[p.ID])
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintln(d.out)
	d.say("each customer and subscription carries metadata user_id=user_<n>; statuses: %s",
		statusSummary(d.fake.Subscriptions()))
	d.say("%d events waiting for the webhook endpoint http://%s/webhooks/stripe (subsyncd is not up yet)",
		len(d.fake.Events()), d.listenAddr)
	return nil
}

// statusSummary reads "35 active, 5 trialing, …", most frequent first.
func statusSummary(subs []*stripe.Subscription) string {
	c := counts{}
	for _, s := range subs {
		c[string(s.Status)]++
	}
	return c.String()
}

// deliverWebhooks has the fake deliver every pending event, shuffled, some
// twice and some never, while the row count is shown as it grows; then it
// sends one forged webhook.
func (d *demo) deliverWebhooks(ctx context.Context) error {
	d.say("the fake POSTs each event, signed with %s…, in random order, with Stripe's retries;", webhookSecret[:11])
	d.say("it drops %.0f%% of them on purpose and sends 5%% twice", d.cfg.dropRate*100)
	type result struct {
		st  stripefake.DeliverStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := d.fake.DeliverAll(ctx, stripefake.DeliverOptions{
			Shuffle: true, DuplicateRate: 0.05, DropRate: d.cfg.dropRate, Concurrency: 4,
			RetryLikeStripe: true, MaxAttempts: 5, RetryBackoff: 50 * time.Millisecond,
		})
		done <- result{st, err}
	}()

	var res *result
	last := ""
	stable := 0
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-done:
			res = &r
			if r.err != nil {
				return fmt.Errorf("deliver webhooks: %w", r.err)
			}
		case <-tick.C:
		}
		inbox, err := d.inboxCounts(ctx)
		if err != nil {
			return err
		}
		rows, err := d.rowCount(ctx)
		if err != nil {
			return err
		}
		waiting := inbox["pending"] + inbox["failed"]
		line := fmt.Sprintf("inbox %3d events (%3d waiting)   user_subscriptions %3d rows", inbox.total(), waiting, rows)
		if line != last {
			d.say("%s  %s", d.elapsed(), line)
			last, stable = line, 0
		} else {
			stable++
		}
		if res != nil && waiting == 0 && stable >= 2 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhooks not applied after 60s: %d events still waiting in the inbox", waiting)
		}
	}

	st := res.st
	fmt.Fprintln(d.out)
	d.say("deliveries: %d sent (%d duplicates, %d retries), %d answered 2xx, %d dropped on purpose, %d failed",
		st.Sent, st.Duplicates, st.Retries, st.Delivered, st.Dropped, st.Failed)
	if st.Failed > 0 || st.Non2xx > 0 {
		return fmt.Errorf("subsyncd refused %d deliveries (%d answers not 2xx): see its log", st.Failed, st.Non2xx)
	}
	inbox, err := d.inboxCounts(ctx)
	if err != nil {
		return err
	}
	d.say("inbox (stripe_webhook_events): %s", inbox)
	if inbox["dead"] > 0 {
		return fmt.Errorf("%d events are dead in the inbox", inbox["dead"])
	}
	rows, err := d.rowCount(ctx)
	if err != nil {
		return err
	}
	n := d.fake.SubscriptionCount()
	if rows == n {
		d.say("user_subscriptions: %d rows for %d Stripe subscriptions", rows, n)
	} else {
		d.say("user_subscriptions: %d rows for %d Stripe subscriptions: every webhook about %d of them was dropped;",
			rows, n, n-rows)
		d.say("the reconciliation below brings them in")
	}

	// A forged webhook: a real event body, signed with the wrong secret.
	evs := d.fake.Events()
	body, err := jsonOf(evs[len(evs)-1])
	if err != nil {
		return err
	}
	code, err := postWebhook(ctx, "http://"+d.listenAddr+"/webhooks/stripe", body,
		stripefake.SignPayload(body, "whsec_forged_by_an_attacker", time.Now()))
	if err != nil {
		return err
	}
	if code != http.StatusBadRequest {
		return fmt.Errorf("a webhook signed with the wrong secret was answered %d, want 400", code)
	}
	d.say("a webhook signed with the wrong secret: %d %s, nothing stored", code, http.StatusText(code))
	return nil
}

// postWebhook POSTs body with a Stripe-Signature header and returns the
// status code.
func postWebhook(ctx context.Context, url string, body []byte, sig string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post a webhook: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// changeStripe changes a few subscriptions in Stripe and has every webhook
// about them lost.
func (d *demo) changeStripe(ctx context.Context) error {
	subs := map[string]*stripe.Subscription{}
	for _, s := range d.fake.Subscriptions() {
		subs[s.ID] = s
	}
	// pick returns the first untouched active subscription on price p
	// ("" = any price).
	pick := func(p string) (*stripe.Subscription, error) {
		for _, id := range d.subIDs {
			s := subs[id]
			if d.touched[id] || s.Status != stripe.SubscriptionStatusActive || (p != "" && s.Items.Data[0].Price.ID != p) {
				continue
			}
			d.touched[id] = true
			return s, nil
		}
		return nil, fmt.Errorf("no active subscription left to change on price %q", p)
	}
	user := func(s *stripe.Subscription) string { return s.Metadata["user_id"] }

	d.say("in Stripe (the fake), with every webhook about these changes lost:")
	switches := []struct{ from, to planPrice }{
		{d.priceOf("consultor_agil", "MENSAL"), d.priceOf("maquina", "MENSAL")},
		{d.priceOf("maquina", "MENSAL"), d.priceOf("maquina", "ANUAL")},
		{d.priceOf("sala_de_guerra", "ANUAL"), d.priceOf("consultor_agil", "ANUAL")},
	}
	for _, sw := range switches {
		s, err := pick(sw.from.ID)
		if err != nil {
			return err
		}
		if _, err := d.fake.UpdateSubscriptionPrice(s.ID, sw.to.ID); err != nil {
			return err
		}
		d.say("  %s  %-10s switched plan: %s → %s", s.ID, user(s), sw.from.label(), sw.to.label())
	}
	for range 2 {
		s, err := pick("")
		if err != nil {
			return err
		}
		if _, err := d.fake.CancelSubscription(s.ID); err != nil {
			return err
		}
		d.say("  %s  %-10s canceled now", s.ID, user(s))
	}
	s, err := pick("")
	if err != nil {
		return err
	}
	if _, err := d.fake.SetCancelAtPeriodEnd(s.ID, true); err != nil {
		return err
	}
	d.say("  %s  %-10s set to cancel at period end", s.ID, user(s))

	st, err := d.fake.DeliverAll(ctx, stripefake.DeliverOptions{DropRate: 1})
	if err != nil {
		return fmt.Errorf("drop the webhooks: %w", err)
	}
	d.say("  → %d webhooks dropped, none sent", st.Dropped)
	if st.Sent != 0 {
		return fmt.Errorf("%d webhooks were sent, want none", st.Sent)
	}
	return nil
}
