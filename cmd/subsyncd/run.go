package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/stripe/stripe-go/v76"
)

// Set by the linker: -X main.version=… -X main.commit=…
var (
	version = "dev"
	commit  = "none"
)

// usageError is a usage or configuration error: exit status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCode prints err (if any) and maps it to the exit status: 0 success, 1
// runtime failure, 2 usage or configuration error.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "subsyncd:", err)
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

const usage = `usage: subsyncd <command> [flags]

commands:
  serve       webhook listener, inbox workers, scheduled reconcilers, metrics
  migrate     apply pending migrations ("migrate status" lists them)
  reconcile   one reconciliation run now (--job, --dry-run, --format)
  check       preflight checks, one line each
  version     version, commit, Go version, Stripe API version

Configuration comes from the environment (see README.md); a flag of the
same name in kebab case overrides it, e.g. --database-url.`

// run is the whole program: main only maps its error to an exit status.
func run(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usagef("no command given")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, env, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, env, stdout, stderr)
	case "reconcile":
		return runReconcile(ctx, rest, env, stdout, stderr)
	case "check":
		return runCheck(ctx, rest, env, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "subsyncd %s (commit %s, %s, Stripe API %s)\n", version, commit, runtime.Version(), stripe.APIVersion)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return usagef("unknown command %q", cmd)
}
