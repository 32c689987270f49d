//go:build linux

package testenv

import "syscall"

// sysProcAttr puts the child in its own process group, runs it with cred
// when set, and has the kernel send it deathSig when the test binary dies.
func sysProcAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: deathSig}
}
