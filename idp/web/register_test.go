package web

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

func TestParseClientMetadata(t *testing.T) {
	md, ignored, err := ParseClientMetadata([]byte(`{"client_name":"Site","redirect_uris":["https://a.test/cb"],
		"scope":"openid profile","jwks":{"keys":[]},"onedoor_claims":["name"],"onedoor_purposes":[{"code":"p","text":"Why"}],
		"require_pushed_authorization_requests":true,"logo_uri":"https://a.test/l.png","contacts":["a@a.test"],"jwks_uri":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if md.ClientName != "Site" || !md.RequirePAR || string(md.JWKS) != `{"keys":[]}` || len(md.Purposes) != 1 || md.Claims[0] != "name" {
		t.Errorf("metadata: %+v", md)
	}
	if !slices.Equal(ignored, []string{"contacts", "logo_uri"}) {
		t.Errorf("ignored %v", ignored)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `"x"`, `{"redirect_uris":"https://a.test/cb"}`, `{"client_name":1}`, `{"grant_types":[1]}`,
		`{"require_pushed_authorization_requests":"yes"}`, `{"jwks":"{}"}`, `{"jwks":[]}`, `{"onedoor_purposes":{"code":"a"}}`,
		`{"onedoor_purposes":[{"code":"a","text":"b","extra":1}]}`, `{} {}`, `{"scope":"` + strings.Repeat("a ", 600) + `"}`,
		`{"redirect_uris":[` + strings.Repeat(`"https://a.test/x",`, 20) + `"https://a.test/y"]}`,
	} {
		if _, _, err := ParseClientMetadata([]byte(bad)); err == nil {
			t.Errorf("accepted %.80q", bad)
		}
	}
}

// FuzzParseClientMetadata: whatever the body, the parser and the client
// rules answer with a metadata error or a valid client, never a panic,
// and what they accept passes client create's validation.
func FuzzParseClientMetadata(f *testing.F) {
	for _, seed := range []string{
		`{"client_name":"Site","redirect_uris":["https://a.test/cb"]}`,
		`{"client_name":"B","grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://a.test/jwks","scope":"agency"}`,
		`{"client_name":"N","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","response_types":["code"]}`,
		`{"client_name":"P","redirect_uris":["https://a.test/cb"],"onedoor_purposes":[{"code":"p","text":"t"}],"onedoor_claims":["name"]}`,
		`{"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"1","y":"2"}]}}`,
		`{"redirect_uris":"x"}`, `[]`, `{"a":{"b":[1,2,{}]}}`, `{"client_name":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		md, _, err := ParseClientMetadata(body)
		if err != nil {
			var me *metadataError
			if !errors.As(err, &me) {
				t.Fatalf("parse error of the wrong kind: %v", err)
			}
			return
		}
		c, _, err := md.client([]byte("k"), "AG", nil, time.Unix(0, 0))
		if err != nil {
			var me *metadataError
			if !errors.As(err, &me) {
				t.Fatalf("client error of the wrong kind: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid client: %v", err)
		}
		if _, err := json.Marshal((&Server{}).registrationResponse(c)); err != nil { //nolint:gosec // the response carries the secret by design (RFC 7591)
			t.Fatalf("response does not marshal: %v", err)
		}
	})
}

// A PUT keeps the client's id, agency and secret; switching to a secret
// method issues one.
func TestClientMetadata_Update(t *testing.T) {
	key := []byte("k")
	md, _, err := ParseClientMetadata([]byte(`{"client_name":"B","grant_types":["client_credentials"],"scope":"registry.read"}`))
	if err != nil {
		t.Fatal(err)
	}
	c, secret, err := md.client(key, "AG", nil, time.Unix(0, 0))
	if err != nil || secret == "" || c.Agency != "AG" {
		t.Fatalf("register: %v %q %+v", err, secret, c)
	}
	c.Registration.Status = idp.ClientActive
	next, secret2, err := md.client(key, "OTHER", c, time.Unix(9, 0))
	if err != nil || secret2 != "" || next.ID != c.ID || string(next.SecretHash) != string(c.SecretHash) || !next.CreatedAt.Equal(c.CreatedAt) {
		t.Fatalf("update: %v %q %+v", err, secret2, next)
	}
	if r := idp.ReviewChanges(c, next); len(r) != 0 {
		t.Errorf("identical metadata needs review: %v", r)
	}
}
