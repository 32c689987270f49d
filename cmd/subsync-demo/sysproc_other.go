//go:build !linux

package main

import "syscall"

// sysProcAttr leaves the child's attributes alone off Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }
