package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/sqlite"
)

// TestProofSource: the proofs the generator signs ahead, and those it
// signs once the batch is spent, are accepted by the API's verifier, each
// once (a replayed batch would be refused and count as errors).
func TestProofSource(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eph := sqlite.New(db)
	if err := eph.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	v := dpop.New(dpop.Config{}, eph)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const htu = "http://127.0.0.1:9/v1/home"
	p := &proofSource{key: key, htu: htu, token: "the-token"}
	if err := p.prepare(3); err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // three from the batch, two signed on the spot
		proof, err := p.get()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(t.Context(), []string{proof}, dpop.Check{Method: "GET", URL: htu, AccessToken: "the-token"}); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
		if _, err := v.Verify(t.Context(), []string{proof}, dpop.Check{Method: "GET", URL: htu, AccessToken: "the-token"}); err == nil {
			t.Fatalf("proof %d was accepted twice", i)
		}
	}
}

// TestRunAPIRefusesRemoteTargets: a hold file naming anything off
// loopback is refused before a request is sent.
func TestRunAPIRefusesRemoteTargets(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "hold.json")
	raw, _ := json.Marshal(map[string]string{"home": "http://example.org/v1/home", "token": "t",
		"dpop_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	if err := os.WriteFile(f, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	err = runAPI(t.Context(), apiOptions{file: f, runs: 1, conns: 1, workers: 1, fraction: 0.5}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("runAPI = %v, want a loopback refusal", err)
	}
}
