package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ProofRequest is what a client's proof states.
type ProofRequest struct {
	Method, URL string
	// AccessToken, when set, adds its ath (requests to resource servers).
	AccessToken string
	// Nonce is the last DPoP-Nonce the server sent, if any.
	Nonce string
	Now   time.Time
}

// NewProof signs a proof with key (an ECDSA P-256 key signs ES256, an RSA
// key PS256), embedding its public key. It is the client side, for the
// reference eID app (cmd/eidsim) and tests.
func NewProof(key crypto.Signer, r ProofRequest) (string, error) {
	var alg jose.SignatureAlgorithm
	switch key.(type) {
	case *ecdsa.PrivateKey:
		alg = jose.ES256
	case *rsa.PrivateKey:
		alg = jose.PS256
	default:
		return "", errors.New("dpop: unsupported key type")
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(Type))
	if err != nil {
		return "", err
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	c := struct {
		jwt.Claims
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		ATH   string `json:"ath,omitempty"`
		Nonce string `json:"nonce,omitempty"`
	}{Claims: jwt.Claims{ID: rand.Text(), IssuedAt: jwt.NewNumericDate(r.Now)}, HTM: r.Method, HTU: r.URL, Nonce: r.Nonce}
	if r.AccessToken != "" {
		c.ATH = TokenHash(r.AccessToken)
	}
	return jwt.Signed(sig).Claims(c).Serialize()
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint (base64url) of a public key:
// the dpop_jkt a client sends at PAR or /authorize.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return b64(sum), nil
}
