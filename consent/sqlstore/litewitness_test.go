package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// litewitness starts filippo.io/torchwood's litewitness (v0.6.1), an
// independent c2sp.org/tlog-witness implementation, that knows the audit
// log with verifier vkey. ONEDOOR_TEST_LITEWITNESS names a directory with
// its litewitness and witnessctl binaries (GOBIN=DIR go install
// filippo.io/torchwood/cmd/litewitness@v0.6.1
// filippo.io/torchwood/cmd/witnessctl@v0.6.1); the key is held by an
// ssh-agent (openssh-client). Without them the test skips, or fails when
// CI=true.
func litewitness(t *testing.T, vkey string) *consent.Witness {
	t.Helper()
	bin := os.Getenv("ONEDOOR_TEST_LITEWITNESS")
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ONEDOOR_TEST_LITEWITNESS is unset under CI=true")
		}
		t.Skip("ONEDOOR_TEST_LITEWITNESS is unset")
	}
	for _, tool := range []string{"ssh-keygen", "ssh-agent", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	dir := t.TempDir()
	run := func(env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...) // #nosec G204 G702 -- test tools
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	key := filepath.Join(dir, "witness")
	run(nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", key)
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock) // #nosec G204 G702 -- test tool
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	waitFor(t, func() bool { _, err := os.Stat(sock); return err == nil })
	run([]string{"SSH_AUTH_SOCK=" + sock}, "ssh-add", key)
	pubText, err := os.ReadFile(key + ".pub") // #nosec G304 -- the test's temp dir
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	edKey := ed25519.PublicKey(pub.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey))

	db := filepath.Join(dir, "litewitness.db")
	ctl := filepath.Join(bin, "witnessctl")
	run(nil, ctl, "add-log", "-db", db, "-origin", consent.CheckpointOrigin)
	run(nil, ctl, "add-key", "-db", db, "-origin", consent.CheckpointOrigin, "-key", vkey)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var logs bytes.Buffer
	lw := exec.Command(filepath.Join(bin, "litewitness"), "-db", db, "-name", "witness.test/litewitness", // #nosec G204 G702 -- test tool
		"-key", ssh.FingerprintSHA256(pub), "-ssh-agent", sock, "-listen", addr)
	lw.Stdout, lw.Stderr = &logs, &logs
	if err := lw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = lw.Process.Kill()
		_ = lw.Wait()
		if t.Failed() {
			t.Logf("litewitness:\n%s", logs.String())
		}
	})
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	w, err := consent.NewWitness("witness.test/litewitness", edKey, "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// waitFor polls ok until it holds (a process starting), failing after a
// minute.
func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestWitness_Litewitness cosigns the audit log's checkpoints with
// litewitness: its consistency-proof checks accept OneDoor's proofs, and
// consent verifies its cosignatures; a rewritten log is refused.
func TestWitness_Litewitness(t *testing.T) {
	signer, verifier := consenttest.Keys(t, "a")
	vkey := consenttest.VerifierKey(t, "a")
	w := litewitness(t, vkey)
	s := migrated(t, dbtest.SQLite(t), sqldb.SQLite)
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	cs := &consent.Cosigner{Store: s, Witnesses: []*consent.Witness{w}, Client: &http.Client{Timeout: 30 * time.Second}}
	var last *consent.Checkpoint
	for round := range 4 {
		for i := range round + 2 {
			if err := s.Append(t.Context(), &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_" + string(rune('a'+i)), At: time.Now(),
				Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
				t.Fatal(err)
			}
		}
		c, err := cp.Commit(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.Cosign(t.Context()); err != nil {
			t.Fatalf("round %d (size %d): %v", round, c.Size, err)
		}
		last = c
	}
	r, err := consent.Verify(t.Context(), s, verifier)
	if err != nil || !r.Intact() {
		t.Fatalf("%v, %v", r, err)
	}
	if err := consent.VerifyWitnesses(t.Context(), s, []*consent.Witness{w}, 1, r); err != nil || !r.Intact() || r.WitnessedSize != last.Size {
		t.Fatalf("witnessed %d want %d: %v, %v", r.WitnessedSize, last.Size, r.Broken, err)
	}
	_, n, err := consent.CosignedNote(t.Context(), s)
	if err != nil || !strings.Contains(n, "— witness.test/litewitness ") {
		t.Fatalf("cosigned note %q: %v", n, err)
	}

	// A rewritten log, signed with the same key: litewitness holds the
	// honest size and no proof leads from it to the forged tree.
	forged := migrated(t, dbtest.SQLite(t), sqldb.SQLite)
	fcp := &consent.Checkpointer{Store: forged, Signer: signer, Verifier: verifier}
	for i := range int(last.Size) + 1 {
		if err := forged.Append(t.Context(), &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_f" + string(rune('a'+i)), At: time.Now(),
			Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fcp.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	err = (&consent.Cosigner{Store: forged, Witnesses: []*consent.Witness{w}}).Cosign(t.Context())
	if !errors.Is(err, consent.ErrWitnessRefused) {
		t.Fatalf("the forged log: %v, want refused", err)
	}
}
