package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/subsync/subsync/internal/testenv"
	"github.com/subsync/subsync/reconcile"
)

func cacheTestID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Without REDIS_URL the upsert writes no outbox row (it still notifies);
// with it, a feature-relevant change writes one.
func TestCacheOutboxOnlyWithRedisURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		redisURL string
		wantRows int
	}{
		{"without REDIS_URL", "", 0},
		{"with REDIS_URL", "redis://127.0.0.1:6379/0", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"DATABASE_URL=" + testenv.DatabaseURL(t)}
			if tc.redisURL != "" {
				env = append(env, "REDIS_URL="+tc.redisURL)
			}
			ctx := context.Background()
			n := need{db: true}
			cfg, _, err := parseConfig("serve", nil, env, io.Discard, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			a, err := newApp(ctx, cfg, n, true, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer a.close()
			user, plan := cacheTestID("u_"), "pro"
			res, err := a.db.UpsertSubscription(ctx, reconcile.Subscription{
				StripeSubscriptionID: cacheTestID("sub_"), UserID: &user, StripeCustomerID: "cus_1",
				PlanID: &plan, BillingPeriod: "monthly", Status: "active", StripeStateAt: time.Now(),
			})
			if err != nil || !res.Invalidated {
				t.Fatalf("upsert = %+v, %v; want a notified change", res, err)
			}
			rows, err := a.db.Invalidations(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.wantRows {
				t.Fatalf("%d outbox rows, want %d", len(rows), tc.wantRows)
			}
			if tc.wantRows == 1 && rows[0].CacheKey != "features:"+user {
				t.Fatalf("cache key %q, want features:%s", rows[0].CacheKey, user)
			}
		})
	}
}

// cacheTestEvent is a signed customer.subscription.* webhook whose object
// carries everything payload mode needs: price with its recurring interval,
// customer, status and metadata.user_id.
func cacheTestEvent(t *testing.T, secret, typ, subID, user, price string, created time.Time) ([]byte, string) {
	t.Helper()
	sub := map[string]any{
		"id": subID, "object": "subscription", "customer": "cus_" + user, "status": "active",
		"current_period_start": created.Unix(), "current_period_end": created.AddDate(0, 1, 0).Unix(),
		"cancel_at_period_end": false, "created": created.Unix(),
		"metadata": map[string]string{"user_id": user},
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_" + subID, "object": "subscription_item",
			"price": map[string]any{"id": price, "object": "price", "currency": "usd", "unit_amount": 1000,
				"recurring": map[string]any{"interval": "month", "interval_count": 1}},
		}}},
	}
	body, err := json.Marshal(map[string]any{
		"id": cacheTestID("evt_"), "object": "event", "api_version": "2023-10-16", "type": typ,
		"created": created.Unix(), "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": sub},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig := webhook.ComputeSignature(now, body, secret)
	return body, fmt.Sprintf("t=%d,v1=%s", now.Unix(), hex.EncodeToString(sig))
}

// The whole daemon: a signed webhook changes a linked user's subscription,
// and the user's cache key disappears from a password-protected Redis,
// whose password never reaches the logs.
func TestServeWebhookDeletesCacheKey(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	const password = "s3cret-redis-pw"
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	if err := admin.ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	admin.Close()
	redisURL := fmt.Sprintf("redis://:%s@%s/0", password, srv.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password})
	t.Cleanup(func() { rdb.Close() })

	var stripeCalls atomic.Int64
	stripeAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stripeCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintln(w, `{"error":{"type":"invalid_request_error","message":"no such object"}}`)
	}))
	t.Cleanup(stripeAPI.Close)

	const secret = "whsec_cachetest"
	d := startServeForTest(t, []string{
		"DATABASE_URL=" + testenv.DatabaseURL(t),
		"REDIS_URL=" + redisURL,
		"STRIPE_SECRET_KEY=sk_test_x",
		"STRIPE_WEBHOOK_SECRET=" + secret,
		"STRIPE_API_BASE=" + stripeAPI.URL,
		"STRIPE_PRICE_BASIC_MONTHLY=price_basic_m",
		"STRIPE_PRICE_PRO_MONTHLY=price_pro_m",
		"WEBHOOK_APPLY_MODE=payload",
		"RECONCILE_EVENTS_SCHEDULE=",
		"RECONCILE_SUBSCRIPTIONS_SCHEDULE=",
		"LOG_LEVEL=debug",
	})

	user, subID := cacheTestID("u_"), cacheTestID("sub_")
	k := "features:" + user
	post := func(typ, price string, created time.Time) {
		t.Helper()
		body, sig := cacheTestEvent(t, secret, typ, subID, user, price, created)
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.listen+"/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sig)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), "accepted") {
			t.Fatalf("webhook %s: %d %s", typ, resp.StatusCode, answer)
		}
	}
	waitGone := func() {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			n, err := rdb.Exists(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still in Redis 15s after the webhook; daemon log:\n%s", k, d.stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	created := time.Now().Add(-time.Minute)
	if err := rdb.Set(ctx, k, `{"plan":"none"}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	post("customer.subscription.created", "price_basic_m", created)
	waitGone()

	if err := rdb.Set(ctx, k, `{"plan":"basic"}`, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	post("customer.subscription.updated", "price_pro_m", created.Add(10*time.Second))
	waitGone()

	// A delivery is counted once its outbox row is marked done, just after
	// the key is deleted.
	var exposition string
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, exposition = get(t, "http://"+d.metrics+"/metrics")
		if strings.Contains(exposition, `subsync_cache_invalidations_total{outcome="success"} 2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks the two successful invalidations 15s after the key was deleted:\n%s", exposition)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	logs := d.stderr.String()
	if !strings.Contains(logs, `"msg":"cache key deleted"`) || !strings.Contains(logs, `"user_id":"`+user+`"`) {
		t.Errorf("no \"cache key deleted\" log line with user_id %s; log:\n%s", user, logs)
	}
	if strings.Contains(logs, password) {
		t.Fatal("the Redis password appears in the daemon's log")
	}
	if n := stripeCalls.Load(); n != 0 {
		t.Errorf("payload mode made %d Stripe API calls, want 0", n)
	}
}
