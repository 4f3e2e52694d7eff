package web

import (
	"net/url"
	"strconv"
	"testing"
	"time"
)

// FuzzParseWait: whatever the query, an accepted wait is a whole number of
// seconds from 0 to MaxStatusWait, written in its one plain decimal form.
func FuzzParseWait(f *testing.F) {
	for _, s := range []string{"wait=25", "wait=0", "wait=26", "wait=-1", "wait=1.5", "wait=+5", "wait=", "wait=1&wait=2", "", "wait=025", "wait=05", "wait=%32%35", "wait=1e1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		d, ok := parseWait(q)
		if !ok {
			return
		}
		if d < 0 || d > MaxStatusWait || d%time.Second != 0 {
			t.Fatalf("parseWait(%q) = %v", raw, d)
		}
		if v, present := q["wait"]; present && (len(v) != 1 || v[0] != strconv.Itoa(int(d/time.Second))) {
			t.Fatalf("parseWait(%q) accepted %q as %v", raw, v, d)
		}
	})
}
