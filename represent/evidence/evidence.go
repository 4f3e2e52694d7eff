// Package evidence is the signed evidence of a mandate: a compact JWS the
// granting citizen's eID app signs with its device key over the exact terms
// of the mandate, as it signs a login approval. The mobile API verifies it
// before the mandate is granted and stores it beside the mandate
// (represent.Mandate.Evidence), so who agreed to what, on which device, can
// be shown later without trusting the server's own records.
//
// The JWS is ES256 with typ onedoor-mandate+jwt and the device's public key
// in its jwk header, whose RFC 7638 thumbprint must be the cnf.jkt of the
// access token the request carries: only the device the token is bound to
// can sign. Its claims:
//
//	{"iss": DEVICE_ID, "aud": API_URL, "iat": SECONDS, "jti": RANDOM,
//	 "mandate": {"organisation"|"person": REF, "grantee": PERSONAL_ID,
//	             "services": [...], "categories": [...],
//	             "valid_from"?: RFC3339, "valid_until": RFC3339, "may_delegate": BOOL}}
//
// The package imports no OneDoor area.
package evidence

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Type is the JOSE typ of mandate evidence.
const Type = "onedoor-mandate+jwt"

// MaxSize bounds the JWS before it is parsed: a mandate of 50 services and
// 50 categories of 64 bytes each signs to under 10 KiB.
const MaxSize = 16 << 10

// MaxSkew is how far iat may be from the server's clock either way: the
// citizen reviews the terms and signs just before sending them.
const MaxSkew = 5 * time.Minute

// ErrInvalid is every refusal of the evidence; the message says why and
// never echoes the input. Anything else a Verify returns is the replay
// store's failure.
var ErrInvalid = errors.New("invalid mandate evidence")

func refuse(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrInvalid)
}

// Terms are what the grantor agrees to, as the mobile API's request body
// states them.
type Terms struct {
	Organisation string     `json:"organisation,omitempty"`
	Person       string     `json:"person,omitempty"`
	Grantee      string     `json:"grantee"`
	Services     []string   `json:"services"`
	Categories   []string   `json:"categories"`
	ValidFrom    *time.Time `json:"valid_from,omitempty"`
	ValidUntil   time.Time  `json:"valid_until"`
	MayDelegate  bool       `json:"may_delegate"`
}

// Differences names the terms of t that differ from u; none means the same
// mandate. Times are compared as instants (one may be written with an
// offset, the other in UTC), lists in order, and a missing list equals an
// empty one.
func (t Terms) Differences(u Terms) []string {
	var d []string
	if t.Organisation != u.Organisation {
		d = append(d, "organisation")
	}
	if t.Person != u.Person {
		d = append(d, "person")
	}
	if t.Grantee != u.Grantee {
		d = append(d, "grantee")
	}
	if !slices.Equal(t.Services, u.Services) {
		d = append(d, "services")
	}
	if !slices.Equal(t.Categories, u.Categories) {
		d = append(d, "categories")
	}
	if (t.ValidFrom == nil) != (u.ValidFrom == nil) || (t.ValidFrom != nil && !t.ValidFrom.Equal(*u.ValidFrom)) {
		d = append(d, "valid_from")
	}
	if !t.ValidUntil.Equal(u.ValidUntil) {
		d = append(d, "valid_until")
	}
	if t.MayDelegate != u.MayDelegate {
		d = append(d, "may_delegate")
	}
	return d
}

// Claims are the JWS payload.
type Claims struct {
	// Issuer is the eID device that signed (its device id).
	Issuer   string `json:"iss"`
	Audience string `json:"aud"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti"`
	Mandate  Terms  `json:"mandate"`
}

// Evidence is a parsed JWS whose signature by its own jwk holds; Verify
// checks the rest.
type Evidence struct {
	Claims
	// JKT is the RFC 7638 SHA-256 thumbprint (base64url) of the signing key.
	JKT string
}

// ReplayKey is the key under which Verify spent the signature's jti: a
// caller whose grant then fails for an outage deletes it, so the app's
// retry with the same signature is not taken for a replay. It names the
// device key too, so one device cannot spend another's jti.
func (e *Evidence) ReplayKey() string {
	sum := sha256.Sum256([]byte(e.JKT + "\x00" + e.ID))
	return "rep:evidence:" + hex.EncodeToString(sum[:])
}

// Sign signs the claims with the device key (P-256), embedding its public
// key; the eID app's side. A zero IssuedAt is now, an empty ID random.
func Sign(key *ecdsa.PrivateKey, c Claims) (string, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return "", errors.New("evidence: the device key must be an EC P-256 key")
	}
	if c.IssuedAt == 0 {
		c.IssuedAt = time.Now().Unix()
	}
	if c.ID == "" {
		c.ID = rand.Text()
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(Type))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	obj, err := sig.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// header members that would let the JWS name its key elsewhere, or demand
// processing this verifier does not do.
var refusedHeaders = []string{"jku", "x5u", "x5c", "x5t", "x5t#S256", "kid", "crit", "b64", "zip"}

// privateMembers carry private key material: a jwk naming one is refused.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Parse checks the JWS's form, header, key and signature, and decodes its
// claims strictly (unknown members refused). It checks neither audience,
// time, key binding, replay nor terms: Verify does.
func Parse(jws string) (*Evidence, error) {
	if jws == "" || len(jws) > MaxSize {
		return nil, refuse("the signature is empty or longer than %d bytes", MaxSize)
	}
	parts := strings.Split(jws, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, refuse("the signature is not a compact JWS")
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, refuse("the JWS header is not base64url")
	}
	var hdr map[string]json.RawMessage
	if err := strictJSON(rawHeader, &hdr); err != nil {
		return nil, refuse("the JWS header is not a JSON object")
	}
	var alg, typ string
	if json.Unmarshal(hdr["alg"], &alg) != nil || alg != string(jose.ES256) {
		return nil, refuse("alg must be ES256")
	}
	if json.Unmarshal(hdr["typ"], &typ) != nil || !strings.EqualFold(typ, Type) {
		return nil, refuse("typ must be %s", Type)
	}
	for _, h := range refusedHeaders {
		if _, ok := hdr[h]; ok {
			return nil, refuse("header %s is not accepted", h)
		}
	}
	var jwkMembers map[string]json.RawMessage
	if err := json.Unmarshal(hdr["jwk"], &jwkMembers); err != nil || jwkMembers == nil {
		return nil, refuse("the jwk header is missing or not an object")
	}
	for _, m := range privateMembers {
		if _, ok := jwkMembers[m]; ok {
			return nil, refuse("the jwk header carries private key material")
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(hdr["jwk"]); err != nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, refuse("the jwk header is not a valid public key")
	}
	pub, ok := jwk.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, refuse("the jwk header is not an EC P-256 key")
	}
	obj, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, refuse("the JWS does not parse")
	}
	payload, err := obj.Verify(pub)
	if err != nil {
		return nil, refuse("the signature does not verify with its jwk")
	}
	var c Claims
	if err := strictJSON(payload, &c); err != nil {
		return nil, refuse("the claims are not a JSON object of the expected members")
	}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, refuse("the jwk has no thumbprint")
	}
	return &Evidence{Claims: c, JKT: base64.RawURLEncoding.EncodeToString(sum)}, nil
}

// strictJSON decodes exactly one JSON value, refusing unknown members and
// members named twice (readers disagree on which wins).
func strictJSON(b []byte, v any) error {
	if err := noDuplicates(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// noDuplicates refuses an object that names a member twice, at any depth.
func noDuplicates(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) >= 16 {
					return errors.New("nested too deeply")
				}
				if top != nil && top.object {
					top.key = true
				}
				stack = append(stack, &frame{object: d == '{', keys: map[string]bool{}, key: d == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top != nil && top.object {
			if top.key {
				s, _ := tok.(string)
				if top.keys[s] {
					return fmt.Errorf("member %q twice", s)
				}
				top.keys[s] = true
				top.key = false
				continue
			}
			top.key = true
		}
	}
}

// Replay keeps spent jtis; idp.Ephemeral implements it. Create must fail
// with an error for which Spent reports true when the key exists.
type Replay interface {
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// Check is what the request expects of its evidence.
type Check struct {
	// Audience is the API's URL (its --api-url).
	Audience string
	// JKT is the access token's cnf.jkt: the device key's thumbprint.
	JKT string
	// Device is the token's device id; iss must name it when set.
	Device string
	// Terms are what the request asks to grant.
	Terms Terms
	Now   time.Time
	// Spent reports whether an error of Replay.Create means the key was
	// there already (idp.ErrConflict).
	Spent func(error) bool
}

// Verify parses the JWS and checks it was signed by the token's key, for
// this API, lately, once, over exactly the terms asked. A refusal wraps
// ErrInvalid; an error of the replay store is returned as it is.
func Verify(ctx context.Context, jws string, c Check, replay Replay) (*Evidence, error) {
	e, err := Parse(jws)
	if err != nil {
		return nil, err
	}
	iat := time.Unix(e.IssuedAt, 0)
	switch {
	case c.JKT == "" || e.JKT != c.JKT:
		return nil, refuse("the signature is not by the device key the access token is bound to")
	case e.Audience == "" || e.Audience != c.Audience:
		return nil, refuse("aud is not this API")
	case c.Device != "" && e.Issuer != c.Device:
		return nil, refuse("iss is not the device the access token was issued to")
	case e.IssuedAt == 0 || iat.Before(c.Now.Add(-MaxSkew)) || iat.After(c.Now.Add(MaxSkew)):
		return nil, refuse("iat is missing or more than %s from the server's time", MaxSkew)
	case e.ID == "" || len(e.ID) > 256:
		return nil, refuse("jti is missing or longer than 256 bytes")
	}
	if d := e.Mandate.Differences(c.Terms); len(d) > 0 {
		return nil, refuse("the request's terms differ from the signed ones: %s", strings.Join(d, ", "))
	}
	// Spent only now: a refused JWS must not burn its jti.
	if err := replay.Create(ctx, e.ReplayKey(), []byte{1}, 2*MaxSkew+time.Minute); err != nil {
		if c.Spent != nil && c.Spent(err) {
			return nil, refuse("the signature was already used (jti replayed)")
		}
		return nil, fmt.Errorf("evidence replay check: %w", err)
	}
	return e, nil
}
