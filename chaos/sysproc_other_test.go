//go:build !linux

package chaos

import "syscall"

// daemonProcAttr: without Pdeathsig, t.Cleanup is what stops the daemon.
func daemonProcAttr() *syscall.SysProcAttr { return nil }
