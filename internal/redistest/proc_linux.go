package redistest

import "syscall"

// procAttr makes the server die with the test binary, so a test that
// crashes or is killed by a timeout leaves no redis-server running.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
