//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
	"time"
)

// usageOf returns the peak resident set size of an exited child, in bytes
// (getrusage's ru_maxrss: kilobytes on Linux, bytes on macOS), and the CPU
// time it used (user plus system).
func usageOf(ps *os.ProcessState) (int64, time.Duration) {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0
	}
	cpu := ps.UserTime() + ps.SystemTime()
	if runtime.GOOS == "darwin" {
		return ru.Maxrss, cpu
	}
	return ru.Maxrss * 1024, cpu
}
