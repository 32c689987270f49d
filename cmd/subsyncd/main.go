// Command subsyncd keeps an application's user_subscriptions table equal to
// Stripe: webhooks on the fast path, scheduled reconciliation as the safety
// net, metrics for Prometheus. See README.md.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr), os.Stderr))
}
