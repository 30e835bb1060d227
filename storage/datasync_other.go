//go:build !linux

package storage

import "os"

// datasync flushes f to the disk (fsync; only Linux has fdatasync here).
func datasync(f *os.File) error { return f.Sync() }

// writeAt writes all of p to f at off.
func writeAt(f *os.File, p []byte, off int64) (int, error) { return f.WriteAt(p, off) }
