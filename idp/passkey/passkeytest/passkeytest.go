// Package passkeytest is a software WebAuthn authenticator (ES256, fmt none,
// discoverable credentials) for tests of the passkey ceremonies, with knobs
// for the attacker's cases: another origin, no user verification, a counter
// that goes backwards. Only _test.go files may import it.
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator holds one credential once Create has run.
type Authenticator struct {
	Key          *ecdsa.PrivateKey
	CredentialID []byte
	UserHandle   []byte
	RPID         string
	// Counter is the signature counter the next assertion carries (after
	// incrementing it, unless KeepCounter).
	Counter     uint32
	KeepCounter bool
}

// Flags of the authenticator data.
const (
	FlagUP = 0x01
	FlagUV = 0x04
	FlagBE = 0x08
	FlagBS = 0x10
	FlagAT = 0x40
)

// Options change one ceremony response.
type Options struct {
	Origin string // clientDataJSON origin
	// Flags replaces the default UP|UV (plus AT at registration).
	Flags     byte
	SetFlags  bool
	Type      string // clientDataJSON type; default webauthn.create / webauthn.get
	Challenge string // overrides the options' challenge (base64url)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// creationOptions is the part of PublicKeyCredentialCreationOptions we read.
type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
	} `json:"publicKey"`
}

// Create answers navigator.credentials.create options (the JSON the server
// sent) with a registration response as the page's script posts it.
func (a *Authenticator) Create(options []byte, o Options) ([]byte, error) {
	var co creationOptions
	if err := json.Unmarshal(options, &co); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	a.Key = key
	a.CredentialID = make([]byte, 32)
	_, _ = rand.Read(a.CredentialID)
	if a.UserHandle, err = base64.RawURLEncoding.DecodeString(co.PublicKey.User.ID); err != nil {
		return nil, fmt.Errorf("user id: %w", err)
	}
	a.RPID = co.PublicKey.RP.ID
	flags := byte(FlagUP | FlagUV | FlagAT)
	if o.SetFlags {
		flags = o.Flags | FlagAT
	}
	ch := co.PublicKey.Challenge
	if o.Challenge != "" {
		ch = o.Challenge
	}
	cd, err := clientData(firstNonEmpty(o.Type, "webauthn.create"), ch, o.Origin)
	if err != nil {
		return nil, err
	}
	ecdh, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := ecdh.Bytes() // 0x04 || X || Y
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:65]})
	if err != nil {
		return nil, err
	}
	auth := a.authData(flags, 0)
	auth = append(auth, make([]byte, 16)...)                                // AAGUID
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(a.CredentialID))) // #nosec G115 -- 32 bytes
	auth = append(auth, a.CredentialID...)
	auth = append(auth, cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64(a.CredentialID), "rawId": b64(a.CredentialID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64(cd), "attestationObject": b64(att), "transports": []string{"internal"},
		},
	})
}

// Get answers navigator.credentials.get options with an assertion.
func (a *Authenticator) Get(options []byte, o Options) ([]byte, error) {
	if a.Key == nil {
		return nil, errors.New("passkeytest: no credential (call Create first)")
	}
	var ro requestOptions
	if err := json.Unmarshal(options, &ro); err != nil {
		return nil, err
	}
	ch := ro.PublicKey.Challenge
	if o.Challenge != "" {
		ch = o.Challenge
	}
	return a.Assert(ch, o)
}

// Assert signs an assertion over challenge (base64url).
func (a *Authenticator) Assert(challenge string, o Options) ([]byte, error) {
	if !a.KeepCounter {
		a.Counter++
	}
	flags := byte(FlagUP | FlagUV)
	if o.SetFlags {
		flags = o.Flags
	}
	cd, err := clientData(firstNonEmpty(o.Type, "webauthn.get"), challenge, o.Origin)
	if err != nil {
		return nil, err
	}
	auth := a.authData(flags, a.Counter)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, auth...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.Key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64(a.CredentialID), "rawId": b64(a.CredentialID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64(cd), "authenticatorData": b64(auth), "signature": b64(sig), "userHandle": b64(a.UserHandle),
		},
	})
}

func (a *Authenticator) authData(flags byte, counter uint32) []byte {
	rp := sha256.Sum256([]byte(a.RPID))
	out := append([]byte{}, rp[:]...)
	out = append(out, flags)
	return binary.BigEndian.AppendUint32(out, counter)
}

func clientData(typ, challenge, origin string) ([]byte, error) {
	return json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
