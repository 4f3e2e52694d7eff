package a11ytest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVendoredFiles: the embedded axe-core is the one update.sh recorded.
func TestVendoredFiles(t *testing.T) {
	sums, err := os.ReadFile("SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	n := 0
	for sc.Scan() {
		want, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("bad SHA256SUMS line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join("assets", name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, want %s (run update.sh, do not edit)", name, got, want)
		}
		n++
	}
	if n != 4 {
		t.Errorf("SHA256SUMS lists %d files, want 4", n)
	}
	if !strings.HasPrefix(Version(), "4.") || !strings.Contains(axeJS[:200], "axe v"+Version()) {
		t.Errorf("version %q does not match the embedded script's header %.80q", Version(), axeJS)
	}
}
