package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	enigma "github.com/ory/fosite/token/hmac"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
)

// Store is the durable part of what the fosite storage needs.
type Store interface {
	idp.ClientStore
	idp.RefreshTokenStore
	idp.RevocationStore
}

// Storage implements fosite's storage interfaces over OneDoor's stores:
// clients and refresh tokens in the durable store, codes, PKCE, PAR and
// replay caches in the ephemeral store. Access tokens are self-contained
// JWTs, so nothing is written for them: their "signature" is the token.
type Storage struct {
	store    Store
	eph      idp.Ephemeral
	verifier *accesstoken.Verifier
	life     Lifespans
	now      func() time.Time
	clients  *clientCache
}

// Lifespans of the artefacts the storage keeps.
type Lifespans struct {
	AuthorizeCode time.Duration
	AccessToken   time.Duration
	RefreshToken  time.Duration
	PAR           time.Duration
	// RefreshGrace is how long a rotated refresh token may still be redeemed,
	// so a mobile client that lost a response is not stranded.
	RefreshGrace time.Duration
}

var (
	_ fosite.Storage                     = (*Storage)(nil)
	_ oauth2.CoreStorage                 = (*Storage)(nil)
	_ oauth2.TokenRevocationStorage      = (*Storage)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Storage)(nil)
	_ pkce.PKCERequestStorage            = (*Storage)(nil)
	_ fosite.PARStorage                  = (*Storage)(nil)
)

// NewStorage returns the fosite storage adapter.
func NewStorage(store Store, eph idp.Ephemeral, verifier *accesstoken.Verifier, life Lifespans, now func() time.Time) *Storage {
	if now == nil {
		now = time.Now
	}
	s := &Storage{store: store, eph: eph, verifier: verifier, life: life, now: now}
	versions, _ := store.(ClientVersions)
	s.clients = newClientCache(func(ctx context.Context, id string) (*idp.Client, error) {
		c, err := s.store.GetClient(ctx, id)
		if err == nil && !c.Active() {
			// A self-registered client awaiting an operator's approval (or
			// rejected) does not exist for OAuth: it cannot authorize, get
			// or introspect tokens, or push requests (invalid_client).
			return nil, fmt.Errorf("client %s is %s: %w", id, c.Registration.Status, idp.ErrNotFound)
		}
		return c, err
	}, versions)
	return s
}

// Ephemeral-store key prefixes.
const (
	prefixCode     = "oidc:code:"
	prefixCodeUsed = "oidc:code-used:"
	prefixPAR      = "oidc:par:"
	prefixJTI      = "oidc:jti:"
)

// usedCodeTTL keeps an invalidated code's record long enough to detect reuse
// and revoke what it issued.
const usedCodeTTL = 15 * time.Minute

// storeErr maps idp sentinels to fosite's; anything else (ErrUnavailable)
// stays wrapped so the transport can answer 503.
func storeErr(err error) error {
	if errors.Is(err, idp.ErrNotFound) {
		return fosite.ErrNotFound.WithWrap(err)
	}
	return err
}

// GetClient implements fosite.ClientManager. Clients are served from memory
// while the provider watches for changes (see clientcache.go and
// Provider.WatchClients), and within one request (see WithRequestMemo) a
// client is looked up once, so every step of a request sees the same client.
func (s *Storage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	memo, _ := ctx.Value(memoKey{}).(*clientMemo)
	if c := memo.get(id); c != nil {
		return c, nil
	}
	fc, err := s.clients.get(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	memo.put(id, fc)
	return fc, nil
}

type memoKey struct{}

// clientMemo remembers the clients looked up during one request.
type clientMemo struct {
	mu      sync.Mutex
	clients map[string]*Client
}

func (m *clientMemo) get(id string) *Client {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clients[id]
}

func (m *clientMemo) put(id string, c *Client) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clients[id] = c
}

// WithRequestMemo returns a context in which the storage reads each client
// at most once, passes a refresh rotation from RotateRefreshToken to
// CreateRefreshTokenSession (one conditional write), and remembers what a
// code exchange consumed so RestoreAfterOutage can put it back. Use one per
// HTTP request.
func WithRequestMemo(ctx context.Context) context.Context {
	ctx = context.WithValue(ctx, exchangeKey{}, &exchange{})
	return context.WithValue(ctx, memoKey{}, &clientMemo{clients: map[string]*Client{}})
}

type exchangeKey struct{}

// exchange is what one token request's storage calls hand to each other.
type exchange struct {
	mu sync.Mutex
	// rotation is the refresh token fosite rotated, waiting for its child.
	rotation *pendingRotation
	// undo restores what the request consumed (a code, its PKCE and OpenID
	// sessions) and removes what it created, newest first.
	undo []func(ctx context.Context) error
}

type pendingRotation struct{ requestID, redeemed string }

func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

func (x *exchange) onUndo(f func(ctx context.Context) error) {
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.undo = append(x.undo, f)
}

// RestoreAfterOutage undoes what the request consumed in the stores before
// it failed with idp.ErrUnavailable: the authorization code is redeemable
// again (not "reused", so nothing gets revoked) and a refresh-token family
// the failed exchange created is removed. A client may then retry the
// exchange, as the 503 told it to. It returns the first failure; what could
// not be restored stays consumed, which is safe.
func RestoreAfterOutage(ctx context.Context) error {
	x := exchangeOf(ctx)
	if x == nil {
		return nil
	}
	x.mu.Lock()
	undo := x.undo
	x.undo, x.rotation = nil, nil
	x.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var first error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ClientAssertionJWTValid implements fosite.ClientManager. It accepts every
// jti: SetClientAssertionJWT, which is called next, refuses a replay
// atomically, so a read here would only cost a round trip (and would turn a
// store outage into "jti already used" instead of a 503).
func (s *Storage) ClientAssertionJWTValid(context.Context, string) error {
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager: it remembers a
// client assertion's jti until exp + AssertionLeeway, and of two concurrent
// requests with one jti exactly one succeeds. jtis are remembered per client
// (two clients may pick the same jti): the client is the one the assertion
// authenticated, which the client authentication strategy puts in the
// context, because fosite's interface passes only the jti. An exp more than
// MaxAssertionLifetime ahead is refused, so the cache stays bounded.
func (s *Storage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	clientID := assertingClient(ctx)
	if clientID == "" {
		return errors.New("oidc: client assertion jti without an authenticated client")
	}
	now := s.now()
	if exp.After(now.Add(MaxAssertionLifetime)) {
		return fosite.ErrInvalidClient.WithHint("The client assertion's exp is more than 10 minutes ahead.")
	}
	ttl := max(exp.Sub(now)+AssertionLeeway, AssertionLeeway)
	err := s.eph.Create(ctx, jtiKey(clientID, jti), []byte{1}, ttl)
	if errors.Is(err, idp.ErrConflict) {
		return fosite.ErrJTIKnown.WithHint("Claim 'jti' from 'client_assertion' MUST only be used once.")
	}
	return err
}

// jtiKey is unambiguous although client ids may contain ':'.
func jtiKey(clientID, jti string) string {
	return prefixJTI + strconv.Itoa(len(clientID)) + ":" + clientID + ":" + jti
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
// A FAPI 2.0 client's code expires at most idp.FAPI2CodeLifetime after it
// is issued, by the provider's clock: the expiry is kept in the session,
// where the token endpoint checks it (CodeExpired), whatever the global
// lifespan.
func (s *Storage) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	ttl := s.life.AuthorizeCode
	if c, ok := r.GetClient().(*Client); ok && c.Record.IsFAPI2() && r.GetSession() != nil {
		ttl = min(ttl, idp.FAPI2CodeLifetime)
		r.GetSession().SetExpiresAt(fosite.AuthorizeCode, s.now().UTC().Add(ttl))
	}
	return s.putRequest(ctx, prefixCode+sig, r, ttl)
}

// CodeExpired reports whether the authorization code an exchange redeems
// has outlived the expiry CreateAuthorizeCodeSession gave a FAPI 2.0
// client's code, on the provider's clock (fosite checks the global lifespan
// on the wall clock).
func CodeExpired(ar fosite.Requester, now time.Time) bool {
	c, ok := ar.GetClient().(*Client)
	if !ok || !c.Record.IsFAPI2() || ar.GetSession() == nil {
		return false
	}
	exp := ar.GetSession().GetExpiresAt(fosite.AuthorizeCode)
	return exp.IsZero() || now.After(exp)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. After
// invalidation it returns the request together with
// fosite.ErrInvalidatedAuthorizeCode so fosite can revoke what the code issued.
func (s *Storage) GetAuthorizeCodeSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, err := s.getRequest(ctx, prefixCode+sig, session)
	if !errors.Is(err, fosite.ErrNotFound) {
		return r, err
	}
	r, err = s.getRequest(ctx, prefixCodeUsed+sig, session)
	if err != nil {
		return nil, err
	}
	return r, fosite.ErrInvalidatedAuthorizeCode
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. Take
// is atomic, so of two concurrent redemptions exactly one gets here first; the
// other gets an error wrapping idp.ErrConflict (answered as invalid_grant).
func (s *Storage) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	v, err := s.eph.Take(ctx, prefixCode+sig)
	if errors.Is(err, idp.ErrNotFound) {
		return fmt.Errorf("authorization code already used: %w", idp.ErrConflict)
	}
	if err != nil {
		return err
	}
	if err := s.eph.Set(ctx, prefixCodeUsed+sig, v, usedCodeTTL); err != nil {
		// Put the code back at once: the exchange fails with this outage.
		exchangeOf(ctx).onUndo(func(ctx context.Context) error {
			return s.eph.Set(ctx, prefixCode+sig, v, s.life.AuthorizeCode)
		})
		return err
	}
	exchangeOf(ctx).onUndo(func(ctx context.Context) error {
		if err := s.eph.Set(ctx, prefixCode+sig, v, s.life.AuthorizeCode); err != nil {
			return err
		}
		return s.eph.Delete(ctx, prefixCodeUsed+sig)
	})
	return nil
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage. Access
// tokens are self-contained; nothing is stored.
func (s *Storage) CreateAccessTokenSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage. The signature is
// the token itself (see accessTokenStrategy), which is verified and turned
// back into a request; revoked tokens, grants and devices read as not found.
func (s *Storage) GetAccessTokenSession(ctx context.Context, token string, session fosite.Session) (fosite.Requester, error) {
	c, err := s.verifier.Verify(ctx, token)
	if errors.Is(err, accesstoken.ErrInvalid) {
		return nil, fosite.ErrNotFound.WithWrap(err)
	}
	if err != nil {
		return nil, err
	}
	return s.requestFromClaims(ctx, c, session)
}

func (s *Storage) requestFromClaims(ctx context.Context, c *accesstoken.Claims, session fosite.Session) (fosite.Requester, error) {
	client, err := s.GetClient(ctx, c.ClientID)
	if err != nil {
		return nil, err
	}
	sess, _ := session.(*Session)
	if sess == nil {
		sess = NewSession()
	}
	sess.Subject = c.Subject
	sess.Claims.Subject = c.Subject
	sess.Released = c.Released
	sess.DeviceID = c.DeviceID
	sess.ConsentID = c.ConsentID
	if c.Confirmation != nil {
		sess.KeyThumbprint = c.Confirmation.JKT
	}
	if c.Kind == accesstoken.KindClient {
		sess.ClientID = c.ClientID
	}
	sess.Act, sess.Representation, sess.RevocationKeys = c.Act, c.Representation, c.RevocationKeys
	sess.SetExpiresAt(fosite.AccessToken, c.ExpiresAt.Time)
	r := &fosite.Request{
		ID:                c.GrantID,
		RequestedAt:       c.IssuedAt.Time,
		Client:            client,
		RequestedScope:    c.Scopes(),
		GrantedScope:      c.Scopes(),
		RequestedAudience: fosite.Arguments(c.Audience),
		GrantedAudience:   fosite.Arguments(c.Audience),
		Form:              url.Values{},
		Session:           sess,
	}
	return r, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage; a
// self-contained token is withdrawn through RevokeAccessToken instead.
func (s *Storage) DeleteAccessTokenSession(context.Context, string) error { return nil }

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage. After
// RotateRefreshToken in the same request it rotates the family in one
// conditional write; otherwise it starts a family.
func (s *Storage) CreateRefreshTokenSession(ctx context.Context, sig, _ string, r fosite.Requester) error {
	raw, err := encodeRequest(r)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	exp := r.GetSession().GetExpiresAt(fosite.RefreshToken)
	if exp.IsZero() {
		exp = now.Add(s.life.RefreshToken)
	}
	x := exchangeOf(ctx)
	if rot := x.takeRotation(r.GetID()); rot != nil {
		return storeErr(s.store.RotateRefreshToken(ctx, &idp.RefreshRotation{
			RequestID: rot.requestID,
			Redeemed:  rot.redeemed,
			Signature: sig,
			At:        now,
			GraceFrom: now.Add(-s.life.RefreshGrace),
			ExpiresAt: exp,
			Request:   raw,
		}))
	}
	device, subject := "", r.GetSession().GetSubject()
	if os, ok := r.GetSession().(*Session); ok {
		// The family is the acting citizen's, whomever they act for: their
		// "sign out everywhere" (RevokeSubjectRefreshTokens) ends it too.
		device, subject = os.DeviceID, os.Actor()
	}
	if err := s.store.CreateRefreshToken(ctx, &idp.RefreshToken{
		Signature: sig,
		RequestID: r.GetID(),
		ClientID:  r.GetClient().GetID(),
		Subject:   subject,
		DeviceID:  device,
		Active:    true,
		ExpiresAt: exp,
		CreatedAt: now,
		Request:   raw,
	}); err != nil {
		return err
	}
	id := r.GetID()
	x.onUndo(func(ctx context.Context) error { return s.store.DeleteRefreshToken(ctx, id) })
	return nil
}

func (x *exchange) takeRotation(requestID string) *pendingRotation {
	if x == nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	rot := x.rotation
	if rot == nil || rot.requestID != requestID {
		return nil
	}
	x.rotation = nil
	return rot
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage. The current
// token of an active family is valid; so is the previous one for the grace
// window after it was redeemed, so a client that lost the response can
// retry. Anything else of a known family (the previous token after the
// window, an older token, any token of a revoked family) returns the
// request with fosite.ErrInactiveToken, which makes fosite revoke the
// family (reuse detection).
func (s *Storage) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	t, err := s.lookupRefreshToken(ctx, sig)
	if err != nil {
		return nil, storeErr(err)
	}
	r, err := s.decodeRequest(ctx, t.Request, session)
	if err != nil {
		return nil, err
	}
	switch {
	case !t.Active:
		return r, fosite.ErrInactiveToken
	case sig == t.Signature:
		return r, nil
	case sig == t.PreviousSignature && t.RotatedAt != nil && s.now().Sub(*t.RotatedAt) <= s.life.RefreshGrace:
		return r, nil
	}
	// An older token of the family (superseded twice, or the child that died
	// when its parent was redeemed again): its holder should not have it.
	return r, fosite.ErrInactiveToken
}

// lookupRefreshToken reads a token's family: by its primary key when the
// signature names it (the name is inside the token's MAC, see
// refreshtoken.go), else by signature (tokens issued before families were
// named).
func (s *Storage) lookupRefreshToken(ctx context.Context, sig string) (*idp.RefreshToken, error) {
	if id, ok := refreshFamily(sig); ok {
		return s.store.GetRefreshTokenFamily(ctx, id)
	}
	return s.store.GetRefreshToken(ctx, sig)
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage. fosite
// calls it on reuse, before revoking the family by request ID: the family is
// deactivated, not deleted, so its tokens keep reading as revoked. A token
// nothing is known of is not an error (fosite would then skip revoking).
func (s *Storage) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	requestID, named := refreshFamily(sig)
	if !named {
		t, err := s.store.GetRefreshToken(ctx, sig)
		if errors.Is(err, idp.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		requestID = t.RequestID
	}
	return storeErr(s.store.RevokeRefreshTokens(ctx, requestID))
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage. It writes
// nothing: fosite calls CreateRefreshTokenSession for the child next, which
// rotates the family in one conditional write. It needs WithRequestMemo.
func (s *Storage) RotateRefreshToken(ctx context.Context, requestID string, sig string) error {
	x := exchangeOf(ctx)
	if x == nil {
		return errors.New("refresh token rotation needs oidc.WithRequestMemo")
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rotation = &pendingRotation{requestID: requestID, redeemed: sig}
	return nil
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage.
func (s *Storage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return storeErr(s.store.RevokeRefreshTokens(ctx, requestID))
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: the grant goes
// on the durable deny list for as long as its access tokens can live. fosite
// calls it when a family is revoked (refresh-token or code reuse); the
// revocation endpoint revokes single access tokens by jti instead.
func (s *Storage) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.verifier.RevokeGrant(ctx, requestID)
}

// codeRecordParams are the authorize parameters kept in an authorization
// code's record: those of fosite's code, PKCE and OpenID Connect records
// together. fosite writes three records per login, each with its subset of
// the form; here the code's record carries the union, so a login writes one
// record and the exchange reads it instead of two more.
var codeRecordParams = []string{
	"redirect_uri",                            // code
	"code_challenge", "code_challenge_method", // PKCE
	"max_age", "prompt", "acr_values", "id_token_hint", "nonce", // OpenID Connect
}

// CodeRecordParams is fosite's sanitation allow list for the code's record
// (fosite.Config.SanitationWhiteList).
func CodeRecordParams() []string { return slices.Clone(codeRecordParams) }

// CreatePKCERequestSession implements pkce.PKCERequestStorage. fosite calls
// it right after CreateAuthorizeCodeSession with the same request; the code's
// record already holds the challenge, so nothing is written.
func (s *Storage) CreatePKCERequestSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetPKCERequestSession implements pkce.PKCERequestStorage: the challenge is
// read from the code's record. fosite checks PKCE before it invalidates the
// code, so only a live code is read: a used code's challenge is never needed.
func (s *Storage) GetPKCERequestSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	r, err := s.getRequest(ctx, prefixCode+sig, session)
	if err != nil {
		return nil, err
	}
	if f := r.GetRequestForm(); f.Get("code_challenge") == "" && f.Get("code_challenge_method") == "" {
		// fosite writes no PKCE record for such a request.
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage. The record is
// the code's, which InvalidateAuthorizeCodeSession takes exactly once.
func (s *Storage) DeletePKCERequestSession(context.Context, string) error { return nil }

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
// Like PKCE's, the OpenID Connect parameters are in the code's record.
func (s *Storage) CreateOpenIDConnectSession(context.Context, string, fosite.Requester) error {
	return nil
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage. fosite
// asks for it after the code handler has invalidated the code in the same
// exchange, so the used record is read when the live one is gone. A replayed
// code never gets here: the code handler refuses it first.
func (s *Storage) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	sig := codeSignature(code)
	if sig == "" {
		return nil, openid.ErrNoSessionFound
	}
	got, err := s.getRequest(ctx, prefixCode+sig, r.GetSession())
	if errors.Is(err, fosite.ErrNotFound) {
		got, err = s.getRequest(ctx, prefixCodeUsed+sig, r.GetSession())
	}
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, openid.ErrNoSessionFound
	}
	if err != nil {
		return nil, err
	}
	if !got.GetGrantedScopes().Has("openid") {
		// fosite writes no OpenID Connect record without the openid scope.
		return nil, openid.ErrNoSessionFound
	}
	return got, nil
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage;
// the code's record is the code handler's to remove.
func (s *Storage) DeleteOpenIDConnectSession(context.Context, string) error { return nil }

// codeSignature is the signature part of an HMAC authorization code
// (key.signature), as fosite's HMAC strategy computes it.
func codeSignature(code string) string {
	return (*enigma.HMACStrategy)(nil).Signature(code)
}

// CreatePARSession implements fosite.PARStorage.
func (s *Storage) CreatePARSession(ctx context.Context, uri string, r fosite.AuthorizeRequester) error {
	return s.putRequest(ctx, prefixPAR+uri, r, s.life.PAR)
}

// GetPARSession implements fosite.PARStorage. It takes the session
// atomically, so a request_uri is used once even by concurrent requests on
// several replicas.
func (s *Storage) GetPARSession(ctx context.Context, uri string) (fosite.AuthorizeRequester, error) {
	v, err := s.eph.Take(ctx, prefixPAR+uri)
	if err != nil {
		return nil, storeErr(err)
	}
	exchangeOf(ctx).onUndo(func(ctx context.Context) error { return s.eph.Set(ctx, prefixPAR+uri, v, s.life.PAR) })
	r, err := s.decode(ctx, v, nil)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeletePARSession implements fosite.PARStorage; GetPARSession has already
// taken the session, so this only tidies up.
func (s *Storage) DeletePARSession(ctx context.Context, uri string) error {
	return s.eph.Delete(ctx, prefixPAR+uri)
}

func (s *Storage) putRequest(ctx context.Context, key string, r fosite.Requester, ttl time.Duration) error {
	raw, err := encodeRequest(r)
	if err != nil {
		return err
	}
	return s.eph.Set(ctx, key, raw, ttl)
}

func (s *Storage) getRequest(ctx context.Context, key string, session fosite.Session) (fosite.Requester, error) {
	v, err := s.eph.Get(ctx, key)
	if err != nil {
		return nil, storeErr(err)
	}
	return s.decodeRequest(ctx, v, session)
}

func (s *Storage) decodeRequest(ctx context.Context, raw []byte, session fosite.Session) (fosite.Requester, error) {
	ar, err := s.decode(ctx, raw, session)
	if err != nil {
		return nil, err
	}
	return &ar.Request, nil
}

// storedRequest is the serialised form of a fosite request. Authorize-only
// fields are kept for PAR.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session,omitempty"`
	ResponseTypes     []string        `json:"response_types,omitempty"`
	RedirectURI       string          `json:"redirect_uri,omitempty"`
	State             string          `json:"state,omitempty"`
	ResponseMode      string          `json:"response_mode,omitempty"`
	DefaultMode       string          `json:"default_response_mode,omitempty"`
}

func encodeRequest(r fosite.Requester) ([]byte, error) {
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              r.GetRequestForm(),
	}
	if sess := r.GetSession(); sess != nil {
		raw, err := json.Marshal(sess)
		if err != nil {
			return nil, fmt.Errorf("encode session: %w", err)
		}
		sr.Session = raw
	}
	if ar, ok := r.(fosite.AuthorizeRequester); ok {
		sr.ResponseTypes = ar.GetResponseTypes()
		if u := ar.GetRedirectURI(); u != nil {
			sr.RedirectURI = u.String()
		}
		sr.State = ar.GetState()
		sr.ResponseMode = string(ar.GetResponseMode())
		sr.DefaultMode = string(ar.GetDefaultResponseMode())
	}
	return json.Marshal(sr)
}

// decode rebuilds a request with the current client, so a deleted client's
// grants stop working (within the client cache's bound, see clientcache.go).
func (s *Storage) decode(ctx context.Context, raw []byte, session fosite.Session) (*fosite.AuthorizeRequest, error) {
	var sr storedRequest
	if err := json.Unmarshal(raw, &sr); err != nil {
		return nil, fmt.Errorf("decode stored request: %w", err)
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, err
	}
	if session == nil {
		session = NewSession()
	}
	if len(sr.Session) > 0 {
		if err := json.Unmarshal(sr.Session, session); err != nil {
			return nil, fmt.Errorf("decode stored session: %w", err)
		}
	}
	ar := fosite.NewAuthorizeRequest()
	ar.ID = sr.ID
	ar.RequestedAt = sr.RequestedAt
	ar.Client = client
	ar.RequestedScope = sr.RequestedScope
	ar.GrantedScope = sr.GrantedScope
	ar.RequestedAudience = sr.RequestedAudience
	ar.GrantedAudience = sr.GrantedAudience
	if sr.Form != nil {
		ar.Form = sr.Form
	}
	ar.Session = session
	ar.ResponseTypes = sr.ResponseTypes
	if sr.RedirectURI != "" {
		if u, err := url.Parse(sr.RedirectURI); err == nil {
			ar.RedirectURI = u
		}
	}
	ar.State = sr.State
	ar.ResponseMode = fosite.ResponseModeType(sr.ResponseMode)
	ar.DefaultResponseMode = fosite.ResponseModeType(sr.DefaultMode)
	return ar, nil
}
