package oidc

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	enigma "github.com/ory/fosite/token/hmac"
)

func refreshStrategy() *strategy {
	conf := &fosite.Config{GlobalSecret: bytes.Repeat([]byte{7}, 32)}
	return &strategy{HMACSHAStrategyUnPrefixed: oauth2.NewHMACSHAStrategyUnPrefixed(&enigma.HMACStrategy{Config: conf}, conf)}
}

func TestRefreshToken_NamesItsFamily(t *testing.T) {
	ctx := context.Background()
	s := refreshStrategy()
	r := fosite.NewRequest()
	r.ID = "0b6f3f4e-family-1"
	r.Session = NewSession()
	tok, sig, err := s.GenerateRefreshToken(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := refreshFamily(sig); !ok || id != r.ID {
		t.Fatalf("signature %q does not name family %q", sig, r.ID)
	}
	if got := s.RefreshTokenSignature(ctx, tok); got != sig {
		t.Errorf("RefreshTokenSignature = %q, want %q", got, sig)
	}
	// fosite's own validation accepts the token unchanged.
	if err := s.ValidateRefreshToken(ctx, r, tok); err != nil {
		t.Errorf("ValidateRefreshToken: %v", err)
	}
	if strings.Contains(tok, r.ID) {
		t.Error("the token carries the family id in clear; want it inside the MAC'd key only")
	}
}

// An attacker who knows a victim's family id (the gid of an access token)
// must not be able to present a token "of" that family: reuse detection
// would revoke the victim's grant. Re-labelling a valid token of their own
// breaks its MAC, and the signature then names no family.
func TestRefreshToken_ForgedFamilyIsNotTrusted(t *testing.T) {
	ctx := context.Background()
	s := refreshStrategy()
	r := fosite.NewRequest()
	r.ID = "attacker-family"
	r.Session = NewSession()
	tok, _, err := s.GenerateRefreshToken(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	encKey, mac, _ := strings.Cut(tok, ".")
	key, _ := base64.RawURLEncoding.DecodeString(encKey)
	copy(key[1:], "victim-familyXXX") // same length as "attacker-family"+1
	key[0] = byte(len("victim-familyXXX"))
	forged := base64.RawURLEncoding.EncodeToString(key) + "." + mac
	sig := s.RefreshTokenSignature(ctx, forged)
	if _, ok := refreshFamily(sig); ok {
		t.Fatalf("forged token got signature %q naming a family", sig)
	}
	if err := s.ValidateRefreshToken(ctx, r, forged); err == nil {
		t.Error("forged token validated")
	}
	// A token from before families were named keeps fosite's signature.
	legacy, legacySig, err := s.Enigma.Generate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.RefreshTokenSignature(ctx, legacy); got != legacySig {
		t.Errorf("legacy token signature = %q, want %q", got, legacySig)
	}
	for _, junk := range []string{"", ".", "a.b", "!!!.###", "AAAA.BBBB.CCCC"} {
		if _, ok := refreshFamily(s.RefreshTokenSignature(ctx, junk)); ok {
			t.Errorf("junk %q got a family", junk)
		}
	}
}
