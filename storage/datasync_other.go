//go:build !linux

package storage

import "os"

// datasync flushes f to the disk (fsync; only Linux has fdatasync here).
func datasync(f *os.File) error { return f.Sync() }

// writeAt writes all of p to f at off.
func writeAt(f *os.File, p []byte, off int64) (int, error) { return f.WriteAt(p, off) }

// openSegment creates (or empties) a log segment for writing, buffered:
// direct I/O is used on Linux only.
func openSegment(path string, direct bool) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	return f, false, err
}
