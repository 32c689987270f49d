// Command withservices runs a command with the shared test services up:
// it finds or starts Postgres and Redis as internal/testenv does (see
// testenv.AdminDatabaseURL and testenv.SharedRedisURL), exports
// TEST_DATABASE_URL and TEST_REDIS_URL, runs the command, stops what it
// started and exits with the command's status. The Makefile runs the test
// suite, the demo and the benchmarks through it, so that every test binary
// shares one server.
//
//	go run ./internal/cmd/withservices -- command [args...]
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/subsync/subsync/internal/testenv"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: withservices -- command [args...]")
		return 2
	}
	defer func() {
		if err := testenv.StopShared(); err != nil {
			fmt.Fprintf(os.Stderr, "withservices: %v\n", err)
		}
	}()
	pg, err := testenv.AdminDatabaseURL()
	if err != nil {
		fmt.Fprintf(os.Stderr, "withservices: %v\n", err)
		return 1
	}
	redis, err := testenv.SharedRedisURL()
	if err != nil {
		fmt.Fprintf(os.Stderr, "withservices: %v\n", err)
		return 1
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "TEST_DATABASE_URL="+pg, "TEST_REDIS_URL="+redis)
	// The command gets the terminal's signals itself; wait for it to end.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	err = cmd.Run()
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
		return exit.ExitCode()
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "withservices: %v\n", err)
		return 1
	}
	return 0
}
