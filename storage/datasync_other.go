//go:build !linux

package storage

import "os"

// datasync flushes f to the disk (fsync; only Linux has fdatasync here).
func datasync(f *os.File) error { return f.Sync() }
