//go:build linux

package chaos

import "syscall"

// daemonProcAttr has the kernel kill the daemon if the test binary dies
// before stopping it.
func daemonProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
