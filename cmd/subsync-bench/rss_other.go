//go:build !unix

package main

import (
	"os"
	"time"
)

// usageOf measures only the CPU time on this system.
func usageOf(ps *os.ProcessState) (int64, time.Duration) {
	return 0, ps.UserTime() + ps.SystemTime()
}
