package consent_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/onedoor/onedoor/consent"
)

// cosigned returns a witness, a checkpoint text's size and root, and the
// witness's response body cosigning it, made with torchwood's signer.
func cosigned(t testing.TB) (*consent.Witness, int64, []byte, []byte) {
	seed := sha256.Sum256([]byte("fuzz witness"))
	s, err := torchwood.NewCosignatureSigner("witness.example/w", ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	w, err := consent.ParseWitness(s.Verifier().String() + "@https://witness.example")
	if err != nil {
		t.Fatal(err)
	}
	root := sha256.Sum256([]byte("root"))
	text := consent.CheckpointOrigin + "\n7\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
	n, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return w, 7, root[:], n[len(text)+1:]
}

func TestWitness_ParseCosignature(t *testing.T) {
	w, size, root, body := cosigned(t)
	c, err := consent.ParseCosignature(body, w, size, root)
	if err != nil || c.Size != size || !c.Verify(w) || c.Line() != string(body) {
		t.Fatalf("%+v, %v; line %q want %q", c, err, c.Line(), body)
	}
	other := bytes.Clone(root)
	other[0] ^= 1
	if _, err := consent.ParseCosignature(body, w, size, other); err == nil {
		t.Fatal("another root verified")
	}
	if _, err := consent.ParseCosignature(body, w, size+1, root); err == nil {
		t.Fatal("another size verified")
	}
}

func TestWitness_ParseWitness(t *testing.T) {
	w, _, _, _ := cosigned(t)
	vkey := w.String()
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{vkey + "@https://witness.example/prefix", true},
		{vkey + "@http://127.0.0.1:8080", true},
		{vkey, false},
		{vkey + "@ftp://x", false},
		{vkey + "@https://user@x", false},
		{"name+00000000+" + base64.StdEncoding.EncodeToString(append([]byte{4}, make([]byte, 32)...)) + "@https://x", false}, // wrong hash
		{"onedoor-audit+12345678+" + base64.StdEncoding.EncodeToString(append([]byte{1}, make([]byte, 32)...)) + "@https://x", false},
	} {
		_, err := consent.ParseWitness(tc.spec)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, consent.ErrInvalid)) {
			t.Errorf("%q: %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}

// FuzzParseCosignature: whatever a witness answers, the parser never
// panics, and what it accepts verifies with the witness's key over the
// checkpoint asked for, so it is the one valid line (no forgery from
// mangled input).
func FuzzParseCosignature(f *testing.F) {
	w, size, root, body := cosigned(f)
	f.Add(body)
	f.Add([]byte("— witness.example/w AAAA\n"))
	f.Add(append([]byte("— other.example/x AAAAAAAA\n"), body...))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := consent.ParseCosignature(b, w, size, root)
		if err != nil {
			return
		}
		if !c.Verify(w) || c.Size != size || !bytes.Equal(c.Root, root) || !bytes.Contains(b, []byte(c.Line())) {
			t.Fatalf("accepted %q as %+v", b, c)
		}
	})
}

// FuzzParseAddCheckpoint: a witness's request parser round-trips what it
// accepts through AddCheckpointBody.
func FuzzParseAddCheckpoint(f *testing.F) {
	h := tlog.RecordHash([]byte("x"))
	f.Add(consent.AddCheckpointBody(3, tlog.TreeProof{h, h}, "note\n"))
	f.Add(consent.AddCheckpointBody(0, nil, ""))
	f.Add([]byte("old 01\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		old, proof, n, err := consent.ParseAddCheckpoint(b)
		if err != nil {
			return
		}
		if got := consent.AddCheckpointBody(old, proof, string(n)); !bytes.Equal(got, b) {
			t.Fatalf("%q parsed and written again as %q", b, got)
		}
	})
}
