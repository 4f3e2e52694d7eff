package accesstoken

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A token whose subject is represented carries act, representation and rk;
// denying any of its revocation keys denies it, in the same one read.
func TestVerify_Representation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.claims()
	c.Subject = "org:company"
	c.Act = &Actor{Subject: "citizen-1"}
	c.Representation = &Representation{Basis: "mandate", MandateID: "mdt_1", Type: "organisation", Services: []string{"1.000001"}}
	c.RevocationKeys = []string{"rep:mandate:mdt_1", "rep:legalrep:org:company:citizen-2"}
	tok, err := f.iss.Sign(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.v.VerifyFor(ctx, tok, Expect{userinfo, KindCitizen})
	if err != nil {
		t.Fatal(err)
	}
	if got.Act.Subject != "citizen-1" || got.Representation.MandateID != "mdt_1" || len(got.RevocationKeys) != 2 {
		t.Errorf("claims = %+v", got)
	}
	raw := jsonClaims(t, tok)
	if act, _ := raw["act"].(map[string]any); act["sub"] != "citizen-1" {
		t.Errorf("act = %v", raw["act"])
	}
	if rep, _ := raw["representation"].(map[string]any); rep["basis"] != "mandate" || rep["type"] != "organisation" {
		t.Errorf("representation = %v", raw["representation"])
	}
	f.deny.reads = nil
	if err := f.deny.Revoke(ctx, "rep:legalrep:org:company:citizen-2", f.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, ErrInvalid) {
		t.Errorf("after the grantor's basis ended: %v, want ErrInvalid", err)
	}
	if len(f.deny.reads) != 1 {
		t.Errorf("%d deny-list reads, want 1", len(f.deny.reads))
	}

	// Malformed representations are refused.
	for name, mod := range map[string]func(c jwt.MapClaims){
		"act without representation": func(c jwt.MapClaims) { c["act"] = map[string]any{"sub": "citizen-1"} },
		"representation without act": func(c jwt.MapClaims) { c["representation"] = map[string]any{"basis": "guardian", "type": "person"} },
		"acting for oneself": func(c jwt.MapClaims) {
			c["act"] = map[string]any{"sub": "citizen-1"}
			c["representation"] = map[string]any{"basis": "guardian", "type": "person"}
		},
		"empty rk": func(c jwt.MapClaims) { c["rk"] = []string{""} },
		"client token acting": func(c jwt.MapClaims) {
			c["kind"], c["sub"] = "client", "agency"
			c["act"] = map[string]any{"sub": "citizen-1"}
			c["representation"] = map[string]any{"basis": "guardian", "type": "person"}
		},
	} {
		tok := f.forge(t, jwt.SigningMethodES256, f.keys.es.Private, nil, mod)
		if _, err := f.v.Parse(ctx, tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
