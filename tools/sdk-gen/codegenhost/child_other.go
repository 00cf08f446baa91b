//go:build !linux

package main

import "syscall"

// endsWithParent: only Linux ties a child's life to its parent's; elsewhere a killed wrapper may leave the
// wrapped host running (the tests run on Linux).
func endsWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
