// Package words phrases figures for the results coedit prints: a count
// with its noun, a duration to a few significant digits.
package words

import (
	"fmt"
	"time"
)

// Count counts n of a noun that takes an s: "1 edit", "3 edits".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Round keeps three or four significant digits of d: rounded to the
// millisecond, a replay of a short log took "0s".
func Round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
