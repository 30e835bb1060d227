//go:build race

package web

// raceOn: the race detector is on; it grows goroutine stacks.
const raceOn = true
