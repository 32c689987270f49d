// Command subsync-load sends signed Stripe webhooks to a running subsyncd
// and prints what it measured: answer latency percentiles, throughput and,
// with -database-url, how long until every event was applied (the time from
// the first request to the last event's processed_at).
//
//	subsync-load -url http://127.0.0.1:8080/webhooks/stripe -secret whsec_… -n 5000 -c 16 \
//	    -price price_… -database-url postgres://…
//
// The events are customer.subscription.updated with a full subscription
// object, so a daemon in WEBHOOK_APPLY_MODE=payload applies them without
// calling Stripe.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "subsync-load:", err)
		os.Exit(1)
	}
}
