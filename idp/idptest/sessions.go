package idptest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// SessionBackend is a durable store with the session index, the
// back-channel logout queue and subject-wide refresh revocation.
type SessionBackend interface {
	idp.Store
	idp.SessionStore
	idp.DeliveryStore
	idp.SubjectRefreshRevoker
}

// RunSessionTests runs the session index and logout queue suite. newPair
// returns two stores over one fresh, migrated database (two replicas).
func RunSessionTests(t *testing.T, newPair func(t *testing.T) (a, b SessionBackend)) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b SessionBackend)
	}{
		{"CreateListTouch", testSessionsCreateList},
		{"TouchEnded", testSessionsTouchEnded},
		{"EndQueuesLogoutsOnce", testSessionsEndQueues},
		{"EndByCitizenAndDevice", testSessionsEndFilters},
		{"EndNeedsFilter", testSessionsEndNeedsFilter},
		{"ConcurrentEndQueuesOnce", testSessionsConcurrentEnd},
		{"ClaimLeaseRecord", testLogoutClaimLease},
		{"TwoReplicasNeverClaimOneRow", testLogoutTwoReplicas},
		{"ClientBackchannelFields", testClientBackchannel},
		{"CIBAPingHeldReleasedClaimed", testCIBAPingQueue},
		{"CIBAPingExpires", testCIBAPingExpires},
		{"CIBAPingNotToClientUnderReview", testCIBAPingUnderReview},
		{"RevokeSubjectRefreshTokens", testRevokeSubjectRefresh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newPair(t)
			withTimeout(subtestTimeout, func() { tt.run(t, a, b) })
		})
	}
}

func bclClient(t *testing.T, s idp.Store, id, uri string) {
	t.Helper()
	mustNil(t, s.CreateClient(context.Background(), &idp.Client{ID: id, Name: id, RedirectURIs: []string{"https://" + id + ".example/cb"},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, AuthMethod: idp.AuthNone, IDTokenAlg: "ES256",
		BackchannelLogoutURI: uri}), "create client "+id)
}

func newSession(sid, citizen, device string, now time.Time) *idp.Session {
	return &idp.Session{SID: sid, CitizenID: citizen, DeviceID: device, Level: idp.LevelSubstantial, Key: "web:session:" + sid,
		AuthTime: now, ExpiresAt: now.Add(8 * time.Hour)}
}

func testSessionsCreateList(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mustNil(t, s.CreateSession(ctx, newSession("s1", "cit-a", "dev-1", now.Add(-time.Minute))), "create s1")
	mustNil(t, s.CreateSession(ctx, newSession("s2", "cit-a", "dev-2", now)), "create s2")
	mustNil(t, s.CreateSession(ctx, newSession("s3", "cit-b", "dev-3", now)), "create s3")
	mustBe(t, s.CreateSession(ctx, newSession("s1", "cit-a", "dev-1", now)), idp.ErrConflict, "create s1 again")
	mustNil(t, s.TouchSession(ctx, "s1", "rp-1", now), "touch")
	mustNil(t, s.TouchSession(ctx, "s1", "rp-2", now.Add(time.Second)), "touch")
	mustNil(t, s.TouchSession(ctx, "s1", "rp-1", now.Add(2*time.Second)), "touch again")
	mustBe(t, s.TouchSession(ctx, "absent", "rp-1", now), idp.ErrNotFound, "touch absent")
	got, err := s.ListSessions(ctx, "cit-a", now)
	mustNil(t, err, "list")
	if len(got) != 2 || got[0].SID != "s2" || got[1].SID != "s1" {
		t.Fatalf("ListSessions(cit-a) = %v, want s2 then s1", sids(got))
	}
	equal(t, got[1].Clients, []string{"rp-1", "rp-2"}, "clients of s1")
	equal(t, got[1].AuthTime, now.Add(-time.Minute), "auth time")
	equal(t, got[1].Key, "web:session:s1", "key")
	equal(t, got[1].Ephemeral, "", "ephemeral store of a session that names none")
	inRedis := newSession("s4", "cit-c", "dev-4", now)
	inRedis.Ephemeral = "redis:onedoor:"
	mustNil(t, s.CreateSession(ctx, inRedis), "create a session held in Redis")
	got, err = s.ListSessions(ctx, "cit-c", now)
	mustNil(t, err, "list")
	if len(got) != 1 || got[0].Ephemeral != "redis:onedoor:" {
		t.Errorf("ListSessions(cit-c) = %+v, want s4 held in redis:onedoor:", got)
	}
	// Expired sessions are not listed.
	got, err = s.ListSessions(ctx, "cit-a", now.Add(9*time.Hour))
	mustNil(t, err, "list later")
	if len(got) != 0 {
		t.Errorf("ListSessions after expiry = %v, want none", sids(got))
	}
}

func sids(ss []*idp.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.SID)
	}
	return out
}

func testSessionsTouchEnded(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	now := time.Now()
	mustNil(t, s.CreateSession(ctx, newSession("s1", "cit-a", "dev-1", now)), "create")
	ended, err := s.EndSessions(ctx, idp.SessionFilter{SID: "s1"}, now)
	mustNil(t, err, "end")
	if len(ended) != 1 {
		t.Fatalf("ended %v, want s1", sids(ended))
	}
	mustBe(t, s.TouchSession(ctx, "s1", "rp-1", now), idp.ErrExpired, "touch an ended session")
	mustNil(t, s.CreateSession(ctx, newSession("s2", "cit-a", "dev-1", now)), "create s2")
	mustBe(t, s.TouchSession(ctx, "s2", "rp-1", now.Add(9*time.Hour)), idp.ErrExpired, "touch an expired session")
}

func testSessionsEndQueues(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	now := time.Now()
	bclClient(t, s, "rp-bcl", "https://rp-bcl.example/bcl")
	bclClient(t, s, "rp-plain", "")
	mustNil(t, s.CreateSession(ctx, newSession("s1", "cit-a", "dev-1", now)), "create")
	mustNil(t, s.TouchSession(ctx, "s1", "rp-bcl", now), "touch")
	mustNil(t, s.TouchSession(ctx, "s1", "rp-plain", now), "touch")
	mustNil(t, s.TouchSession(ctx, "s1", "rp-deleted", now), "touch") // a client id no longer registered
	ended, err := s.EndSessions(ctx, idp.SessionFilter{SID: "s1"}, now)
	mustNil(t, err, "end")
	if len(ended) != 1 || ended[0].CitizenID != "cit-a" || ended[0].Key != "web:session:s1" {
		t.Fatalf("ended = %+v", ended)
	}
	equal(t, ended[0].Clients, []string{"rp-bcl", "rp-deleted", "rp-plain"}, "clients of the ended session")
	ds, err := s.ListDeliveries(ctx, "s1")
	mustNil(t, err, "list logouts")
	if len(ds) != 1 || ds[0].ClientID != "rp-bcl" || ds[0].Subject != "cit-a" || ds[0].State != idp.DeliveryPending ||
		ds[0].URI != "https://rp-bcl.example/bcl" || ds[0].IDTokenAlg != "ES256" {
		t.Fatalf("logouts = %+v, want one pending for rp-bcl", ds)
	}
	// Ending again ends nothing and queues nothing more.
	again, err := s.EndSessions(ctx, idp.SessionFilter{SID: "s1"}, now)
	mustNil(t, err, "end again")
	if len(again) != 0 {
		t.Errorf("second end ended %v", sids(again))
	}
	ds, _ = s.ListDeliveries(ctx, "s1")
	if len(ds) != 1 {
		t.Errorf("after a second end: %d deliveries, want 1", len(ds))
	}
}

func testSessionsEndFilters(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	now := time.Now()
	for _, x := range []struct{ sid, cit, dev string }{{"a1", "cit-a", "dev-1"}, {"a2", "cit-a", "dev-2"}, {"a3", "cit-a", "dev-2"}, {"b1", "cit-b", "dev-3"}} {
		mustNil(t, s.CreateSession(ctx, newSession(x.sid, x.cit, x.dev, now)), "create "+x.sid)
	}
	// Another citizen's session is not ended by naming its sid with mine.
	got, err := s.EndSessions(ctx, idp.SessionFilter{SID: "b1", CitizenID: "cit-a"}, now)
	mustNil(t, err, "end b1 as cit-a")
	if len(got) != 0 {
		t.Fatalf("ended %v naming another citizen's sid", sids(got))
	}
	got, err = s.EndSessions(ctx, idp.SessionFilter{DeviceID: "dev-2"}, now)
	mustNil(t, err, "end by device")
	if len(got) != 2 {
		t.Fatalf("end by device ended %v, want a2 and a3", sids(got))
	}
	got, err = s.EndSessions(ctx, idp.SessionFilter{CitizenID: "cit-a"}, now)
	mustNil(t, err, "end by citizen")
	if len(got) != 1 || got[0].SID != "a1" {
		t.Fatalf("end by citizen ended %v, want a1", sids(got))
	}
	left, err := s.ListSessions(ctx, "cit-b", now)
	mustNil(t, err, "list cit-b")
	if len(left) != 1 {
		t.Errorf("cit-b's sessions = %v, want b1 untouched", sids(left))
	}
}

func testSessionsEndNeedsFilter(t *testing.T, s, _ SessionBackend) {
	_, err := s.EndSessions(t.Context(), idp.SessionFilter{}, time.Now())
	mustBe(t, err, idp.ErrInvalid, "end with an empty filter")
}

func testSessionsConcurrentEnd(t *testing.T, a, b SessionBackend) {
	ctx := t.Context()
	now := time.Now()
	bclClient(t, a, "rp-bcl", "https://rp-bcl.example/bcl")
	mustNil(t, a.CreateSession(ctx, newSession("s1", "cit-a", "dev-1", now)), "create")
	mustNil(t, a.TouchSession(ctx, "s1", "rp-bcl", now), "touch")
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			got, err := s.EndSessions(ctx, idp.SessionFilter{CitizenID: "cit-a"}, now)
			if err != nil {
				t.Errorf("end: %v", err)
				return
			}
			mu.Lock()
			total += len(got)
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != 1 {
		t.Errorf("8 concurrent ends ended %d sessions, want 1", total)
	}
	ds, err := a.ListDeliveries(ctx, "s1")
	mustNil(t, err, "list")
	if len(ds) != 1 {
		t.Errorf("%d deliveries, want 1", len(ds))
	}
}

func endedWithLogout(t *testing.T, s SessionBackend, sid, client string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	mustNil(t, s.CreateSession(ctx, newSession(sid, "cit-"+sid, "dev-"+sid, now)), "create "+sid)
	mustNil(t, s.TouchSession(ctx, sid, client, now), "touch "+sid)
	_, err := s.EndSessions(ctx, idp.SessionFilter{SID: sid}, now)
	mustNil(t, err, "end "+sid)
}

func testLogoutClaimLease(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	bclClient(t, s, "rp-bcl", "http://127.0.0.1:9/bcl")
	endedWithLogout(t, s, "s1", "rp-bcl")
	ds, err := s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim")
	if len(ds) != 1 || ds[0].LeaseID == "" || ds[0].Attempts != 0 {
		t.Fatalf("claimed %+v, want one with a lease", ds)
	}
	// Claimed: hidden from the next claim.
	again, err := s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim again")
	if len(again) != 0 {
		t.Fatalf("claimed a leased delivery again")
	}
	mustBe(t, s.RecordDelivery(ctx, ds[0].ID, "not-the-lease", idp.DeliveryAttempt{State: idp.DeliveryDelivered, At: time.Now()}), idp.ErrConflict, "record without the lease")
	next := time.Now().Add(-time.Second) // due at once
	mustNil(t, s.RecordDelivery(ctx, ds[0].ID, ds[0].LeaseID, idp.DeliveryAttempt{State: idp.DeliveryPending, Next: &next, StatusCode: 500,
		Error: "status 500", At: time.Now()}), "record a failure")
	mustBe(t, s.RecordDelivery(ctx, ds[0].ID, ds[0].LeaseID, idp.DeliveryAttempt{State: idp.DeliveryDelivered, At: time.Now()}), idp.ErrConflict, "record twice under one lease")
	ds2, err := s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim the retry")
	if len(ds2) != 1 || ds2[0].Attempts != 1 || ds2[0].LastStatus != 500 || ds2[0].LeaseID == ds[0].LeaseID {
		t.Fatalf("retry claimed %+v", ds2)
	}
	mustNil(t, s.RecordDelivery(ctx, ds2[0].ID, ds2[0].LeaseID, idp.DeliveryAttempt{State: idp.DeliveryDelivered, StatusCode: 204, At: time.Now()}), "record success")
	list, err := s.ListDeliveries(ctx, "s1")
	mustNil(t, err, "list")
	if list[0].State != idp.DeliveryDelivered || list[0].Attempts != 2 {
		t.Errorf("after success: %+v", list[0])
	}
	none, err := s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim after success")
	if len(none) != 0 {
		t.Errorf("a delivered logout was claimed again")
	}
	// A lapsed lease makes the delivery claimable again.
	endedWithLogout(t, s, "s2", "rp-bcl")
	short, err := s.ClaimDeliveries(ctx, "", 10, time.Millisecond)
	mustNil(t, err, "claim s2")
	if len(short) != 1 {
		t.Fatalf("claimed %d, want s2's", len(short))
	}
	time.Sleep(20 * time.Millisecond)
	lapsed, err := s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim after the lease lapsed")
	if len(lapsed) != 1 {
		t.Fatalf("after the lease lapsed: claimed %d, want 1", len(lapsed))
	}
	mustBe(t, s.RecordDelivery(ctx, short[0].ID, short[0].LeaseID, idp.DeliveryAttempt{State: idp.DeliveryDelivered, At: time.Now()}), idp.ErrConflict, "record under a lapsed lease")
}

func testLogoutTwoReplicas(t *testing.T, a, b SessionBackend) {
	ctx := t.Context()
	bclClient(t, a, "rp-bcl", "http://127.0.0.1:9/bcl")
	const n = 20
	for i := range n {
		endedWithLogout(t, a, fmt.Sprintf("s%02d", i), "rp-bcl")
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 4 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range 10 {
				ds, err := s.ClaimDeliveries(ctx, "", 3, time.Minute)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("claimed %d distinct deliveries, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("delivery %s claimed %d times", id, c)
		}
	}
}

func testClientBackchannel(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	c := &idp.Client{ID: "rp", Name: "RP", RedirectURIs: []string{"https://rp.example/cb"}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, AuthMethod: idp.AuthNone, IDTokenAlg: "RS256",
		BackchannelLogoutURI: "https://rp.example/bcl", BackchannelLogoutSessionRequired: true}
	mustNil(t, s.CreateClient(ctx, c), "create")
	got, err := s.GetClient(ctx, "rp")
	mustNil(t, err, "get")
	if got.BackchannelLogoutURI != c.BackchannelLogoutURI || !got.BackchannelLogoutSessionRequired {
		t.Errorf("client read back %q %v", got.BackchannelLogoutURI, got.BackchannelLogoutSessionRequired)
	}
	// CIBA registration (migration 0015) round-trips, and through an update.
	ciba := &idp.Client{ID: "counter", Name: "Counter", GrantTypes: []string{idp.GrantTypeCIBA}, Scopes: []string{"openid"},
		AuthMethod: idp.AuthSecretBasic, SecretHash: []byte{1}, IDTokenAlg: "ES256",
		BackchannelTokenDeliveryMode: idp.CIBAModePing, BackchannelClientNotificationEndpoint: "https://counter.example/ciba"}
	mustNil(t, s.CreateClient(ctx, ciba), "create CIBA client")
	got, err = s.GetClient(ctx, "counter")
	mustNil(t, err, "get CIBA client")
	if got.BackchannelTokenDeliveryMode != idp.CIBAModePing || got.BackchannelClientNotificationEndpoint != ciba.BackchannelClientNotificationEndpoint {
		t.Errorf("CIBA client read back %q %q", got.BackchannelTokenDeliveryMode, got.BackchannelClientNotificationEndpoint)
	}
	if u, ok := s.(interface {
		UpdateClient(context.Context, string, func(*idp.Client) error) error
	}); ok {
		mustNil(t, u.UpdateClient(ctx, "counter", func(c *idp.Client) error {
			c.BackchannelTokenDeliveryMode, c.BackchannelClientNotificationEndpoint = idp.CIBAModePoll, ""
			return nil
		}), "update CIBA client")
		got, err = s.GetClient(ctx, "counter")
		mustNil(t, err, "get CIBA client")
		if got.BackchannelTokenDeliveryMode != idp.CIBAModePoll || got.BackchannelClientNotificationEndpoint != "" {
			t.Errorf("CIBA client after update %q %q", got.BackchannelTokenDeliveryMode, got.BackchannelClientNotificationEndpoint)
		}
	}
}

func testRevokeSubjectRefresh(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	for i, sub := range []string{"cit-a", "cit-a", "cit-b"} {
		rt := refreshToken(fmt.Sprintf("sig-%d", i), fmt.Sprintf("req-%d", i))
		rt.Subject, rt.ExpiresAt = sub, time.Now().Add(time.Hour)
		mustNil(t, s.CreateRefreshToken(ctx, rt), "create refresh")
	}
	ids, err := s.RevokeSubjectRefreshTokens(ctx, "cit-a")
	mustNil(t, err, "revoke")
	if len(ids) != 2 {
		t.Fatalf("revoked %v, want req-0 and req-1", ids)
	}
	for i, want := range []bool{false, false, true} {
		f, err := s.GetRefreshTokenFamily(ctx, fmt.Sprintf("req-%d", i))
		mustNil(t, err, "get family")
		if f.Active != want {
			t.Errorf("family req-%d active = %v, want %v", i, f.Active, want)
		}
	}
	// A retry names the same grants, so their access tokens are denied
	// again even if the first caller failed after deactivating them.
	ids, err = s.RevokeSubjectRefreshTokens(ctx, "cit-a")
	mustNil(t, err, "revoke again")
	equal(t, ids, []string{"req-0", "req-1"}, "grants named by a second revocation")
}

func pingClient(t *testing.T, s SessionBackend, id, endpoint string) {
	t.Helper()
	mustNil(t, s.CreateClient(t.Context(), &idp.Client{ID: id, Name: id, GrantTypes: []string{idp.GrantTypeCIBA}, Scopes: []string{"openid"},
		AuthMethod: idp.AuthSecretBasic, SecretHash: []byte{1}, IDTokenAlg: "ES256",
		BackchannelTokenDeliveryMode: idp.CIBAModePing, BackchannelClientNotificationEndpoint: endpoint}), "create ping client "+id)
}

func newPing(client, authReqID string, expires time.Time) *idp.Delivery {
	return &idp.Delivery{Kind: idp.DeliveryCIBAPing, ClientID: client, SID: idp.CIBAPingKey("h-" + authReqID), Payload: authReqID,
		Secret: "notify-" + authReqID, ExpiresAt: &expires, State: idp.DeliveryHeld, NextAttemptAt: expires}
}

// testCIBAPingQueue: a CIBA ping rides on the same queue as back-channel
// logouts: held (not claimable) until released, once per request, claimed
// with its secret and the client's current notification endpoint, listed
// without its secret.
func testCIBAPingQueue(t *testing.T, s, b SessionBackend) {
	ctx := t.Context()
	pingClient(t, s, "counter", "https://counter.example/ciba")
	bclClient(t, s, "rp-bcl", "https://rp.example/bcl")
	expires := time.Now().Add(time.Minute)
	p := newPing("counter", "req-1", expires)
	mustNil(t, s.EnqueueDelivery(ctx, p), "enqueue held ping")
	if p.ID == "" {
		t.Error("enqueue filled in no id")
	}
	mustBe(t, b.EnqueueDelivery(ctx, newPing("counter", "req-1", expires)), idp.ErrConflict, "the same request's ping twice")
	bad := newPing("counter", "req-2", expires)
	bad.Kind = "webhook"
	mustBe(t, s.EnqueueDelivery(ctx, bad), idp.ErrInvalid, "unknown kind")
	bad = newPing("counter", "req-3", expires)
	bad.State = idp.DeliveryDelivered
	mustBe(t, s.EnqueueDelivery(ctx, bad), idp.ErrInvalid, "a delivered new delivery")

	ds, err := s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim")
	if len(ds) != 0 {
		t.Fatalf("claimed %d held deliveries, want none", len(ds))
	}
	for kind, want := range map[string]int{idp.DeliveryCIBAPing: 1, idp.DeliveryBackchannelLogout: 0} {
		n, err := s.PendingDeliveries(ctx, kind)
		mustNil(t, err, "pending "+kind)
		if n != want {
			t.Errorf("pending %s: %d, want %d", kind, n, want)
		}
	}
	// A logout queued beside it is claimed alone.
	endedWithLogout(t, s, "s1", "rp-bcl")
	ds, err = s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim the logout")
	if len(ds) != 1 || ds[0].Kind != idp.DeliveryBackchannelLogout || ds[0].Secret != "" || ds[0].ExpiresAt != nil {
		t.Fatalf("claimed %+v, want the logout alone", ds)
	}

	mustBe(t, s.ReleaseDelivery(ctx, "another", p.SID, time.Now()), idp.ErrNotFound, "release another client's ping")
	mustNil(t, s.ReleaseDelivery(ctx, "counter", p.SID, time.Now()), "release")
	mustBe(t, b.ReleaseDelivery(ctx, "counter", p.SID, time.Now()), idp.ErrNotFound, "release twice")
	ds, err = b.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim the ping")
	if len(ds) != 1 {
		t.Fatalf("claimed %d, want the ping", len(ds))
	}
	d := ds[0]
	if d.Kind != idp.DeliveryCIBAPing || d.ClientID != "counter" || d.Payload != "req-1" || d.Secret != "notify-req-1" ||
		d.URI != "https://counter.example/ciba" || d.ExpiresAt == nil || d.ExpiresAt.UnixMilli() != expires.UnixMilli() {
		t.Errorf("claimed ping %+v", d)
	}
	list, err := s.ListDeliveries(ctx, p.SID)
	mustNil(t, err, "list")
	if len(list) != 1 || list[0].Secret != "" || list[0].Payload != "req-1" || list[0].State != idp.DeliveryPending {
		t.Errorf("listed %+v, want the pending ping without its secret", list)
	}
	// A retry keeps the secret; the next claim has it again.
	next := time.Now().Add(-time.Millisecond)
	mustNil(t, b.RecordDelivery(ctx, d.ID, d.LeaseID, idp.DeliveryAttempt{State: idp.DeliveryPending, Next: &next, StatusCode: 503, At: time.Now()}), "record retry")
	ds, err = s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim the retry")
	if len(ds) != 1 || ds[0].Secret != "notify-req-1" || ds[0].Attempts != 1 {
		t.Fatalf("claimed retry %+v", ds)
	}
	mustNil(t, s.RecordDelivery(ctx, ds[0].ID, ds[0].LeaseID, idp.DeliveryAttempt{State: idp.DeliveryDelivered, StatusCode: 204, At: time.Now()}), "record delivered")
	n, err := s.PendingDeliveries(ctx, idp.DeliveryCIBAPing)
	mustNil(t, err, "pending pings")
	if n != 0 {
		t.Errorf("pending pings after delivery: %d", n)
	}

	// A client no longer in ping mode has no endpoint for its ping.
	p2 := newPing("counter", "req-4", expires)
	mustNil(t, s.EnqueueDelivery(ctx, p2), "enqueue")
	if u, ok := s.(interface {
		UpdateClient(context.Context, string, func(*idp.Client) error) error
	}); ok {
		mustNil(t, u.UpdateClient(ctx, "counter", func(c *idp.Client) error {
			c.BackchannelTokenDeliveryMode, c.BackchannelClientNotificationEndpoint = idp.CIBAModePoll, ""
			return nil
		}), "switch to poll")
		mustNil(t, s.ReleaseDelivery(ctx, "counter", p2.SID, time.Now()), "release")
		ds, err = s.ClaimDeliveries(ctx, "", 10, time.Minute)
		mustNil(t, err, "claim")
		if len(ds) != 1 || ds[0].URI != "" {
			t.Errorf("claimed %+v, want the ping without an endpoint", ds)
		}
	}
}

// testCIBAPingUnderReview: a registered client back under review (an RFC
// 7592 update named a new notification endpoint) has no endpoint for its
// pings until an operator approves it: the unreviewed endpoint never
// receives the client_notification_token.
func testCIBAPingUnderReview(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	pingClient(t, s, "counter", "https://counter.example/ciba")
	u, ok := s.(interface {
		UpdateClient(context.Context, string, func(*idp.Client) error) error
	})
	if !ok {
		t.Fatal("the backend cannot update clients")
	}
	p := newPing("counter", "req-1", time.Now().Add(time.Minute))
	mustNil(t, s.EnqueueDelivery(ctx, p), "enqueue")
	mustNil(t, u.UpdateClient(ctx, "counter", func(c *idp.Client) error {
		c.Registration.TokenHash = []byte{1}
		c.BackchannelClientNotificationEndpoint = "https://elsewhere.example/ciba"
		c.Registration.Status = idp.ClientPending
		return nil
	}), "update to a new endpoint, pending review")
	mustNil(t, s.ReleaseDelivery(ctx, "counter", p.SID, time.Now()), "release")
	ds, err := s.ClaimDeliveries(ctx, "", 10, time.Minute)
	mustNil(t, err, "claim")
	if len(ds) != 1 || ds[0].URI != "" {
		t.Errorf("claimed %+v, want the ping without an endpoint while the client is under review", ds)
	}
}

// testCIBAPingExpires: a ping past its request's expiry is not released,
// and garbage collection gives it up with its secret.
func testCIBAPingExpires(t *testing.T, s, _ SessionBackend) {
	ctx := t.Context()
	pingClient(t, s, "counter", "https://counter.example/ciba")
	for _, id := range []string{"held", "released"} {
		mustNil(t, s.EnqueueDelivery(ctx, newPing("counter", id, time.Now().Add(300*time.Millisecond))), "enqueue "+id)
	}
	mustNil(t, s.ReleaseDelivery(ctx, "counter", idp.CIBAPingKey("h-released"), time.Now()), "release (no worker claims it)")
	time.Sleep(400 * time.Millisecond)
	mustBe(t, s.ReleaseDelivery(ctx, "counter", idp.CIBAPingKey("h-held"), time.Now()), idp.ErrNotFound, "release after expiry")
	gc, ok := s.(interface {
		GarbageCollect(context.Context, time.Time) (int64, error)
	})
	if !ok {
		return
	}
	_, err := gc.GarbageCollect(ctx, time.Now())
	mustNil(t, err, "garbage collect")
	n, err := s.PendingDeliveries(ctx, idp.DeliveryCIBAPing)
	mustNil(t, err, "pending")
	if n != 0 {
		t.Errorf("%d expired pings still pending after garbage collection", n)
	}
	for _, id := range []string{"held", "released"} {
		list, err := s.ListDeliveries(ctx, idp.CIBAPingKey("h-"+id))
		mustNil(t, err, "list")
		if len(list) != 1 || list[0].State != idp.DeliveryDead {
			t.Errorf("%s ping after expiry: %+v, want dead", id, list)
		}
	}
}
