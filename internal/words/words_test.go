package words

import (
	"testing"
	"time"
)

func TestCountAndRound(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0 edits"}, {1, "1 edit"}, {2, "2 edits"}} {
		if got := Count(tc.n, "edit"); got != tc.want {
			t.Errorf("Count(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want time.Duration }{
		{432123 * time.Nanosecond, 432 * time.Microsecond},
		{12345678 * time.Nanosecond, 12350 * time.Microsecond},
		{2345678901 * time.Nanosecond, 2346 * time.Millisecond},
	} {
		if got := Round(tc.in); got != tc.want {
			t.Errorf("Round(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
