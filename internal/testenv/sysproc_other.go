//go:build unix && !linux

package testenv

import "syscall"

// sysProcAttr puts the child in its own process group and runs it with cred
// when set. Outside Linux a child outlives a test binary that dies.
func sysProcAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
