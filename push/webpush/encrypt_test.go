package webpush

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
)

// RFC 8291 Appendix A, "Push Message Encryption Example".
const (
	rfcPlaintext = "When I grow up, I want to be a watermelon"
	rfcASPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
	rfcASPublic  = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
	rfcUAPublic  = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	rfcAuth      = "BTBZMqHH6r4Tts7J_aSIgg"
	rfcSalt      = "DGv6ra1nlYgDCS1FRnbzlw"
	rfcBody      = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return b
}

func TestEncrypt_RFC8291AppendixA(t *testing.T) {
	as, err := ecdh.P256().NewPrivateKey(b64(t, rfcASPrivate))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(as.PublicKey().Bytes()); got != rfcASPublic {
		t.Fatalf("as_public = %s, want %s", got, rfcASPublic)
	}
	ua, err := ecdh.P256().NewPublicKey(b64(t, rfcUAPublic))
	if err != nil {
		t.Fatal(err)
	}
	body, err := encrypt([]byte(rfcPlaintext), ua, b64(t, rfcAuth), as, b64(t, rfcSalt), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(body); got != rfcBody {
		t.Errorf("body\n got %s\nwant %s", got, rfcBody)
	}
}

func TestEncrypt_Sizes(t *testing.T) {
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth, salt := make([]byte, 16), make([]byte, 16)
	tests := []struct {
		plaintext, pad, body int
	}{
		{0, 0, headerLen + 1 + tagLen},
		{0, padBlock, headerLen + padBlock + tagLen},
		{padBlock - 1, padBlock, headerLen + padBlock + tagLen},
		{padBlock, padBlock, headerLen + 2*padBlock + tagLen},
		{MaxPayloadSize, padBlock, maxBody},
		{MaxPayloadSize - 1, padBlock, maxBody},
		{MaxPayloadSize, 0, maxBody},
	}
	for _, tt := range tests {
		body, err := encrypt(bytes.Repeat([]byte{'x'}, tt.plaintext), ua.PublicKey(), auth, as, salt, tt.pad)
		if err != nil {
			t.Fatalf("encrypt(%d bytes, pad %d) = %v", tt.plaintext, tt.pad, err)
		}
		if len(body) != tt.body {
			t.Errorf("encrypt(%d bytes, pad %d) = %d bytes, want %d", tt.plaintext, tt.pad, len(body), tt.body)
		}
	}
	if _, err := encrypt(make([]byte, MaxPayloadSize+1), ua.PublicKey(), auth, as, salt, 0); !errors.Is(err, errPayloadTooLarge) {
		t.Errorf("encrypt(MaxPayloadSize+1) = %v, want errPayloadTooLarge", err)
	}
}

// BenchmarkSeal is the sender's cryptographic cost per message: a fresh key
// pair, ECDH, HKDF and AES-GCM.
func BenchmarkSeal(b *testing.B) {
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	c := &Client{random: rand.Reader}
	plaintext := bytes.Repeat([]byte{'x'}, 200)
	auth := make([]byte, 16)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.seal(plaintext, ua.PublicKey(), auth); err != nil {
			b.Fatal(err)
		}
	}
}
