package web

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestRequestedClaims(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		param  string
		want   string // name[?] list; ? marks optional
	}{
		{"openid only", []string{"openid"}, "", ""},
		{"profile is voluntary", []string{"openid", "profile"}, "", "name? family_name? given_name? birthdate? gender?"},
		{"eid releases the personal id as essential", []string{"openid", "eid"}, "", "personal_id"},
		{"claims parameter marks essential", []string{"openid", "phone"}, `{"userinfo":{"phone_number":{"essential":true}}}`, "phone_number"},
		{"claims parameter adds a voluntary claim", []string{"openid"}, `{"id_token":{"birthdate":null}}`, "birthdate?"},
		{"unknown claims are ignored", []string{"openid"}, `{"userinfo":{"salary":{"essential":true}}}`, ""},
		{"malformed parameter adds nothing", []string{"openid", "address"}, `{"userinfo":`, "address?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range requestedClaims(tt.scopes, tt.param) {
				s := c.Name
				if c.Optional {
					s += "?"
				}
				got = append(got, s)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("got %q, want %q", g, tt.want)
			}
		})
	}
}

// FuzzRequestedClaims: whatever the scopes and claims parameter, only known
// claims come out, once each, and an essential request is never optional.
func FuzzRequestedClaims(f *testing.F) {
	f.Add("openid profile eid", `{"userinfo":{"birthdate":{"essential":true}}}`)
	f.Add("openid phone address", `{"id_token":{"name":null},"userinfo":{"name":{"essential":false}}}`)
	f.Add("", `[]`)
	f.Add("eid eid profile", `{"userinfo":{"personal_id":{"essential":"yes"}}}`)
	f.Fuzz(func(t *testing.T, scopes, param string) {
		out := requestedClaims(strings.Fields(scopes), param)
		seen := map[string]bool{}
		for _, c := range out {
			if !slices.Contains(knownClaims, c.Name) {
				t.Fatalf("unknown claim %q released", c.Name)
			}
			if seen[c.Name] {
				t.Fatalf("claim %q twice", c.Name)
			}
			seen[c.Name] = true
		}
		for name, essential := range parseClaimsParam(param) {
			if !essential || !slices.Contains(knownClaims, name) {
				continue
			}
			for _, c := range out {
				if c.Name == name && c.Optional {
					t.Fatalf("essential claim %q marked optional", name)
				}
			}
		}
		if param != "" && validClaimsParam(param) {
			var v any
			if json.Unmarshal([]byte(param), &v) != nil {
				t.Fatalf("validClaimsParam accepted invalid JSON %q", param)
			}
		}
	})
}
