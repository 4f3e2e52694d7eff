// Package idptest holds the conformance suites every idp store backend runs
// from its _test.go files, shaped like dexidp/dex storage/conformance. Only
// test files may import it.
package idptest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// subtestTimeout bounds one subtest; a deadlock dumps every goroutine.
const subtestTimeout = 2 * time.Minute

// withTimeout runs f and, if it has not returned after d, prints all
// goroutines and panics: a hung store should fail loudly, not stall CI.
func withTimeout(d time.Duration, f func()) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(d):
			buf := make([]byte, 2<<20)
			fmt.Fprintf(os.Stderr, "%s\n", buf[:runtime.Stack(buf, true)])
			panic("idptest: subtest took too long")
		}
	}()
	f()
}

// mustBe fails unless errors.Is(err, target).
func mustBe(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func mustNil(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// equal compares records field by field; JSON makes the message readable.
func equal(t *testing.T, got, want any, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// base is a UTC time already rounded to the millisecond, so records built
// from it must round-trip exactly.
var base = time.Date(2025, 3, 1, 10, 0, 0, 123_000_000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

func ptr(t time.Time) *time.Time { return &t }
