// Package stripefake is a stateful fake of the Stripe API, for tests,
// benchmarks, chaos runs and demos. It answers stripe-go v76 with JSON shaped
// like Stripe's for API version 2023-10-16 and keeps products, prices,
// customers, subscriptions, invoices, events and webhook endpoints in memory.
//
// Typical use:
//
//	fake := stripefake.New(stripefake.Options{})
//	defer fake.Close()
//	api := fake.Client() // or stripe.GetBackendWithConfig with fake.BackendConfig()
//	price, _ := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 59700, Interval: "month"})
//	cus, _ := fake.CreateCustomer(stripefake.CustomerParams{Email: "a@example.com"})
//	sub, _ := fake.CreateSubscription(stripefake.SubscriptionParams{Customer: cus.ID, Price: price.ID})
//	fake.Renew(sub.ID)                        // invoice.paid, invoice.payment_succeeded, customer.subscription.updated
//	fake.AddWebhookEndpoint(url, "whsec_x", "", nil)
//	fake.DeliverAll(ctx, stripefake.DeliverOptions{Shuffle: true, DuplicateRate: 0.1})
//
// Routes (form-encoded bodies, Authorization: Bearer <key>):
//
//	POST   /v1/products                 GET /v1/products/{id}
//	POST   /v1/prices                   GET /v1/prices, /v1/prices/{id}
//	POST   /v1/customers                GET /v1/customers, /v1/customers/{id}
//	POST   /v1/customers/{id}           DELETE /v1/customers/{id}
//	POST   /v1/subscriptions            GET /v1/subscriptions, /v1/subscriptions/{id}
//	POST   /v1/subscriptions/{id}       DELETE /v1/subscriptions/{id}
//	POST   /v1/subscriptions/{id}/resume
//	GET    /v1/invoices, /v1/invoices/{id}
//	GET    /v1/events, /v1/events/{id}
//	GET    /v1/webhook_endpoints        POST /v1/webhook_endpoints
//	GET    /v1/balance, /v1/account
//
// Lists follow Stripe: newest first by created then id, limit 1..100
// (default 10), starting_after, ending_before, has_more, created[gt|gte|lt|lte];
// GET /v1/subscriptions hides canceled and incomplete_expired unless status
// says otherwise; GET /v1/events keeps 30 days (by the fake's clock).
//
// Every change, through the API or a Go helper, creates the event Stripe
// would; API-made events carry the request id, helper-made ones a null
// request (Stripe's automatic changes). Events are stored in the canonical
// shape and rendered for the reader's API version: from 2025-03-31.basil on,
// subscriptions carry current_period_* on their items and invoices name
// their subscription under parent.subscription_details (their lines under
// parent.subscription_item_details); before 2019, subscription items carry
// only their plan and the subscription its plan at the top level, as in
// events recorded before Prices. PutSubscription stores a subscription
// under given ids without events, for replaying recorded events. Webhooks are only
// sent by Deliver, DeliverAll or AutoDeliver.
//
// Faults (latency, 500s, 429s, a number of failures in a row) apply to API
// requests only, are decided by a generator seeded by Options.Seed, and are
// counted by Stats. Not modelled: idempotent replay of Idempotency-Key,
// unknown-parameter errors, proration amounts, multi-item subscriptions,
// search endpoints.
package stripefake
