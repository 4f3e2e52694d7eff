package sso_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/idp/sso"
	"github.com/onedoor/onedoor/internal/dbtest"
)

const issuer = "http://127.0.0.1:1/idp"

// backends returns two migrated stores over one database (two replicas):
// SQLite always, PostgreSQL when configured.
func backends(t *testing.T, each func(t *testing.T, a, b *sqlstore.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "idp.db")
		var ss [2]*sqlstore.Store
		for i := range ss {
			db, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			ss[i] = sqlite.New(db)
		}
		if err := ss[0].Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		each(t, ss[0], ss[1])
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := dbtest.SchemaDSN(t)
		var ss [2]*sqlstore.Store
		for i := range ss {
			db, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			ss[i] = postgres.New(db)
		}
		if err := ss[0].Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		each(t, ss[0], ss[1])
	})
}

func keys(t *testing.T, s *sqlstore.Store) *keyset.Manager {
	t.Helper()
	sealer, err := keyset.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	m := keyset.New(s, sealer, keyset.Options{})
	if err := m.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return m
}

// testRP is a relying party's back-channel logout endpoint: it verifies
// each logout token against the IdP's JWKS with go-oidc and checks what
// Back-Channel Logout 1.0 section 2.6 asks of a receiver.
type testRP struct {
	t        *testing.T
	srv      *httptest.Server
	jwks     *httptest.Server
	clientID string
	// status answers attempt n (1-based); nil means 200.
	status func(n int) int
	mu     sync.Mutex
	n      int
	sids   []string
	bad    []string
}

func newRP(t *testing.T, km *keyset.Manager, clientID string) *testRP {
	rp := &testRP{t: t, clientID: clientID}
	rp.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := km.JWKS(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(rp.jwks.Close)
	rp.srv = httptest.NewServer(http.HandlerFunc(rp.serve))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *testRP) serve(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	rp.n++
	n := rp.n
	rp.mu.Unlock()
	if err := rp.check(r); err != nil {
		rp.mu.Lock()
		rp.bad = append(rp.bad, err.Error())
		rp.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rp.status != nil {
		if c := rp.status(n); c != http.StatusOK {
			w.WriteHeader(c)
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (rp *testRP) check(r *http.Request) error {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return fmt.Errorf("not a form post: %s %s", r.Method, r.Header.Get("Content-Type"))
	}
	raw := r.PostFormValue("logout_token")
	claims, err := VerifyLogoutToken(r.Context(), rp.jwks.URL, issuer, rp.clientID, raw)
	if err != nil {
		return err
	}
	rp.mu.Lock()
	rp.sids = append(rp.sids, claims.SID)
	rp.mu.Unlock()
	return nil
}

// LogoutClaims are what a receiver reads from a logout token.
type LogoutClaims struct {
	Subject string                     `json:"sub"`
	SID     string                     `json:"sid"`
	JTI     string                     `json:"jti"`
	Events  map[string]json.RawMessage `json:"events"`
	Nonce   *string                    `json:"nonce"`
	IAT     int64                      `json:"iat"`
	EXP     int64                      `json:"exp"`
}

// VerifyLogoutToken verifies raw as a relying party does: signature by the
// JWKS, iss, aud, exp (go-oidc), then typ, the event, no nonce, sid and
// sub present (Back-Channel Logout 1.0 section 2.6).
func VerifyLogoutToken(ctx context.Context, jwksURL, iss, clientID, raw string) (*LogoutClaims, error) {
	v := gooidc.NewVerifier(iss, gooidc.NewRemoteKeySet(ctx, jwksURL), &gooidc.Config{ClientID: clientID, SupportedSigningAlgs: []string{"ES256", "RS256"}})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	hdr, err := base64.RawURLEncoding.DecodeString(strings.SplitN(raw, ".", 2)[0])
	if err != nil {
		return nil, err
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(hdr, &h); err != nil || h.Typ != sso.LogoutTokenType {
		return nil, fmt.Errorf("typ %q, want logout+jwt", h.Typ)
	}
	var c LogoutClaims
	if err := tok.Claims(&c); err != nil {
		return nil, err
	}
	if ev, ok := c.Events[sso.BackchannelLogoutEvent]; !ok || string(ev) != "{}" {
		return nil, fmt.Errorf("events %v lack the back-channel logout event", c.Events)
	}
	if c.Nonce != nil {
		return nil, fmt.Errorf("a logout token must not carry a nonce")
	}
	if c.SID == "" || c.Subject == "" || c.JTI == "" {
		return nil, fmt.Errorf("sid, sub and jti are required")
	}
	if c.EXP-c.IAT > 300 {
		return nil, fmt.Errorf("lifetime %d s is not short", c.EXP-c.IAT)
	}
	return &c, nil
}

func (rp *testRP) attempts() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.n
}

func createClient(t *testing.T, s *sqlstore.Store, id, uri, alg string) {
	t.Helper()
	c := &idp.Client{ID: id, Name: id, RedirectURIs: []string{"https://" + id + ".example/cb"}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, AuthMethod: idp.AuthNone, IDTokenAlg: alg, BackchannelLogoutURI: uri}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

// endSession starts a session that logged in to clients and ends it.
func endSession(t *testing.T, svc *sso.Service, sid string, clients ...string) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	if err := svc.Start(ctx, &idp.Session{SID: sid, CitizenID: "cit-" + sid, DeviceID: "dev-" + sid, Level: idp.LevelSubstantial,
		Key: "web:session:" + sid, AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if err := svc.Touch(ctx, sid, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.End(ctx, idp.SessionFilter{SID: sid}); err != nil {
		t.Fatal(err)
	}
}

func runWorker(t *testing.T, w *sso.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(t *testing.T, s *sqlstore.Store, sid string) *idp.Delivery {
	t.Helper()
	ds, err := s.ListDeliveries(t.Context(), sid)
	if err != nil || len(ds) != 1 {
		t.Fatalf("ListDeliveries(%s) = %v, %v; want one", sid, ds, err)
	}
	return ds[0]
}

func noBackoff(int) time.Duration { return 0 }

func TestWorker_DeliversVerifiableLogoutToken(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		km := keys(t, s)
		for _, alg := range []string{"ES256", "RS256"} {
			rp := newRP(t, km, "rp-"+strings.ToLower(alg))
			createClient(t, s, rp.clientID, rp.srv.URL+"/bcl", alg)
			svc := sso.New(s, s, nil)
			w := &sso.Worker{Store: s, Keys: km, Issuer: issuer, PollInterval: 50 * time.Millisecond}
			svc.SetNotify(w.Notify)
			runWorker(t, w)
			sid := "sid-" + alg
			endSession(t, svc, sid, rp.clientID)
			waitFor(t, "delivery", func() bool { return state(t, s, sid).State == idp.DeliveryDelivered })
			rp.mu.Lock()
			if len(rp.bad) > 0 || len(rp.sids) != 1 || rp.sids[0] != sid {
				t.Errorf("%s: RP saw sids %v, problems %v; want exactly %s", alg, rp.sids, rp.bad, sid)
			}
			rp.mu.Unlock()
		}
	})
}

func TestWorker_RetriesAfter500ThenDelivers(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		km := keys(t, s)
		rp := newRP(t, km, "rp")
		rp.status = func(n int) int {
			if n == 1 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		}
		createClient(t, s, "rp", rp.srv.URL+"/bcl", "ES256")
		w := &sso.Worker{Store: s, Keys: km, Issuer: issuer, PollInterval: 20 * time.Millisecond, Backoff: noBackoff}
		runWorker(t, w)
		endSession(t, sso.New(s, s, nil), "s1", "rp")
		waitFor(t, "delivery", func() bool { return state(t, s, "s1").State == idp.DeliveryDelivered })
		if d := state(t, s, "s1"); d.Attempts != 2 || rp.attempts() != 2 {
			t.Errorf("attempts recorded %d, RP saw %d; want 2 and 2", d.Attempts, rp.attempts())
		}
	})
}

func TestWorker_DeadAfterMaxAttempts(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		km := keys(t, s)
		rp := newRP(t, km, "rp")
		rp.status = func(int) int { return http.StatusServiceUnavailable }
		createClient(t, s, "rp", rp.srv.URL+"/bcl", "ES256")
		endSession(t, sso.New(s, s, nil), "s1", "rp")
		// The queue's depth counts it until it is final.
		if n, err := s.PendingDeliveries(t.Context(), idp.DeliveryBackchannelLogout); err != nil || n != 1 {
			t.Fatalf("pending logouts before the worker runs: %d, %v; want 1", n, err)
		}
		w := &sso.Worker{Store: s, Keys: km, Issuer: issuer, PollInterval: 20 * time.Millisecond, Backoff: noBackoff, MaxAttempts: 3}
		runWorker(t, w)
		waitFor(t, "dead", func() bool { return state(t, s, "s1").State == idp.DeliveryDead })
		if n, err := s.PendingDeliveries(t.Context(), idp.DeliveryBackchannelLogout); err != nil || n != 0 {
			t.Errorf("pending logouts once dead: %d, %v; want 0", n, err)
		}
		time.Sleep(100 * time.Millisecond) // nothing more is sent
		if d := state(t, s, "s1"); d.Attempts != 3 || rp.attempts() != 3 || d.LastStatus != 503 {
			t.Errorf("dead after %d attempts (RP saw %d, last status %d); want 3, 3, 503", d.Attempts, rp.attempts(), d.LastStatus)
		}
	})
}

func TestWorker_RefusesRedirects(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		km := keys(t, s)
		var hit sync.Mutex
		reached := false
		internal := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			hit.Lock()
			reached = true
			hit.Unlock()
		}))
		defer internal.Close()
		redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, internal.URL+"/admin", http.StatusTemporaryRedirect)
		}))
		defer redir.Close()
		createClient(t, s, "rp", redir.URL+"/bcl", "ES256")
		w := &sso.Worker{Store: s, Keys: km, Issuer: issuer, PollInterval: 20 * time.Millisecond, Backoff: noBackoff, MaxAttempts: 2}
		runWorker(t, w)
		endSession(t, sso.New(s, s, nil), "s1", "rp")
		waitFor(t, "dead", func() bool { return state(t, s, "s1").State == idp.DeliveryDead })
		hit.Lock()
		defer hit.Unlock()
		if reached {
			t.Error("the worker followed a redirect to another host")
		}
		if d := state(t, s, "s1"); d.LastStatus != http.StatusTemporaryRedirect {
			t.Errorf("last status %d, want 307 recorded as a failure", d.LastStatus)
		}
	})
}

func TestWorker_DeletedClientIsDead(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		km := keys(t, s)
		createClient(t, s, "rp", "https://rp.example/bcl", "ES256")
		endSession(t, sso.New(s, s, nil), "s1", "rp")
		if err := s.DeleteClient(t.Context(), "rp"); err != nil {
			t.Fatal(err)
		}
		w := &sso.Worker{Store: s, Keys: km, Issuer: issuer, PollInterval: 20 * time.Millisecond}
		runWorker(t, w)
		waitFor(t, "dead", func() bool { return state(t, s, "s1").State == idp.DeliveryDead })
	})
}

func TestWorker_TwoReplicasDeliverOnce(t *testing.T) {
	backends(t, func(t *testing.T, a, b *sqlstore.Store) {
		km := keys(t, a)
		rp := newRP(t, km, "rp")
		// A slow receiver keeps deliveries in flight while the other
		// replica claims.
		rp.status = func(int) int { time.Sleep(30 * time.Millisecond); return http.StatusOK }
		createClient(t, a, "rp", rp.srv.URL+"/bcl", "ES256")
		svc := sso.New(a, a, nil)
		const n = 12
		for i := range n {
			endSession(t, svc, fmt.Sprintf("s%02d", i), "rp")
		}
		for _, s := range []*sqlstore.Store{a, b} {
			runWorker(t, &sso.Worker{Store: s, Keys: keys(t, s), Issuer: issuer, PollInterval: 10 * time.Millisecond, Concurrency: 2})
		}
		waitFor(t, "all deliveries", func() bool {
			for i := range n {
				if state(t, a, fmt.Sprintf("s%02d", i)).State != idp.DeliveryDelivered {
					return false
				}
			}
			return true
		})
		rp.mu.Lock()
		defer rp.mu.Unlock()
		seen := map[string]int{}
		for _, sid := range rp.sids {
			seen[sid]++
		}
		if len(rp.sids) != n || len(seen) != n || len(rp.bad) > 0 {
			t.Errorf("RP received %d tokens for %d sessions (problems %v); want each of %d once", len(rp.sids), len(seen), rp.bad, n)
		}
	})
}

func TestService_EndDeletesEphemeralAndQueuesOnce(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		ctx := t.Context()
		createClient(t, s, "rp", "https://rp.example/bcl", "ES256")
		svc := sso.New(s, s, nil)
		now := time.Now()
		for _, sid := range []string{"a1", "a2"} {
			if err := s.Set(ctx, "web:session:"+sid, []byte("{}"), time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := svc.Start(ctx, &idp.Session{SID: sid, CitizenID: "cit-a", DeviceID: "dev-" + sid, Key: "web:session:" + sid,
				AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := svc.Touch(ctx, sid, "rp"); err != nil {
				t.Fatal(err)
			}
		}
		// Naming another citizen ends nothing.
		if got, err := svc.End(ctx, idp.SessionFilter{CitizenID: "cit-b", SID: "a1"}); err != nil || len(got) != 0 {
			t.Fatalf("End(as cit-b) = %v, %v", got, err)
		}
		if _, err := s.Get(ctx, "web:session:a1"); err != nil {
			t.Fatalf("a1's entry went: %v", err)
		}
		got, err := svc.End(ctx, idp.SessionFilter{CitizenID: "cit-a"})
		if err != nil || len(got) != 2 {
			t.Fatalf("End(cit-a) = %v, %v", got, err)
		}
		for _, sid := range []string{"a1", "a2"} {
			if _, err := s.Get(ctx, "web:session:"+sid); err == nil {
				t.Errorf("%s's ephemeral entry survived", sid)
			}
			if d := state(t, s, sid); d.State != idp.DeliveryPending {
				t.Errorf("%s: delivery %s", sid, d.State)
			}
		}
	})
}

// A worker that claimed a delivery and died (a crash, a SIGKILL'd replica)
// holds it only until its lease lapses; another worker then delivers it.
func TestWorker_CrashedClaimIsRetriedAfterLease(t *testing.T) {
	backends(t, func(t *testing.T, a, b *sqlstore.Store) {
		km := keys(t, a)
		rp := newRP(t, km, "rp")
		createClient(t, a, "rp", rp.srv.URL+"/bcl", "ES256")
		endSession(t, sso.New(a, a, nil), "s1", "rp")
		// The crashed worker's claim: never recorded.
		if ds, err := a.ClaimDeliveries(t.Context(), "", 10, 300*time.Millisecond); err != nil || len(ds) != 1 {
			t.Fatalf("claim: %v %v", ds, err)
		}
		runWorker(t, &sso.Worker{Store: b, Keys: keys(t, b), Issuer: issuer, PollInterval: 20 * time.Millisecond})
		time.Sleep(100 * time.Millisecond)
		if rp.attempts() != 0 {
			t.Fatal("a leased delivery was sent before its lease lapsed")
		}
		waitFor(t, "delivery after the lease", func() bool { return state(t, a, "s1").State == idp.DeliveryDelivered })
		if rp.attempts() != 1 {
			t.Errorf("RP saw %d attempts, want 1", rp.attempts())
		}
	})
}
