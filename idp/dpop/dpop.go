// Package dpop verifies DPoP proofs (RFC 9449): the JWT a client signs with
// its own key for each request, binding its tokens to that key. The token
// endpoint, the IdP's userinfo and the mobile API share this verifier, so
// every one of them applies the same rules: typ dpop+jwt, an asymmetric
// algorithm, a public jwk that signed the proof, htm and htu of this
// request, a fresh iat, a jti used once (in the ephemeral store, so on every
// replica), ath at resource servers and, when asked, a server nonce.
//
// It imports neither fosite nor fiber: callers pass the request's method,
// their own public URL (never one built from the Host header) and the DPoP
// header values.
package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
)

// Type is the JOSE typ of a DPoP proof.
const Type = "dpop+jwt"

// Algs are the proof algorithms accepted, as advertised in
// dpop_signing_alg_values_supported. ES256 is what the eID app's device key
// and most libraries use; PS256 serves RSA keys (FAPI 2.0 allows both).
// RS256 (PKCS#1 v1.5) and EdDSA are left out: FAPI 2.0 forbids the first,
// and no client of ours needs the second.
var Algs = []string{"ES256", "PS256"}

// MaxProofSize bounds a proof before it is parsed; a P-256 proof is about
// 600 bytes, an RSA-4096 one under 2 KiB.
const MaxProofSize = 4096

// Errors. Refusals of a proof wrap ErrInvalidProof (RFC 9449's
// invalid_dpop_proof); a missing or stale server nonce is ErrUseNonce
// (use_dpop_nonce), to be answered with a fresh DPoP-Nonce header. Anything
// else is a store failure.
var (
	ErrInvalidProof = errors.New("invalid DPoP proof")
	ErrUseNonce     = errors.New("DPoP nonce required")
	// ErrMissing: no DPoP header where one is required.
	ErrMissing = fmt.Errorf("no DPoP proof: %w", ErrInvalidProof)
)

// Replay is where spent jtis are kept; idp.Ephemeral implements it.
// CreateMany stores each key that is absent (or expired) and reports which
// it stored; a key given twice is stored once.
type Replay interface {
	CreateMany(ctx context.Context, keys []string, ttl time.Duration) (created []bool, err error)
}

// Config configures a Verifier.
type Config struct {
	// MaxAge is how old a proof's iat may be (default 60 s); its jti is
	// kept for that long plus Skew.
	MaxAge time.Duration
	// Skew is how far in the future iat may be (default 30 s, the skew
	// replicas tolerate between them).
	Skew time.Duration
	// NonceKey keys the server nonces (at least 32 bytes); nil disables
	// them, and a check that requires one then always fails.
	NonceKey []byte
	// NoncePeriod is the lifetime of a nonce bucket (default 2 min): a nonce
	// is accepted in its bucket and the next one.
	NoncePeriod time.Duration
	// MaxInProcess bounds the jtis an in-process verifier keeps (default
	// LocalMaxJTIs).
	MaxInProcess int
	Now          func() time.Time
}

// Verifier checks proofs. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	nonces *Nonces
	keys   *keyCache
	spent  *groupSpend
	// local, when set, keeps spent jtis in this process instead of spent's
	// store (NewInProcess); horizon saves its promise.
	local   *localSpend
	horizon Horizon
}

// New returns a verifier that spends jtis in replay.
func New(cfg Config, replay Replay) *Verifier {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Minute
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 30 * time.Second
	}
	if cfg.NoncePeriod <= 0 {
		cfg.NoncePeriod = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{
		cfg: cfg,
		// Claims are checked here, not by the library: a proof has no exp,
		// and iat must be neither too old nor too new.
		parser: jwt.NewParser(jwt.WithValidMethods(Algs), jwt.WithoutClaimsValidation()),
		keys:   newKeyCache(keyCacheSize),
		// The jti is kept while its proof could still be accepted.
		spent: &groupSpend{store: replay, ttl: cfg.MaxAge + 2*cfg.Skew, timeout: 5 * time.Second},
	}
	if len(cfg.NonceKey) > 0 {
		v.nonces = &Nonces{key: cfg.NonceKey, period: cfg.NoncePeriod, now: cfg.Now}
	}
	return v
}

// Check is what one request expects of its proof.
type Check struct {
	// Method is the request's HTTP method (htm).
	Method string
	// URL is the endpoint's public URL (htu), from configuration.
	URL string
	// AccessToken, when set, is the token the request presents: the
	// proof's ath must be its hash (resource servers).
	AccessToken string
	// RequireNonce asks for a valid server nonce.
	RequireNonce bool
	// Defer leaves the jti unspent: Verify checks everything else and the
	// caller spends the proof with Spend once the request has earned it
	// (the token endpoint, after the client authenticated), so strangers
	// cannot fill the replay store with proofs of their own keys.
	Defer bool
	// Unvouched marks a proof spent before anything of the request was
	// vouched for (a token request without a client credential, counted
	// only per address). In process, such proofs may be at most half of
	// the remembered jtis: past that they are refused as an outage, and
	// the other half stays for requests with a token or an authenticated
	// client, so a flood of strangers' proofs cannot refuse every citizen's
	// calls (only new logins, until the flood's proofs expire).
	Unvouched bool
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url:
	// the cnf.jkt of the tokens bound to it.
	JKT      string
	IssuedAt time.Time

	// deferred: verified under Check.Defer, its jti (key) not spent yet.
	deferred bool
	key      [sha256.Size]byte
}

// claims are a proof's claims.
type claims struct {
	jwt.RegisteredClaims
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

func refuse(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrInvalidProof)
}

// Verify checks the DPoP header values of a request (r.Header.Values("DPoP"))
// against c and spends the proof's jti (unless c.Defer: see Spend). No
// header is ErrMissing; more than one is refused (RFC 9449 section 4.3,
// check 1). With ErrUseNonce it also returns the proof, whose key is known
// but whose jti was not spent.
func (v *Verifier) Verify(ctx context.Context, header []string, c Check) (*Proof, error) {
	if len(header) == 0 {
		return nil, ErrMissing
	}
	if len(header) > 1 {
		return nil, refuse("more than one DPoP header")
	}
	p, cl, err := v.parse(header[0])
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(cl.HTM, c.Method) || cl.HTM != strings.ToUpper(cl.HTM) {
		return nil, refuse("htm does not match the request method")
	}
	want, ok := NormalizeURL(c.URL)
	if !ok {
		return nil, fmt.Errorf("dpop: endpoint URL %q is not absolute", c.URL)
	}
	if got, ok := NormalizeURL(cl.HTU); !ok || got != want {
		return nil, refuse("htu does not match the request URL")
	}
	now := v.cfg.Now()
	if p.IssuedAt.Before(now.Add(-v.cfg.MaxAge)) || p.IssuedAt.After(now.Add(v.cfg.Skew)) {
		return nil, refuse("iat is outside the accepted window")
	}
	if c.AccessToken != "" {
		if cl.ATH == "" || subtle.ConstantTimeCompare([]byte(cl.ATH), []byte(TokenHash(c.AccessToken))) != 1 {
			return nil, refuse("ath does not match the access token")
		}
	}
	// The nonce is checked when required, and whenever one is sent: a
	// client that sends a stale one is told to fetch a new one.
	if c.RequireNonce || cl.Nonce != "" || (v.local != nil && v.local.needsNonce(p.IssuedAt, v.cfg.Skew)) {
		if v.nonces == nil || !v.nonces.Valid(cl.Nonce) {
			return p, ErrUseNonce // p names the key that signed; its jti is unspent
		}
	}
	// Spent last, once everything else holds: a refused proof leaves its
	// jti unspent, which gains an attacker nothing, and a proof refused for
	// its nonce may not be sent again anyway (the retry needs a new nonce).
	key := sha256.Sum256([]byte(p.JKT + "\x00" + cl.ID))
	if c.Defer {
		p.deferred, p.key = true, key
		return p, nil
	}
	if err := v.spend(ctx, key, p.IssuedAt, now, c.Unvouched); err != nil {
		return nil, err
	}
	return p, nil
}

// Spend spends the jti of a proof Verify accepted under Check.Defer, with
// Verify's errors: a replay (this proof spent before, by Spend or by
// another request) wraps ErrInvalidProof, a store failure is an outage. A
// proof that has aged out of the accepted window since Verify is refused
// too, since its jti might no longer be remembered. A proof Verify spent
// itself (no Defer), and a nil one, are not spent again: Spend returns nil.
func (v *Verifier) Spend(ctx context.Context, p *Proof) error {
	if p == nil || !p.deferred {
		return nil
	}
	now := v.cfg.Now()
	if p.IssuedAt.Before(now.Add(-v.cfg.MaxAge)) {
		return refuse("iat left the accepted window before the jti was spent")
	}
	return v.spend(ctx, p.key, p.IssuedAt, now, false)
}

// spend records a proof's key (the SHA-256 of its thumbprint and jti),
// refusing a replay.
func (v *Verifier) spend(ctx context.Context, key [sha256.Size]byte, iat, now time.Time, unvouched bool) error {
	var err error
	if v.local != nil {
		err = v.local.spend([16]byte(key[:16]), iat, now, unvouched)
		if errors.Is(err, errLapsed) && v.renew(ctx) == nil {
			// The clock jumped past the promise between two renewals:
			// this request saves the next one itself.
			err = v.local.spend([16]byte(key[:16]), iat, now, unvouched)
		}
	} else {
		err = v.spent.spend(ctx, "dpop:jti:"+base64.RawURLEncoding.EncodeToString(key[:]))
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, idp.ErrConflict):
		return refuse("jti replayed")
	case errors.Is(err, ErrInvalidProof):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		// The store did not answer in time: an outage (503), not a server
		// fault and not the client's. (Canceled is the client gone.)
		return fmt.Errorf("dpop replay check: %w: %w", err, idp.ErrUnavailable)
	}
	return fmt.Errorf("dpop replay check: %w", err)
}

// Parse checks a proof's form, header, key and signature and returns it
// with its jti, without the request checks, the time window or the replay
// cache. It is exported for fuzzing and for tests.
func (v *Verifier) Parse(proof string) (*Proof, string, error) {
	p, cl, err := v.parse(proof)
	if err != nil {
		return nil, "", err
	}
	return p, cl.ID, nil
}

func (v *Verifier) parse(proof string) (*Proof, *claims, error) {
	if proof == "" || len(proof) > MaxProofSize {
		return nil, nil, refuse("proof empty or longer than %d bytes", MaxProofSize)
	}
	header, _, _ := strings.Cut(proof, ".")
	var (
		cl     claims
		key    cachedKey
		cached bool
	)
	_, err := v.parser.ParseWithClaims(proof, &cl, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, Type) {
			return nil, errors.New("typ is not dpop+jwt")
		}
		for _, h := range []string{"jku", "x5u", "x5c", "crit"} {
			if _, ok := t.Header[h]; ok {
				return nil, fmt.Errorf("header %s not accepted", h)
			}
		}
		if key, cached = v.keys.get(header); cached {
			return key.key, nil
		}
		k, err := publicJWK(t.Header["jwk"])
		if err != nil {
			return nil, err
		}
		if err := keyFits(k, t.Method.Alg()); err != nil {
			return nil, err
		}
		sum, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("jwk thumbprint: %w", err)
		}
		key = cachedKey{key: k.Key, jkt: b64(sum)}
		return k.Key, nil
	})
	if err != nil {
		return nil, nil, refuse("%v", err)
	}
	switch {
	case cl.ID == "" || len(cl.ID) > 256:
		return nil, nil, refuse("jti missing or longer than 256 bytes")
	case cl.HTM == "" || cl.HTU == "":
		return nil, nil, refuse("htm or htu missing")
	case cl.IssuedAt == nil:
		return nil, nil, refuse("iat missing")
	}
	if !cached {
		// Only once its signature verified: a header is worth keeping
		// when its key has signed something.
		v.keys.put(header, key)
	}
	return &Proof{JKT: key.jkt, IssuedAt: cl.IssuedAt.Time}, &cl, nil
}

// privateMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 section 6): a proof naming any of them is refused, not
// stripped, since its client has leaked its key.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicJWK decodes the jwk header: a public EC or RSA key, nothing else.
func publicJWK(h any) (*jose.JSONWebKey, error) {
	m, ok := h.(map[string]any)
	if !ok {
		return nil, errors.New("jwk header missing or not an object")
	}
	for _, name := range privateMembers {
		if _, ok := m[name]; ok {
			return nil, fmt.Errorf("jwk carries the private member %q", name)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, errors.New("jwk header not re-encodable")
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("jwk: %w", err)
	}
	if !k.Valid() || !k.IsPublic() {
		return nil, errors.New("jwk is not a valid public key")
	}
	return &k, nil
}

// keyFits checks the key is of the kind alg needs: P-256 for ES256, RSA of
// at least 2048 bits for PS256.
func keyFits(k *jose.JSONWebKey, alg string) error {
	switch pub := k.Key.(type) {
	case *ecdsa.PublicKey:
		if alg == "ES256" && pub.Curve == elliptic.P256() {
			return nil
		}
	case *rsa.PublicKey:
		if alg == "PS256" && pub.N.BitLen() >= 2048 {
			return nil
		}
	}
	return fmt.Errorf("jwk does not fit alg %s", alg)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TokenHash is the ath of an access token: base64url(SHA-256(token)).
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NormalizeURL brings an htu to the form RFC 9449 section 4.3 compares
// (RFC 3986 syntax- and scheme-based normalisation): lower-case scheme and
// host, no default port, "/" for an empty path, and no query or fragment.
// ok is false for anything but an absolute http(s) URL.
func NormalizeURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	hostport := host
	switch {
	case port != "":
		hostport = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		hostport = "[" + host + "]"
	}
	// Re-escaping the decoded path gives one spelling of each path (%7E and
	// ~, %2f and %2F).
	path := (&url.URL{Path: u.Path}).EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + hostport + path, true
}

// Nonce returns a fresh server nonce for the DPoP-Nonce header; "" when
// nonces are disabled.
func (v *Verifier) Nonce() string {
	if v.nonces == nil {
		return ""
	}
	return v.nonces.Issue()
}

// Challenge is the WWW-Authenticate value of a resource server's refusal
// (RFC 9449 section 7.1): the DPoP scheme with the accepted algorithms and,
// when code is set, the error.
func Challenge(code, description string) string {
	s := `DPoP algs="` + strings.Join(Algs, " ") + `"`
	if code != "" {
		s += `, error="` + code + `"`
	}
	if description != "" {
		s += `, error_description="` + strings.ReplaceAll(description, `"`, `'`) + `"`
	}
	return s
}

// Authorization splits an Authorization header into its scheme (canonical
// "Bearer" or "DPoP") and token; scheme is "" for anything else.
func Authorization(h string) (scheme, token string) {
	name, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		return "", ""
	}
	switch {
	case strings.EqualFold(name, "Bearer"):
		return "Bearer", tok
	case strings.EqualFold(name, "DPoP"):
		return "DPoP", tok
	}
	return "", ""
}
