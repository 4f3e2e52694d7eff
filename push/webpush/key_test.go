package webpush_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/push/webpush"
)

func TestParseKey(t *testing.T) {
	key, err := webpush.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string][]byte{
		"PKCS #8 PEM":       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"SEC 1 PEM":         pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"raw base64url":     []byte(base64.RawURLEncoding.EncodeToString(raw) + "\n"),
		"padded base64url":  []byte(base64.URLEncoding.EncodeToString(raw)),
		"standard base64":   []byte(base64.StdEncoding.EncodeToString(raw)),
		"PEM with newlines": append([]byte("\n\n"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...),
	}
	want := newClientWithKey(t, key).PublicKey()
	for name, b := range forms {
		t.Run(name, func(t *testing.T) {
			got, err := webpush.ParseKey(b)
			if err != nil {
				t.Fatalf("ParseKey() = %v", err)
			}
			if !got.Equal(key) {
				t.Fatal("ParseKey() returned another key")
			}
			if pk := newClientWithKey(t, got).PublicKey(); pk != want {
				t.Errorf("PublicKey() = %s, want %s", pk, want)
			}
		})
	}

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384DER, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	bad := map[string][]byte{
		"empty":         nil,
		"P-384":         pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384DER}),
		"certificate":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pkcs8}),
		"broken PEM":    []byte("-----BEGIN PRIVATE KEY-----\n" + secret + "\n"),
		"31 bytes":      []byte(base64.RawURLEncoding.EncodeToString(raw[:31])),
		"zero scalar":   []byte(base64.RawURLEncoding.EncodeToString(make([]byte, 32))),
		"above order":   []byte(strings.Repeat("_", 43)),
		"not base64":    []byte(secret[:40] + "!!!"),
		"public key":    []byte(want),
		"corrupt PKCS8": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8[:40]}),
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := webpush.ParseKey(b)
			if err == nil {
				t.Fatal("ParseKey() = nil error")
			}
			if strings.Contains(err.Error(), secret[:16]) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
}

func newClientWithKey(t *testing.T, key *ecdsa.PrivateKey) *webpush.Client {
	t.Helper()
	c, err := webpush.New(webpush.Config{PrivateKey: key, Subject: subject, HTTPClient: http.DefaultClient})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
