package main

import (
	"flag"
	"strings"
	"testing"
)

// `onedoor push broadcast` queues one broadcast row for the servers to
// send; `push broadcasts` shows its progress.
func TestCLI_PushBroadcast(t *testing.T) {
	dir := migratedDir(t)
	code, out, errs := cli(t, nil, "push", "broadcast", "--data-dir", dir, "--title", "Hạn nộp hồ sơ", "--title-en", "Filing deadline",
		"--body", "31/12", "--province", "HN", "--ttl", "48h")
	if code != 0 {
		t.Fatalf("broadcast: %d %s", code, errs)
	}
	var b broadcastView
	decode(t, out, &b)
	if !strings.HasPrefix(b.ID, "brd_") || b.State != "queued" || b.Province != "HN" || b.ExpiresAt == nil {
		t.Fatalf("broadcast = %+v", b)
	}
	code, out, errs = cli(t, nil, "push", "broadcasts", "--data-dir", dir)
	var list struct {
		Store      string          `json:"store"`
		Broadcasts []broadcastView `json:"broadcasts"`
	}
	decode(t, out, &list)
	if code != 0 || len(list.Broadcasts) != 1 || list.Broadcasts[0].ID != b.ID || list.Store == "" {
		t.Fatalf("broadcasts: %d %s %s", code, out, errs)
	}
	for _, args := range [][]string{
		{"push", "broadcast", "--data-dir", dir},
		{"push", "broadcast", "--data-dir", dir, "--title", "x", "--province", "ATLANTIS"},
		{"push", "broadcast", "--data-dir", dir, "--title", "x", "--ttl", "-1h"},
		{"push", "bogus", "--data-dir", dir},
	} {
		if code, _, errs := cli(t, nil, args...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, %q; want a usage error", args, code, errs)
		}
	}
}

func TestConfig_PushFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--push-retention", "-1h"}, "--push-retention must be positive"},
		{[]string{"--apns-topic", "vn.gov.onedoor"}, "need --apns-key"},
		{[]string{"--apns-key", "k.p8"}, "--apns-key needs"},
	} {
		c := DefaultConfig()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		c.serveFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
