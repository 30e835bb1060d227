//go:build !linux

package web

import "net"

// rawSock is Linux only (rawio_linux.go); elsewhere batchConn uses the
// socket's own Read and Write.
type rawSock struct{ net.Conn }

func newRawSock(net.Conn) *rawSock { return nil }
