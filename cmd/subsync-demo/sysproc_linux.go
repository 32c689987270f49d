//go:build linux

package main

import "syscall"

// sysProcAttr puts a subsyncd child in its own process group (a Ctrl-C in
// the terminal reaches the demo, which stops its children in order) and has
// the kernel send it SIGTERM if the demo dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
