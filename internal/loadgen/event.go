package loadgen

import (
	"fmt"
	"strings"
	"time"
)

// EventID is the id of event i of the run.
func EventID(run string, i int) string { return fmt.Sprintf("evt_load%s_%d", run, i) }

// SubscriptionID is the id of subscription k of the run when the
// configuration names none.
func SubscriptionID(run string, k int) string { return fmt.Sprintf("sub_load%s_%d", run, k) }

// Event builds event i of the run, a customer.subscription.updated about
// subscription sub created at `at`, carrying the whole subscription object
// as Stripe sends it (about 1.5 KB), so a daemon in
// WEBHOOK_APPLY_MODE=payload applies it without calling Stripe. Even events
// set cancel_at_period_end, so consecutive events about one subscription
// change a tracked field.
func Event(run string, i int, sub, price string, at time.Time) []byte {
	now := at.Unix()
	start, end := now-86400, now+364*86400
	tail := strings.TrimPrefix(sub, "sub_")
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,`+
		`"data":{"object":{"id":%q,"object":"subscription","application":null,"application_fee_percent":null,`+
		`"billing_cycle_anchor":%d,"cancel_at":null,`+
		`"cancel_at_period_end":%t,"canceled_at":null,`+
		`"collection_method":"charge_automatically","created":%d,"currency":"brl","current_period_end":%d,`+
		`"current_period_start":%d,"customer":"cus_%s","days_until_due":null,"default_payment_method":"pm_%s",`+
		`"discount":null,"ended_at":null,`+
		`"items":{"object":"list","data":[{"id":"si_%s","object":"subscription_item",`+
		`"created":%d,"metadata":{},"price":{"id":%q,"object":"price","active":true,"billing_scheme":"per_unit",`+
		`"created":1700000000,"currency":"brl","livemode":false,"lookup_key":null,`+
		`"product":"prod_load","recurring":{"aggregate_usage":null,"interval":"year","interval_count":1,`+
		`"usage_type":"licensed"},"type":"recurring",`+
		`"unit_amount":99700,"unit_amount_decimal":"99700"},"quantity":1,"subscription":%q,"tax_rates":[]}],`+
		`"has_more":false,"total_count":1,"url":"/v1/subscription_items?subscription=%s"},"latest_invoice":"in_%s",`+
		`"livemode":false,"metadata":{"user_id":"user_%s"},"next_pending_invoice_item_invoice":null,`+
		`"pause_collection":null,"pending_update":null,"schedule":null,"start_date":%d,"status":"active",`+
		`"trial_end":null,"trial_start":null},"previous_attributes":`+
		`{"cancel_at_period_end":%t}},"livemode":false,"pending_webhooks":1,`+
		`"request":{"id":null,"idempotency_key":null},"type":"customer.subscription.updated"}`,
		EventID(run, i), now, sub, start, i%2 == 0, start, end, start, tail, tail, tail, start, price,
		sub, sub, tail, tail, start, i%2 != 0)
}
