// Command subsync-demo drives `make demo`: the whole subsync loop on this
// machine, with no Stripe account and no network beyond loopback.
//
// It creates a throwaway database, runs the Stripe fake (package stripefake)
// in process on a port of 127.0.0.1, seeds it with subscriptions across the
// three plans, starts bin/subsyncd serve against both, delivers the fake's
// signed webhooks (dropping some on purpose), makes changes in Stripe whose
// webhooks are all lost, corrupts rows by hand, and shows `subsyncd
// reconcile` finding and repairing the drift. It then prints the table and a
// few metrics, stops everything and drops the database. It checks what it
// shows: any step that does not turn out as expected fails the demo with a
// non-zero exit status.
//
// scripts/demo.sh builds the binaries and runs it; by hand:
//
//	make build && go run ./cmd/subsync-demo -database-url postgres://postgres@127.0.0.1:5432/test?sslmode=disable
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "\nsubsync-demo: interrupted; everything it started is stopped and its database dropped")
		os.Exit(130)
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "subsync-demo:", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "\nsubsync-demo: FAILED: %v\n", err)
		os.Exit(1)
	}
}
