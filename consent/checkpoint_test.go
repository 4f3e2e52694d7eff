package consent

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestFrontier_MatchesTreeHash checks Verify's O(log n) tree builder
// against tlog's own TreeHash over the stored hashes, at every size.
func TestFrontier_MatchesTreeHash(t *testing.T) {
	var (
		f      frontier
		stored []tlog.Hash
	)
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for n := range int64(70) {
		data := leafData(fmt.Sprint("cit", n), n+1, []byte{byte(n)})
		hs, err := tlog.StoredHashes(n, data, reader)
		if err != nil {
			t.Fatal(err)
		}
		// push names the hashes tlog stores for the leaf, at their indexes.
		for i, h := range f.push(n, tlog.RecordHash(data), nil) {
			if h.index != int64(len(stored)+i) || i >= len(hs) || h.hash != hs[i] {
				t.Fatalf("leaf %d: pushed hash %d at %d, tlog stores %d hashes from %d", n, i, h.index, len(hs), len(stored))
			}
		}
		stored = append(stored, hs...)
		want, err := tlog.TreeHash(n+1, reader)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.root(); got != want {
			t.Fatalf("size %d: frontier root %v, tlog %v", n+1, got, want)
		}
	}
}

func TestCheckpointKeys_Deterministic(t *testing.T) {
	seed := sha256.Sum256([]byte("seed"))
	s1, _, err := CheckpointKeys(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	_, v2, err := CheckpointKeys(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("other"))
	_, v3, err := CheckpointKeys(other[:])
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: checkpointText(3, tlog.Hash{1})}, s1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v2)); err != nil {
		t.Fatalf("the same seed on another replica does not verify: %v", err)
	}
	if _, err := note.Open(msg, note.VerifierList(v3)); err == nil {
		t.Fatal("another seed's key verified the checkpoint")
	}
	vkey, err := CheckpointVerifierKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	published, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(published)); err != nil || !strings.HasPrefix(vkey, CheckpointKeyName+"+") {
		t.Fatalf("the published key %q does not verify: %v", vkey, err)
	}
	if _, _, err := CheckpointKeys(seed[:31]); err == nil {
		t.Fatal("a short seed was accepted")
	}
	size, root, err := parseCheckpointText(checkpointText(3, tlog.Hash{1}))
	if err != nil || size != 3 || !bytes.Equal(root, (&tlog.Hash{1})[:]) {
		t.Fatalf("checkpoint text round trip: %d %x %v", size, root, err)
	}
}

func TestProblem_ErrorNamesTheTrailAndBasis(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{CitizenID: BasisTrailChain, Seq: 2, EntryID: "lbe_1", BasisID: "lb_1", What: "x"},
			"audit log broken: legal-basis trail seq 2 entry lbe_1 basis lb_1: x"},
		{Problem{BasisID: "lb_1", What: "edited"}, "audit log broken: basis lb_1: edited"},
		{Problem{CitizenID: "cit", Seq: 1, What: "y"}, "audit log broken: citizen cit seq 1: y"},
	} {
		if got := tc.p.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
