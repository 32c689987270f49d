package testenv

import (
	"testing"
	"time"

	"github.com/subsync/subsync/internal/childproc"
)

// WaitTimeout is how long WaitFor waits before it fails the test: long, as
// it bounds only a failing test.
const WaitTimeout = time.Minute

// WaitFor polls cond every 10ms until it holds, failing the test with what
// after WaitTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, WaitTimeout, what, cond)
}

// WaitWithin is WaitFor with a timeout of its own, for a wait whose bound is
// part of what the test checks (a server dropping a client within a limit).
func WaitWithin(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Buffer is a bytes.Buffer safe for concurrent use: a log sink or a child's
// output shared with the goroutines that write it.
type Buffer = childproc.Buffer
