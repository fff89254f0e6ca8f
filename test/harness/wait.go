package harness

import (
	"testing"
	"time"
)

// Poll calls cond every interval until it holds or within has passed, and
// reports whether it held. Every wait of the end-to-end tests is bounded
// this way.
func Poll(within, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// WaitUntil is Poll that fails t, saying what it waited for.
func WaitUntil(t testing.TB, what string, within, every time.Duration, cond func() bool) {
	t.Helper()
	if !Poll(within, every, cond) {
		t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}
