//go:build !linux

package web

import "net"

// waitReadable returns at once: the reader then waits in gorilla's read,
// on a larger stack (see conn.read).
func waitReadable(net.Conn) error { return nil }
