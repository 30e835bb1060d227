//go:build !linux

package storage

// rusage reports nothing off Linux; the benchmarks then leave out the
// CPU and context-switch figures.
func rusage() (cpuMicros, switches int64) { return 0, 0 }
