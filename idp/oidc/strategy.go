package oidc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/onedoor/onedoor/idp/accesstoken"
)

// signer implements fosite's jwt.Signer for ID tokens with OneDoor's keys:
// it signs with the active key of one algorithm and verifies with whichever
// published key the token's kid names, so an id_token_hint signed by a key
// that has since been retired still verifies.
type signer struct {
	keys accesstoken.Keys
	alg  string
}

var _ jwt.Signer = (*signer)(nil)

func (s *signer) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	k, err := s.keys.SigningKey(ctx, s.alg)
	if err != nil {
		return "", "", err
	}
	t := jwt.NewWithClaims(jose.SignatureAlgorithm(k.Alg), claims)
	for name, v := range header.ToMap() {
		t.Header[name] = v
	}
	t.Header["kid"] = k.ID
	raw, err := t.SignedString(jose.JSONWebKey{Key: k.Private, KeyID: k.ID, Algorithm: k.Alg})
	if err != nil {
		return "", "", err
	}
	return raw, raw[strings.LastIndexByte(raw, '.')+1:], nil
}

func (s *signer) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := s.keys.PublicKey(ctx, kid)
		if err != nil {
			return nil, err
		}
		if string(t.Method) != k.Alg {
			return nil, errors.New("token alg does not match its key")
		}
		return k.Public, nil
	})
}

func (s *signer) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

func (s *signer) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("header, body and signature must all be set")
	}
	return parts[2], nil
}

func (s *signer) Hash(_ context.Context, in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	return h[:], nil
}

func (s *signer) GetSigningMethodLength(context.Context) int { return sha256.Size }

// idTokenStrategy signs each client's ID tokens with the algorithm it
// registered (ES256 unless it asked for RS256).
type idTokenStrategy struct {
	es256, rs256 *openid.DefaultStrategy
}

func (s *idTokenStrategy) GenerateIDToken(ctx context.Context, lifespan time.Duration, r fosite.Requester) (string, error) {
	if c, ok := r.GetClient().(*Client); ok && c.Record.IDTokenAlg == "RS256" {
		return s.rs256.GenerateIDToken(ctx, lifespan, r)
	}
	return s.es256.GenerateIDToken(ctx, lifespan, r)
}

// accessTokenStrategy issues RFC 9068 JWT access tokens. The token doubles as
// its own "signature", which lets the storage rebuild the request from a
// verified token instead of storing one record per token.
type accessTokenStrategy struct {
	issuer   *accesstoken.Issuer
	verifier *accesstoken.Verifier
	lifespan time.Duration
	// defaultAudience is the IdP's userinfo endpoint.
	defaultAudience string
	now             func() time.Time
}

func (s *accessTokenStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return token
}

// GenerateAccessToken mints the token of a token request. Its claims:
//   - aud (always, RFC 9068 2.2): the resources of the token request (RFC
//     8707), which must lie within the grant's audience; else the grant's
//     audience; else the default. The grant keeps its whole audience, so a
//     later refresh may ask for another of its resources.
//   - kind: "client" for client_credentials (sub = client_id), else
//     "citizen";
//   - agency: the agency a client's own token acts for, when its client is
//     bound to one (never on a citizen's token);
//   - did: the device that approved the login or holds the token;
//   - cid: the consent the release rests on;
//   - cnf.jkt: the key the grant is bound to, when it is;
//   - act, representation, rk: the acting citizen, the basis and the
//     revocation keys when sub is a party the citizen represents; exp is
//     then capped at the representation's own end.
func (s *accessTokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	sess := r.GetSession()
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		exp = s.now().Add(s.lifespan)
	}
	c := &accesstoken.Claims{
		ClientID: r.GetClient().GetID(),
		Scope:    strings.Join(r.GetGrantedScopes(), " "),
		GrantID:  r.GetID(),
		Kind:     accesstoken.KindCitizen,
	}
	c.Subject = sess.GetSubject()
	c.SetExpiry(exp)
	aud, err := s.audience(r)
	if err != nil {
		return "", "", err
	}
	c.Audience = aud
	if os, ok := sess.(*Session); ok {
		c.Released = os.Released
		c.DeviceID = os.DeviceID
		c.ConsentID = os.ConsentID
		if os.KeyThumbprint != "" {
			c.Confirmation = &accesstoken.Confirmation{JKT: os.KeyThumbprint}
		}
		if os.Act != nil {
			c.Act, c.Representation, c.RevocationKeys = os.Act, os.Representation, os.RevocationKeys
			if !os.RepresentedUntil.IsZero() && os.RepresentedUntil.Before(exp) {
				// A ward comes of age, a mandate ends: no token outlives it.
				exp = os.RepresentedUntil
				c.SetExpiry(exp)
			}
		}
		if os.Claims != nil {
			c.ACR = os.Claims.AuthenticationContextClassReference
			if !os.Claims.AuthTime.IsZero() {
				c.AuthTime = os.Claims.AuthTime.Unix()
			}
		}
	}
	if ar, ok := r.(fosite.AccessRequester); (ok && ar.GetGrantTypes().ExactOne("client_credentials")) || c.Subject == "" {
		// The client acts for itself.
		c.Kind = accesstoken.KindClient
		c.Subject = c.ClientID
		c.DeviceID, c.Released, c.ConsentID, c.ACR, c.AuthTime = "", nil, "", "", 0
		c.Act, c.Representation, c.RevocationKeys = nil, nil, nil
		if oc, ok := r.GetClient().(*Client); ok {
			c.Agency = oc.Record.Agency
			c.ClientRegistered = oc.Record.CreatedAt.UnixMilli()
		}
	}
	tok, err := s.issuer.Sign(ctx, c)
	if err != nil {
		return "", "", fmt.Errorf("sign access token: %w", err)
	}
	return tok, tok, nil
}

// audience picks the token's aud (see GenerateAccessToken). The web layer
// has already answered invalid_target for resources outside the grant; this
// check only keeps a new code path from minting wider tokens.
func (s *accessTokenStrategy) audience(r fosite.Requester) ([]string, error) {
	granted := []string(r.GetGrantedAudience())
	if len(granted) == 0 {
		granted = []string{s.defaultAudience}
	}
	asked := r.GetRequestForm()["resource"]
	if len(asked) == 0 {
		return granted, nil
	}
	var aud []string
	for _, a := range asked {
		if !slices.Contains(granted, a) {
			return nil, ErrInvalidTarget.WithHintf("%q is not within the grant.", a)
		}
		if !slices.Contains(aud, a) {
			aud = append(aud, a)
		}
	}
	return aud, nil
}

func (s *accessTokenStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	if _, err := s.verifier.Parse(ctx, token); err != nil {
		return fosite.ErrTokenExpired.WithWrap(err).WithHint("The access token is not valid or has expired.")
	}
	return nil
}

// strategy bundles every token strategy fosite's factories look for.
type strategy struct {
	*oauth2.HMACSHAStrategyUnPrefixed // authorization codes and refresh tokens
	*idTokenStrategy
	*signer
	at *accessTokenStrategy
}

func (s *strategy) AccessTokenSignature(ctx context.Context, token string) string {
	return s.at.AccessTokenSignature(ctx, token)
}

func (s *strategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	return s.at.GenerateAccessToken(ctx, r)
}

func (s *strategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	return s.at.ValidateAccessToken(ctx, r, token)
}
