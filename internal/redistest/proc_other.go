//go:build !linux

package redistest

import "syscall"

// procAttr has no parent-death signal outside Linux; the cleanups stop
// the servers.
func procAttr() *syscall.SysProcAttr { return nil }
