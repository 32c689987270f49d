package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// measureCommand makes subsync-bench a launcher: `subsync-bench measure FILE
// CMD ARGS...` runs CMD and writes its peak resident set size (bytes) and CPU time
// (nanoseconds) to FILE. The launcher is needed because Linux charges a child the parent's
// peak RSS when it is exec'd straight from the parent's address space (Go
// starts children with vfork), and the parent here holds the whole fake:
// the launcher is small, so what it reports is the sweep's own peak.
const measureCommand = "measure"

func measureChild(ctx context.Context, args []string) error {
	if len(args) < 2 {
		return errors.New("usage: subsync-bench measure FILE CMD [ARGS...]")
	}
	cmd := exec.CommandContext(ctx, args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	runErr := cmd.Run()
	if cmd.ProcessState == nil {
		return runErr
	}
	rss, cpu := usageOf(cmd.ProcessState)
	if err := os.WriteFile(args[0], fmt.Appendf(nil, "%d %d", rss, cpu.Nanoseconds()), 0o644); err != nil {
		return err
	}
	return runErr
}

// readUsage reads what a measure launcher wrote: peak RSS in bytes and CPU
// time.
func readUsage(file string) (int64, time.Duration, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, fmt.Errorf("child usage: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("child usage: %q", b)
	}
	rss, err1 := strconv.ParseInt(f[0], 10, 64)
	cpu, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("child usage: %q", b)
	}
	return rss, time.Duration(cpu), nil
}
