package keyset

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/onedoor/onedoor/consent"
)

var _ consent.Signer = JWSSigner{}

// TestJWSSigner_VerifiesWithJWKS: a consent receipt is an ES256 JWS of its
// typ whose kid the published JWKS resolves, and which the key there
// verifies, so anyone holding the JWKS can check it.
func TestJWSSigner_VerifiesWithJWKS(t *testing.T) {
	m, _, _ := ensured(t)
	ctx := context.Background()
	jws, err := JWSSigner{Keys: m}.SignJWS(ctx, consent.ReceiptType, map[string]any{"iss": "https://id.test", "event": "granted"})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := sig.Signatures[0].Header
	if h.ExtraHeaders["typ"] != consent.ReceiptType {
		t.Errorf("typ %v, want %s", h.ExtraHeaders["typ"], consent.ReceiptType)
	}
	doc, err := m.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatal(err)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", h.KeyID, len(keys))
	}
	if _, err := sig.Verify(keys[0].Public()); err != nil {
		t.Errorf("receipt does not verify with the published key: %v", err)
	}
	if _, err := (JWSSigner{Keys: m}).SignJWS(ctx, "", nil); err == nil {
		t.Error("a JWS without typ was signed")
	}
}
