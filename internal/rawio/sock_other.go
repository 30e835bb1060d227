//go:build !linux

package rawio

import "net"

// Sock is Linux only (sock_linux.go); elsewhere New returns nil and
// callers use the socket's own Read and Write.
type Sock struct{ net.Conn }

// New returns nil: raw I/O is Linux only.
func New(net.Conn) *Sock { return nil }
