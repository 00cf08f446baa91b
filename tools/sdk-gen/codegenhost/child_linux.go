package main

import "syscall"

// endsWithParent: the CLI ends a language host by killing it, and the wrapped host goes with it rather
// than linger.
func endsWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
