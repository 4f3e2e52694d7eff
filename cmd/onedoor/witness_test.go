package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/internal/dbtest"
)

func TestCLI_AuditVerifyWitnessed_SQLite(t *testing.T) {
	runAuditVerifyWitnessed(t, map[string]string{"ONEDOOR_DATA_DIR": t.TempDir()})
}

func TestCLI_AuditVerifyWitnessed_Postgres(t *testing.T) {
	runAuditVerifyWitnessed(t, map[string]string{"ONEDOOR_POSTGRES_DSN": dbtest.SchemaDSN(t), "ONEDOOR_MASTER_KEY_FILE": sharedMasterKey(t)})
}

// runAuditVerifyWitnessed: a witness cosigns the checkpoints; `onedoor
// audit verify --audit-witness` reports the witnessed size; then the
// operator rewrites the whole history and signs it again with the key it
// holds. Verify without witnesses cannot tell; with them it names the
// witnessed checkpoint whose root changed.
func runAuditVerifyWitnessed(t *testing.T, env map[string]string) {
	ctx := context.Background()
	if code, _, errOut := cli(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	m, _, err := adminMain(ctx, "test", nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, verifier, err := m.AuditKeys()
	if err != nil {
		t.Fatal(err)
	}
	w := consenttest.NewWitness(t, "witness.example/cli", verifier)
	flag := w.Consent.String() + "@" + w.Consent.URL
	appendAs := func(citizen, purpose string, n int) {
		for range n {
			if err := m.ConsentStore.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: citizen, At: time.Now(), Actor: consent.Actor{Agency: "BYT", ClientID: "his"},
				Channel: consent.ChannelBroker, Items: []string{"name"}, Purpose: purpose, Basis: consent.BasisCitizenRequest, Outcome: consent.OutcomeReleased}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendAs("sub-victim", "kham-benh", 3)
	appendAs("sub-other", "kham-benh", 1)
	cp, err := m.Checkpointer.Commit(ctx)
	if err != nil || cp == nil {
		t.Fatalf("commit: %v", err)
	}
	cs := &consent.Cosigner{Store: m.ConsentStore, Witnesses: []*consent.Witness{w.Consent}}
	if err := cs.Cosign(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, env, "audit", "verify", "--audit-witness", flag)
	var r consent.Report
	decode(t, out, &r)
	if code != 0 || r.WitnessedSize != cp.Size || len(r.Witnessed) != 1 || r.Witnessed[0].Witness != "witness.example/cli" {
		t.Fatalf("verify: %d %+v %s", code, r, errOut)
	}
	for _, bad := range [][]string{{"--audit-witness", "nope@https://x"}, {"--audit-witness", flag, "--audit-witness-quorum", "2"}} {
		if code, _, errOut := cli(t, env, append([]string{"audit", "verify"}, bad...)...); code != 2 {
			t.Errorf("verify %q: exit %d (%s), want 2", bad, code, errOut)
		}
	}

	// The rewrite: every access-log table emptied but the cosignatures
	// (which the operator cannot make again), another history of the same
	// size appended and signed with the platform's key.
	for _, table := range []string{"consent_log", "consent_chain_heads", "consent_tree_leaves", "consent_tree_hashes", "consent_checkpoints"} {
		if _, err := m.DB.ExecContext(ctx, `DELETE FROM `+table); err != nil { // #nosec G202 -- fixed names
			t.Fatal(err)
		}
	}
	appendAs("sub-other", "kham-benh", 1)
	appendAs("sub-victim", "nothing-to-see", 3)
	forged, err := m.Checkpointer.Commit(ctx)
	if err != nil || forged == nil || forged.Size != cp.Size {
		t.Fatalf("forged commit: %+v %v", forged, err)
	}
	if code, out, errOut := cli(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("without witnesses the rewrite passes (the gap witnesses close), got %d %s %s", code, out, errOut)
	}
	code, out, errOut = cli(t, env, "audit", "verify", "--audit-witness", flag)
	r = consent.Report{}
	decode(t, out, &r)
	if code != 1 || r.Broken == nil || r.Broken.Checkpoint != cp.Size || !strings.Contains(errOut, "rewritten") {
		t.Fatalf("verify the rewrite: %d %+v %s", code, r.Broken, errOut)
	}
	// And the witness refuses the rewritten log's next checkpoint.
	appendAs("sub-new", "kham-benh", 1)
	if _, err := m.Checkpointer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cs.Cosign(ctx); err == nil || !strings.Contains(err.Error(), consent.ErrWitnessRefused.Error()) {
		t.Fatalf("cosign the rewrite: %v", err)
	}
}

// TestServe_AuditPublished: the IdP serves the cosigned checkpoint, the
// keys and consistency proofs without a token; bad sizes get problem+json.
func TestServe_AuditPublished(t *testing.T) {
	env := map[string]string{"ONEDOOR_DATA_DIR": t.TempDir()}
	if code, _, errOut := cli(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	ctx := context.Background()
	m, _, err := adminMain(ctx, "test", nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, verifier, err := m.AuditKeys()
	if err != nil {
		t.Fatal(err)
	}
	w := consenttest.NewWitness(t, "witness.example/serve", verifier)
	m.Cosigner.Witnesses = []*consent.Witness{w.Consent}
	for i := range 3 {
		if err := m.ConsentStore.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("sub-", i), At: time.Now(),
			Channel: consent.ChannelUserInfo, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Checkpointer.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Cosigner.Cosign(ctx); err != nil {
		t.Fatal(err)
	}
	h := m.idpHandler(http.NotFoundHandler())
	get := func(path string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, rec.Header().Get("Content-Type"), string(b)
	}
	code, ct, body := get("/audit/v1/checkpoint")
	if code != 200 || !strings.HasPrefix(ct, "text/plain") || !strings.HasPrefix(body, consent.CheckpointOrigin+"\n3\n") ||
		!strings.Contains(body, "— onedoor-audit ") || !strings.Contains(body, "— witness.example/serve ") {
		t.Fatalf("checkpoint: %d %s %q", code, ct, body)
	}
	if code, _, body := get("/audit/v1/keys"); code != 200 || !strings.Contains(body, w.Consent.String()) || !strings.Contains(body, `"origin":"onedoor audit log v1"`) {
		t.Fatalf("keys: %d %s", code, body)
	}
	if code, _, body := get("/audit/v1/consistency?from=1&to=3"); code != 200 || !strings.Contains(body, `"proof":[`) {
		t.Fatalf("consistency: %d %s", code, body)
	}
	for _, q := range []string{"from=0&to=3", "from=2&to=1", "from=1&to=4", "from=1", "from=x&to=3", "from=1&from=1&to=3", "from=01&to=3"} {
		if code, ct, body := get("/audit/v1/consistency?" + q); code != 400 || ct != "application/problem+json" || !strings.Contains(body, "invalid-request") {
			t.Errorf("%s: %d %s %s", q, code, ct, body)
		}
	}

	// The witness goes down: the next checkpoint is not cosigned, so the
	// checkpoint served and proofs stay at the witnessed size 3.
	w.FailWith(http.StatusServiceUnavailable)
	if err := m.ConsentStore.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: "sub-0", At: time.Now(),
		Channel: consent.ChannelUserInfo, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Checkpointer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Cosigner.Cosign(ctx); err == nil {
		t.Fatal("cosigned with the witness down")
	}
	if code, _, body := get("/audit/v1/checkpoint"); code != 200 || !strings.HasPrefix(body, consent.CheckpointOrigin+"\n3\n") || !strings.Contains(body, "— witness.example/serve ") {
		t.Fatalf("checkpoint with the witness down: %d %q", code, body)
	}
	pub := &consent.Published{Store: m.ConsentStore, Witnesses: m.Cosigner.Witnesses}
	in, err := pub.ProveInclusion(ctx, "sub-0", 0)
	if err != nil || in.TreeSize != 3 || in.Seq != 1 {
		t.Fatalf("proof with the witness down: %+v %v", in, err)
	}
	if _, err := pub.ProveInclusion(ctx, "sub-0", 2); !errors.Is(err, consent.ErrNotFound) {
		t.Fatalf("proof of the unwitnessed entry: %v", err)
	}
	// Without witnesses, the latest checkpoint is published.
	if in, err := (&consent.Published{Store: m.ConsentStore}).ProveInclusion(ctx, "sub-0", 0); err != nil || in.TreeSize != 4 || in.Seq != 2 {
		t.Fatalf("proof without witnesses: %+v %v", in, err)
	}
	_ = m.Close()
}

// TestConfig_WitnessesDeduplicated: one witness given twice, by its key or
// its URL under another name, would count twice towards the quorum.
func TestConfig_WitnessesDeduplicated(t *testing.T) {
	spec := func(name string, key ed25519.PublicKey, url string) string {
		w, err := consent.NewWitness(name, key, url)
		if err != nil {
			t.Fatal(err)
		}
		return w.String() + "@" + w.URL
	}
	k1, _, _ := ed25519.GenerateKey(nil)
	k2, _, _ := ed25519.GenerateKey(nil)
	ok := []string{spec("w.example/a", k1, "https://a.example"), spec("w.example/b", k2, "https://b.example")}
	if ws, err := (&Config{AuditWitnesses: ok}).Witnesses(); err != nil || len(ws) != 2 {
		t.Fatalf("two witnesses: %d, %v", len(ws), err)
	}
	for name, dup := range map[string]string{
		"same name": spec("w.example/a", k2, "https://c.example"),
		"same key":  spec("w.example/c", k1, "https://c.example"),
		"same URL":  spec("w.example/c", k2, "https://a.example/"),
	} {
		if _, err := (&Config{AuditWitnesses: []string{ok[0], dup}}).Witnesses(); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
