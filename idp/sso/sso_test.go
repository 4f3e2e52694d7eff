package sso_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/idp/sso"
)

// An operator command that does not reach the ephemeral store a session is
// held in (the server's Redis) must not end the session's index and leave
// its entry signing the browser in: it refuses, ending nothing. Reaching
// the same store, it ends both. A session indexed before stores were
// named ends in whichever store the caller has.
func TestService_EndRefusesSessionsHeldElsewhere(t *testing.T) {
	backends(t, func(t *testing.T, a, b *sqlstore.Store) {
		ctx := t.Context()
		now := time.Now()
		server := sso.New(a, a, nil)
		server.SetEphemeral("redis:onedoor:")
		start := func(svc *sso.Service, sid, citizen string) string {
			t.Helper()
			key := "web:session:" + sid
			if err := svc.Start(ctx, &idp.Session{SID: sid, CitizenID: citizen, DeviceID: "dev-" + sid, Level: idp.LevelHigh,
				Key: key, AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := a.Create(ctx, key, []byte(`{}`), time.Hour); err != nil {
				t.Fatal(err)
			}
			return key
		}
		key := start(server, "s1", "cit-1")

		for _, name := range []string{"database", "redis:elsewhere:"} {
			admin := sso.New(b, b, nil)
			admin.SetEphemeral(name)
			if err := admin.Reachable(ctx, "cit-1"); !errors.Is(err, sso.ErrUnreachable) {
				t.Errorf("%s: Reachable = %v, want ErrUnreachable", name, err)
			}
			if ended, err := admin.End(ctx, idp.SessionFilter{CitizenID: "cit-1"}); !errors.Is(err, sso.ErrUnreachable) || len(ended) != 0 {
				t.Errorf("%s: End = %d sessions, %v; want none and ErrUnreachable", name, len(ended), err)
			}
			if live, err := b.ListSessions(ctx, "cit-1", now); err != nil || len(live) != 1 {
				t.Fatalf("%s: a refused End ended the index (%d live, %v)", name, len(live), err)
			}
			if _, err := a.Get(ctx, key); err != nil {
				t.Fatalf("%s: a refused End deleted the entry: %v", name, err)
			}
		}

		admin := sso.New(b, b, nil)
		admin.SetEphemeral("redis:onedoor:")
		if err := admin.Reachable(ctx, "cit-1"); err != nil {
			t.Fatal(err)
		}
		ended, err := admin.End(ctx, idp.SessionFilter{CitizenID: "cit-1"})
		if err != nil || len(ended) != 1 {
			t.Fatalf("End with the same store: %d, %v", len(ended), err)
		}
		if _, err := a.Get(ctx, key); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("entry after End: %v, want ErrNotFound", err)
		}

		// Indexed before stores were named: ended in the caller's store.
		legacy := start(sso.New(a, a, nil), "s2", "cit-2")
		admin.SetEphemeral("database")
		if ended, err := admin.End(ctx, idp.SessionFilter{CitizenID: "cit-2"}); err != nil || len(ended) != 1 {
			t.Fatalf("End of an unnamed session: %d, %v", len(ended), err)
		}
		if _, err := a.Get(ctx, legacy); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("unnamed session's entry after End: %v, want ErrNotFound", err)
		}
	})
}
