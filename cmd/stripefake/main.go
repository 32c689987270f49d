// Command stripefake serves a stateful fake of the Stripe API (package
// internal/stripefake) for demos and load tests: no Stripe account, no
// network. It creates the three plans' monthly and annual prices and prints
// their ids as STRIPE_PRICE_<PLAN>_<PERIOD>=price_… lines that a shell can
// source.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode maps run's error to the exit status: 0, 2 for usage errors, 1.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "stripefake:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "stripefake:", err)
		return 1
	}
}
