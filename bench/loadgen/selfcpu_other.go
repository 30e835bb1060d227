//go:build !unix

package loadgen

import "time"

// selfCPU is not measured here (it needs getrusage): the report shows
// the generator's CPU as zero.
func selfCPU() time.Duration { return 0 }
