package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// checkTimeout bounds each check that talks to a service.
const checkTimeout = 20 * time.Second

// checker prints one line per check and remembers failures.
type checker struct {
	w      io.Writer
	failed []string
}

func (c *checker) ok(name, format string, args ...any) { c.line("ok", name, format, args...) }

func (c *checker) warn(name, format string, args ...any) { c.line("warn", name, format, args...) }

func (c *checker) fail(name, format string, args ...any) {
	c.failed = append(c.failed, name)
	c.line("FAIL", name, format, args...)
}

// line prints one check on one line, whatever newlines its detail holds.
func (c *checker) line(status, name, format string, args ...any) {
	detail := strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " ")
	fmt.Fprintf(c.w, "%-4s  %-9s %s\n", status, name, detail)
}

// runCheck is `subsyncd check`: configuration, database, Stripe key, the
// mapped prices and the webhook endpoints, one line each; exit 1 when a
// check fails (2 when the configuration itself is wrong).
func runCheck(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	c := &checker{w: stdout}
	n := need{db: true, stripe: true}
	cfg, rest, err := parseConfig("check", args, env, stderr, n, nil)
	if err == nil && len(rest) > 0 {
		err = usagef("check takes no argument, got %q", rest)
	}
	if err != nil {
		c.fail("config", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
		return err
	}
	base := cmp.Or(cfg.StripeAPIBase, "https://api.stripe.com")
	c.ok("config", "%d mapped price(s), database %s, Stripe API %s, key %s…", cfg.Plans.Len(), db.Redact(cfg.DatabaseURL), base, keyKind(cfg.StripeSecretKey))

	checkDatabase(ctx, c, cfg)
	client, err := stripeapi.New(stripeapi.Config{
		Key: cfg.StripeSecretKey, APIBase: cfg.StripeAPIBase, RateLimit: cfg.StripeRateLimit,
		MaxRetries: 2, Logger: cfg.logger(stderr),
	})
	if err != nil {
		c.fail("stripe", "%v", err)
	} else if checkStripeKey(ctx, c, client) {
		checkPrices(ctx, c, client, cfg.Plans)
		checkWebhooks(ctx, c, client)
	}
	if len(c.failed) > 0 {
		return fmt.Errorf("check: %d check(s) failed: %s", len(c.failed), strings.Join(c.failed, ", "))
	}
	return nil
}

// keyKind names the kind of key without revealing it.
func keyKind(key string) string {
	for _, p := range []string{"sk_live_", "sk_test_", "rk_live_", "rk_test_"} {
		if strings.HasPrefix(key, p) {
			return p
		}
	}
	return "?"
}

func checkDatabase(ctx context.Context, c *checker, cfg config) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	d, err := db.Open(ctx, db.Config{URL: cfg.DatabaseURL, MaxOpenConns: 2})
	if err != nil {
		c.fail("database", "unreachable: %v", err)
		return
	}
	defer d.Close()
	if err := d.Ready(ctx); err != nil {
		c.fail("database", "reachable but not ready: %v", err)
		return
	}
	latest, _ := db.LatestMigration()
	c.ok("database", "reachable, migrations applied (version %d)", latest)
	checkDataAPI(ctx, c, d)
}

// checkStripeKey reports whether the key works; the other Stripe checks
// are pointless when it does not.
func checkStripeKey(ctx context.Context, c *checker, client *stripeapi.Client) bool {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := client.CheckKey(ctx); err != nil {
		if errors.Is(err, stripeapi.ErrInvalidKey) {
			c.fail("stripe", "key rejected: %v", err)
		} else {
			c.fail("stripe", "key not verified: %v", err)
		}
		return false
	}
	c.ok("stripe", "key valid (GET /v1/balance answered)")
	return true
}

// checkPrices checks that every mapped price exists and recurs with the
// interval its mapping names (annual = year×1, monthly = month×1).
func checkPrices(ctx context.Context, c *checker, client *stripeapi.Client, plans reconcile.Plans) {
	if plans.Len() == 0 {
		c.warn("prices", "no price mapped: plan_id stays null (set STRIPE_PRICE_<PLAN>_<PERIOD> or PLANS_FILE)")
		return
	}
	for _, id := range plans.PriceIDs() {
		pl, _ := plans.Lookup(id)
		name := "price"
		want := fmt.Sprintf("%s %s (%s)", pl.ID, pl.Period, pl.Source)
		pctx, cancel := context.WithTimeout(ctx, checkTimeout)
		p, err := client.GetPrice(pctx, id)
		cancel()
		switch {
		case errors.Is(err, stripeapi.ErrNotFound):
			c.fail(name, "%s for %s: not found in this account/mode", id, want)
		case err != nil:
			c.fail(name, "%s for %s: %v", id, want, err)
		case p.Recurring == nil:
			c.fail(name, "%s for %s: one-time price, not recurring", id, want)
		case reconcile.PeriodOf(p) != pl.Period:
			c.fail(name, "%s for %s: recurs every %d %s, which is %s", id, want,
				p.Recurring.IntervalCount, p.Recurring.Interval, reconcile.PeriodOf(p))
		case !p.Active:
			c.warn(name, "%s for %s: recurring %s×%d but archived (inactive)", id, want, p.Recurring.Interval, p.Recurring.IntervalCount)
		default:
			c.ok(name, "%s for %s: recurring %s×%d", id, want, p.Recurring.Interval, p.Recurring.IntervalCount)
		}
	}
}

// checkWebhooks lists each webhook endpoint with its API version, says
// what a version other than the one stripe-go pins means, and warns when
// an enabled endpoint misses handled types.
func checkWebhooks(ctx context.Context, c *checker, client *stripeapi.Client) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	eps, err := client.ListWebhookEndpoints(ctx)
	if err != nil {
		c.warn("webhooks", "could not list webhook endpoints: %v", err)
		return
	}
	if len(eps) == 0 {
		c.warn("webhooks", "no webhook endpoint in this account: only the reconcilers will see changes")
		return
	}
	for _, ep := range eps {
		version := cmp.Or(ep.APIVersion, "the account's default version")
		line := fmt.Sprintf("endpoint %s (%s), %s, api_version %s", ep.ID, ep.URL, cmp.Or(ep.Status, "enabled"), version)
		if ep.APIVersion != stripe.APIVersion {
			line += fmt.Sprintf(": events come in that version, not %s, and are accepted; refetch mode applies each from the API in %s,"+
				" payload mode reads the event's own object in any version (see the README, Stripe API versions)."+
				" To choose the version, create the endpoint with it (Dashboard: API version; API: api_version);"+
				" `stripe listen` forwards in the account's default version, or the latest with --latest",
				stripe.APIVersion, stripe.APIVersion)
		}
		missing := missingTypes(ep.EnabledEvents)
		if ep.Status == "enabled" && len(missing) > 0 {
			c.warn("webhooks", "%s; lacks %d handled event type(s): %s", line, len(missing), strings.Join(missing, ", "))
			continue
		}
		c.ok("webhooks", "%s", line)
	}
}

// missingTypes returns the handled event types an endpoint enabled for
// enabled does not receive ("*" receives every type).
func missingTypes(enabled []string) []string {
	if slices.Contains(enabled, "*") {
		return nil
	}
	var out []string
	for _, t := range reconcile.HandledTypes {
		if !slices.Contains(enabled, t) {
			out = append(out, t)
		}
	}
	return out
}
