package main

import (
	"context"
	"net/url"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// `citizen lock` pointed at another Redis than the server's (here the same
// server and key prefix, another database: a typo, or an operator shell
// whose ONEDOOR_REDIS_URL names staging) must not report success while the
// citizen's sessions still sign in: either it refuses, or the entries in
// the server's Redis are gone.
func TestCitizenLock_OtherRedisDatabaseDoesNotClaimSuccess(t *testing.T) {
	e := startMain(t, scaleOption(t))
	pid := demoCitizens[0].PersonalID
	rcv := newBCLRP(t)
	id, secret := e.bclClient(t, rcv, ClientSpec{})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	b := newBrowser()
	_, idt := e.codeFlow(r, b, e.app)
	keys := liveEntries(t, e, idt.Subject)

	other, err := url.Parse(e.m.Config.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	other.Path = "/15"
	if other.String() == e.m.Config.RedisURL {
		other.Path = "/14"
	}
	code, out, errs := cli(t, nil, "citizen", "lock", "--postgres-dsn", e.m.Config.PostgresDSN, "--master-key-file", e.m.Config.MasterKeyFile,
		"--personal-id", pid, "--redis-url", other.String(), "--redis-prefix", e.m.Config.RedisPrefix)
	if code != 0 {
		return // refused: nothing claimed
	}
	for _, k := range keys {
		if _, err := e.m.Eph.Get(context.Background(), k); err == nil {
			t.Errorf("lock against Redis %s exited 0 (stdout %s, stderr %q) but the session entry %q is still in the server's Redis", other.Redacted(), out, errs, k)
		}
	}
	if got := silentSSO(t, b, r); got == "" {
		t.Errorf("silent SSO still logs the citizen in after a successful citizen lock")
	}
}
