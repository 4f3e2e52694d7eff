package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// Legal bases: only for an existing agency, known items and a legal basis
// with its law; one live basis per agency and purpose; revoked by id.
func TestCLI_AgencyBasis(t *testing.T) {
	// Who changes a basis and why, for every change below.
	env := map[string]string{"ONEDOOR_DATA_DIR": migratedDir(t), "ONEDOOR_OPERATOR": "op.nguyen", "ONEDOOR_REASON": "Decree 13/2023 review"}
	if code, out, errOut := cli(t, env, "agency", "create", "--code", "BYT", "--name", "Bộ Y tế (demo)"); code != 0 {
		t.Fatalf("agency create: %d %s %s", code, out, errOut)
	}
	grant := []string{"agency", "grant-basis", "--agency", "BYT", "--purpose", "kham-benh", "--items", "name,birthdate",
		"--basis", "legal_obligation", "--law", "Luật Khám bệnh, chữa bệnh 2023, Điều 10"}
	code, out, errOut := cli(t, env, grant...)
	if code != 0 {
		t.Fatalf("grant-basis: %d %s %s", code, out, errOut)
	}
	var b basisView
	decode(t, out, &b)
	if !strings.HasPrefix(b.ID, "lb_") || b.Agency != "BYT" || b.Purpose != "kham-benh" || strings.Join(b.Items, ",") != "name,birthdate" ||
		b.Basis != "legal_obligation" || b.Law != "Luật Khám bệnh, chữa bệnh 2023, Điều 10" || b.CreatedAt.IsZero() {
		t.Errorf("granted %+v", b)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{grant[2:], 1, "already has a legal basis"},
		{[]string{"--agency", "NOPE", "--purpose", "p", "--items", "name", "--basis", "public_task", "--law", "L"}, 1, `no agency has the code "NOPE"`},
		{[]string{"--agency", "BYT", "--purpose", "p", "--items", "name,blood_type", "--basis", "public_task", "--law", "L"}, 1, `"blood_type" is not a registry item`},
		{[]string{"--agency", "BYT", "--purpose", "p", "--items", "name", "--basis", "consent", "--law", "L"}, 1, "--basis must be legal_obligation or public_task"},
		{[]string{"--agency", "BYT", "--purpose", "p q", "--items", "name", "--basis", "public_task", "--law", "L"}, 1, "--purpose must be"},
		{[]string{"--agency", "BYT", "--purpose", "p", "--items", "name", "--basis", "public_task", "--law", "L\x00"}, 1, "invalid"},
		{[]string{"--agency", "BYT", "--purpose", "p", "--items", "name", "--basis", "public_task"}, 2, "are required"},
	} {
		code, _, errOut := cli(t, env, append([]string{"agency", "grant-basis"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("grant-basis %q: exit %d %q, want %d saying %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	if code, _, _ := cli(t, env, "agency", "grant-basis", "--agency", "BYT", "--purpose", "tiem-chung", "--items", "name",
		"--basis", "public_task", "--law", "Luật Phòng bệnh"); code != 0 {
		t.Fatal("second purpose refused")
	}
	var list []basisView
	code, out, _ = cli(t, env, "agency", "bases", "--agency", "BYT")
	decodeList(t, out, "bases", &list)
	if code != 0 || len(list) != 2 {
		t.Fatalf("bases: %d %+v", code, list)
	}
	code, out, _ = cli(t, env, "agency", "bases", "--purpose", "kham-benh")
	decodeList(t, out, "bases", &list)
	if code != 0 || len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("bases --purpose: %d %+v", code, list)
	}
	if code, out, errOut := cli(t, env, "agency", "revoke-basis", b.ID); code != 0 || !strings.Contains(out, `"revoked": true`) {
		t.Fatalf("revoke-basis: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli(t, env, "agency", "revoke-basis", b.ID); code != 1 || !strings.Contains(errOut, "no live legal basis") {
		t.Errorf("revoke twice: %d %s", code, errOut)
	}
	if code, _, _ := cli(t, env, "agency", "revoke-basis"); code != 2 {
		t.Errorf("revoke-basis without an id: exit %d, want 2", code)
	}
	code, out, _ = cli(t, env, "agency", "bases")
	decodeList(t, out, "bases", &list)
	if code != 0 || len(list) != 1 || list[0].Purpose != "tiem-chung" {
		t.Fatalf("bases after revoke: %d %+v", code, list)
	}
	if code, _, _ := cli(t, env, grant...); code != 0 {
		t.Error("a new basis after revoking the old one was refused")
	}
}

func TestCLI_AuditVerify_SQLite(t *testing.T) {
	runAuditVerify(t, map[string]string{"ONEDOOR_DATA_DIR": t.TempDir()})
}

func TestCLI_AuditVerify_Postgres(t *testing.T) {
	runAuditVerify(t, map[string]string{"ONEDOOR_POSTGRES_DSN": dbtest.SchemaDSN(t), "ONEDOOR_MASTER_KEY_FILE": sharedMasterKey(t)})
}

// runAuditVerify edits the access log by hand, as an operator with SQL
// access could, and checks `onedoor audit verify` names the entry: an
// edited row by its hash, a rewritten chain (every later hash recomputed)
// by the checkpoint that committed its old head.
func runAuditVerify(t *testing.T, env map[string]string) {
	ctx := context.Background()
	if code, _, errOut := cli(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	m, _, err := adminMain(ctx, "test", nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var victim []*consent.Entry
	for i := range 4 {
		e := &consent.Entry{ID: consent.NewID("log"), CitizenID: "sub-victim", At: time.Now(), Actor: consent.Actor{Agency: "BYT", ClientID: "his"},
			// At the citizen's request: a release claiming a legal basis
			// or a consent must name one the trail granted or a record the
			// citizen gave (verified elsewhere).
			Channel: consent.ChannelBroker, Items: []string{"name", "birthdate"}, Purpose: "kham-benh", Basis: consent.BasisCitizenRequest,
			Outcome: consent.OutcomeReleased}
		if err := m.ConsentStore.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		victim = append(victim, e)
		if err := m.ConsentStore.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("sub-other-", i%2), At: time.Now(),
			Channel: consent.ChannelUserInfo, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := cli(t, env, "audit", "checkpoint")
	var cp struct {
		TreeSize    int64  `json:"tree_size"`
		Note        string `json:"note"`
		VerifierKey string `json:"verifier_key"`
	}
	decode(t, out, &cp)
	if code != 0 || cp.TreeSize != 3 {
		t.Fatalf("audit checkpoint: %d %s %s", code, out, errOut)
	}
	// Whoever keeps the printed note can check it with the printed key.
	if v, err := note.NewVerifier(cp.VerifierKey); err != nil {
		t.Fatalf("verifier key %q: %v", cp.VerifierKey, err)
	} else if _, err := note.Open([]byte(cp.Note), note.VerifierList(v)); err != nil {
		t.Fatalf("the printed checkpoint does not verify with the printed key: %v", err)
	}
	code, out, errOut = cli(t, env, "audit", "verify")
	var r consent.Report
	decode(t, out, &r)
	if code != 0 || !r.Intact() || r.Entries != 8 || r.Citizens != 3 || r.Checkpoints != 1 || r.TreeSize != 3 ||
		r.LastCheckpointSize != 3 || r.LastCheckpointAt == nil || time.Since(*r.LastCheckpointAt) > time.Minute {
		t.Fatalf("verify an untouched log: %d %+v %s", code, r, errOut)
	}

	// `audit checkpoint` run with the wrong master key refuses to build on
	// the checkpoints the right key signed, and says why.
	if err := m.ConsentStore.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: "sub-other-0", At: time.Now(),
		Channel: consent.ChannelUserInfo, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
		t.Fatal(err)
	}
	wrongEnv := map[string]string{"ONEDOOR_MASTER_KEY_FILE": sharedMasterKey(t)}
	for k, v := range env {
		if k != "ONEDOOR_MASTER_KEY_FILE" {
			wrongEnv[k] = v
		}
	}
	if code, out, errOut := cli(t, wrongEnv, "audit", "checkpoint"); code == 0 || !strings.Contains(errOut, "wrong master key") {
		t.Fatalf("audit checkpoint with the wrong master key: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := cli(t, env, "audit", "checkpoint"); code != 0 || !strings.Contains(out, `"tree_size": 4`) {
		t.Fatalf("audit checkpoint with the right key: %d %s %s", code, out, errOut)
	}

	// The newest checkpoint's row deleted: its leaf is covered by no
	// signature, which verify reports (and the next checkpoint explains).
	last, err := m.ConsentStore.LastCheckpoint(ctx)
	if err != nil || last.Size != 4 {
		t.Fatalf("last checkpoint: %+v, %v", last, err)
	}
	if _, err := m.DB.ExecContext(ctx, `DELETE FROM consent_checkpoints WHERE size = 4`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, env, "audit", "verify")
	r = consent.Report{}
	decode(t, out, &r)
	if code != 1 || r.Broken == nil || r.Broken.Leaf == nil || *r.Broken.Leaf != 3 || r.LastCheckpointSize != 3 ||
		!strings.Contains(errOut, "no signed checkpoint covers") {
		t.Fatalf("verify after removing the last checkpoint: exit %d, report %+v, stderr %s", code, r.Broken, errOut)
	}
	if err := m.ConsentStore.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: "sub-other-1", At: time.Now(),
		Channel: consent.ChannelUserInfo, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, env, "audit", "checkpoint"); code == 0 || !strings.Contains(errOut, "a checkpoint was removed; run onedoor audit verify") {
		t.Fatalf("audit checkpoint over uncovered leaves: %d %s", code, errOut)
	}
	if _, err := m.DB.ExecContext(ctx, `INSERT INTO consent_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)`,
		last.Size, last.Root, last.Note, sqldb.MS(last.CreatedAt)); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("verify after restoring the checkpoint: %d %s", code, errOut)
	}

	// One row edited by hand.
	if _, err := m.DB.ExecContext(ctx, `UPDATE consent_log SET agency = $1 WHERE id = $2`, "BCA", victim[1].ID); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, env, "audit", "verify")
	r = consent.Report{}
	decode(t, out, &r)
	if code != 1 || r.Broken == nil || r.Broken.EntryID != victim[1].ID || r.Broken.Seq != 2 ||
		!strings.Contains(errOut, "citizen sub-victim seq 2 entry "+victim[1].ID) {
		t.Fatalf("verify after editing a row: exit %d, report %+v, stderr %s", code, r.Broken, errOut)
	}
	if _, err := m.DB.ExecContext(ctx, `UPDATE consent_log SET agency = $1 WHERE id = $2`, "BYT", victim[1].ID); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("verify after undoing the edit: %d %s", code, errOut)
	}

	// The row rewritten and every later hash recomputed, head included:
	// the chain holds, the checkpoint does not.
	chain, err := m.ConsentStore.Chain(ctx, "sub-victim", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var prev *consent.Head
	for _, e := range chain {
		if e.Seq == 2 {
			e.Actor.Agency = "BCA"
		}
		if e.Seq >= 2 {
			e.Seal(prev)
			if _, err := m.DB.ExecContext(ctx, `UPDATE consent_log SET agency = $1, prev = $2, hash = $3 WHERE id = $4`,
				e.Actor.Agency, e.Prev, e.Hash, e.ID); err != nil {
				t.Fatal(err)
			}
		}
		prev = &consent.Head{CitizenID: e.CitizenID, Seq: e.Seq, Hash: e.Hash}
	}
	if _, err := m.DB.ExecContext(ctx, `UPDATE consent_chain_heads SET hash = $1 WHERE citizen_id = $2`, prev.Hash, "sub-victim"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, env, "audit", "verify")
	r = consent.Report{}
	decode(t, out, &r)
	if code != 1 || r.Broken == nil || r.Broken.EntryID != victim[3].ID || r.Broken.Leaf == nil ||
		!strings.Contains(errOut, "differs from what a checkpoint committed") {
		t.Fatalf("verify after rewriting the chain: exit %d, report %+v, stderr %s", code, r.Broken, errOut)
	}
}

// `audit flags` lists what citizens flagged "this wasn't me", newest
// first, optionally for one citizen.
func TestCLI_AuditFlags(t *testing.T) {
	env := map[string]string{"ONEDOOR_DATA_DIR": migratedDir(t)}
	ctx := context.Background()
	m, _, err := adminMain(ctx, "test", nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var ids []string
	for _, c := range []string{"sub-a", "sub-a", "sub-b"} {
		e := &consent.Entry{ID: consent.NewID("log"), CitizenID: c, At: time.Now(), Actor: consent.Actor{Agency: "BYT", ClientID: "his"},
			Channel: consent.ChannelBroker, Items: []string{"name"}, Outcome: consent.OutcomeReleased}
		if err := m.ConsentStore.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	code, out, _ := cli(t, env, "audit", "flags")
	var list []entryView
	if decodeList(t, out, "entries", &list); code != 0 || len(list) != 0 {
		t.Fatalf("no flags: %d %s", code, out)
	}
	if _, err := m.ConsentStore.FlagEntry(ctx, "sub-a", ids[1], "Tôi không đến bệnh viện này", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ConsentStore.FlagEntry(ctx, "sub-b", ids[2], "", time.Now()); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, env, "audit", "flags")
	decodeList(t, out, "entries", &list)
	if code != 0 || len(list) != 2 || list[0].ID != ids[2] || list[1].ID != ids[1] || list[1].FlagNote != "Tôi không đến bệnh viện này" ||
		list[1].FlaggedAt == nil || list[1].Agency != "BYT" || list[1].Seq != 2 {
		t.Fatalf("flags: %d %+v", code, list)
	}
	code, out, _ = cli(t, env, "audit", "flags", "--citizen", "sub-a")
	decodeList(t, out, "entries", &list)
	if code != 0 || len(list) != 1 || list[0].ID != ids[1] {
		t.Fatalf("flags --citizen: %d %+v", code, list)
	}
	for _, args := range [][]string{{"audit"}, {"audit", "nope"}, {"audit", "verify", "extra"}} {
		if code, _, _ := cli(t, env, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// The server commits checkpoints every --audit-checkpoint-interval, and
// the interval must be positive.
func TestServe_AuditCheckpoints(t *testing.T) {
	c := DefaultConfig()
	c.AuditCheckpointInterval = 0
	if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "--audit-checkpoint-interval must be positive") {
		t.Errorf("zero interval: %v", err)
	}
	var logs syncBuffer
	m := newTestMainLogging(t, &logs, slog.LevelInfo, func(c *Config) { c.AuditCheckpointInterval = 50 * time.Millisecond })
	ctx := context.Background()
	if err := m.ConsentStore.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: "sub-1", At: time.Now(),
		Channel: consent.ChannelUserInfo, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, err := m.ConsentStore.LastCheckpoint(ctx)
		if err == nil && cp.Size == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint within 5s: %+v, %v", cp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Each checkpoint logs one line with its size and heads.
	for !strings.Contains(logs.String(), `msg="audit checkpoint" size=1 heads=1`) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the checkpoint:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, v, err := m.AuditKeys()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := consent.Verify(ctx, m.ConsentStore, v); err != nil || !r.Intact() || r.Checkpoints != 1 {
		t.Fatalf("verify: %+v, %v", r, err)
	}
}

func TestCLI_AuditHelp(t *testing.T) {
	for _, args := range [][]string{{"audit", "--help"}, {"audit", "verify", "--help"}, {"audit", "flags", "-h"}, {"agency", "grant-basis", "--help"}} {
		code, out, errs := cli(t, nil, args...)
		if code != 0 || !strings.Contains(out, "onedoor audit verify") || errs != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	if _, out, _ := cli(t, nil, "agency", "grant-basis", "--help"); !strings.Contains(out, "-law") || !strings.Contains(out, "birthdate") {
		t.Errorf("grant-basis --help does not list its flags:\n%s", out)
	}
}

func TestCLI_BasisTrail_SQLite(t *testing.T) {
	runBasisTrail(t, map[string]string{"ONEDOOR_DATA_DIR": t.TempDir()})
}

func TestCLI_BasisTrail_Postgres(t *testing.T) {
	runBasisTrail(t, map[string]string{"ONEDOOR_POSTGRES_DSN": dbtest.SchemaDSN(t), "ONEDOOR_MASTER_KEY_FILE": sharedMasterKey(t)})
}

// runBasisTrail grants, amends and revokes a legal basis, reads the trail
// back with `agency bases --history`, and edits the trail and the basis by
// hand, as an operator with SQL access could: `audit verify` names each.
func runBasisTrail(t *testing.T, env map[string]string) {
	if code, _, errOut := cli(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	if code, _, errOut := cli(t, env, "agency", "create", "--code", "BYT", "--name", "Bộ Y tế (demo)"); code != 0 {
		t.Fatalf("agency create: %s", errOut)
	}
	grant := []string{"agency", "grant-basis", "--agency", "BYT", "--purpose", "kham-benh", "--items", "name",
		"--basis", "legal_obligation", "--law", "Luật KCB 2023, Điều 10"}
	// Nobody changes a basis anonymously or without a reason.
	for _, extra := range [][]string{nil, {"--operator", "op.a"}, {"--reason", "why"}, {"--operator", " ", "--reason", "why"}} {
		if code, _, errOut := cli(t, env, append(slices.Clone(grant), extra...)...); code != 2 || !strings.Contains(errOut, "--operator (or ONEDOOR_OPERATOR) and --reason are required") {
			t.Errorf("grant-basis with %q: exit %d %s", extra, code, errOut)
		}
	}
	code, out, errOut := cli(t, env, append(grant, "--operator", "op.a", "--reason", "Decision 123/QD-BYT")...)
	if code != 0 {
		t.Fatalf("grant-basis: %d %s", code, errOut)
	}
	var b basisView
	decode(t, out, &b)
	if b.Version != 1 {
		t.Fatalf("granted %+v", b)
	}
	env["ONEDOOR_OPERATOR"] = "op.b"
	if code, _, errOut := cli(t, env, "agency", "amend-basis", b.ID, "--items", "name,birthdate"); code != 2 || !strings.Contains(errOut, "--reason are required") {
		t.Errorf("amend-basis without a reason: %d %s", code, errOut)
	}
	code, out, errOut = cli(t, env, "agency", "amend-basis", b.ID, "--items", "name,birthdate", "--reason", "Circular 5/2026 adds the birth date")
	if code != 0 {
		t.Fatalf("amend-basis: %d %s", code, errOut)
	}
	var amended basisView
	decode(t, out, &amended)
	if amended.Version != 2 || strings.Join(amended.Items, ",") != "name,birthdate" || amended.Law != b.Law {
		t.Fatalf("amended %+v", amended)
	}
	if code, _, errOut := cli(t, env, "agency", "revoke-basis", b.ID, "--reason", "law repealed"); code != 0 {
		t.Fatalf("revoke-basis: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, env, "agency", "amend-basis", b.ID, "--law", "x", "--reason", "r"); code != 1 || !strings.Contains(errOut, "no live legal basis") {
		t.Errorf("amend a revoked basis: %d %s", code, errOut)
	}
	code, out, _ = cli(t, env, "agency", "bases", "--history")
	var events []basisEventView
	decodeList(t, out, "events", &events)
	if code != 0 || len(events) != 3 {
		t.Fatalf("bases --history: %d %s", code, out)
	}
	// Who typed the command, and the OS account and host that ran it.
	if host, _ := os.Hostname(); host == "" || !strings.HasPrefix(events[0].Operator, "op.a (os ") || !strings.HasSuffix(events[0].Operator, "@"+host+")") {
		t.Errorf("operator recorded: %q", events[0].Operator)
	}
	want := []struct{ action, operator, reason string }{
		{"granted", "op.a", "Decision 123/QD-BYT"}, {"amended", "op.b", "Circular 5/2026 adds the birth date"}, {"revoked", "op.b", "law repealed"}}
	for i, w := range want {
		e := events[i]
		if e.Action != w.action || e.Operator != operatorOnHost(w.operator) || e.Reason != w.reason || e.BasisID != b.ID || e.Seq != int64(i+1) || e.At.IsZero() {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
	}
	if events[0].Before != nil || events[0].After == nil || events[1].Before.Version != 1 || strings.Join(events[1].Before.Items, ",") != "name" ||
		events[1].After.Version != 2 || strings.Join(events[1].After.Items, ",") != "name,birthdate" || events[2].After != nil || events[2].Before.Version != 2 {
		t.Errorf("before/after: %+v", events)
	}
	if code, _, errOut := cli(t, env, "audit", "checkpoint"); code != 0 {
		t.Fatalf("audit checkpoint: %s", errOut)
	}
	code, out, errOut = cli(t, env, "audit", "verify")
	var r consent.Report
	decode(t, out, &r)
	if code != 0 || !r.Intact() || r.BasisEvents != 3 || r.LegalBases != 1 || r.TreeSize != 1 {
		t.Fatalf("verify an untouched trail: %d %+v %s", code, r, errOut)
	}

	m, _, err := adminMain(context.Background(), "test", nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := m.DB.ExecContext(context.Background(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	broken := func(what string) *consent.Problem {
		t.Helper()
		code, out, errOut := cli(t, env, "audit", "verify")
		var r consent.Report
		decode(t, out, &r)
		if code != 1 || r.Broken == nil || !strings.Contains(r.Broken.What, what) || !strings.Contains(errOut, "audit log broken") {
			t.Fatalf("audit verify: exit %d %+v %s, want broken saying %q", code, r.Broken, errOut, what)
		}
		return r.Broken
	}
	// The operator rewrites who granted it.
	exec(`UPDATE consent_basis_trail SET operator = 'someone.else' WHERE seq = 1`)
	if p := broken("its stored hash does not match"); p.EntryID != events[0].ID || p.Seq != 1 || p.CitizenID != consent.BasisTrailChain {
		t.Errorf("edited trail row: %+v", p)
	}
	exec(`UPDATE consent_basis_trail SET operator = $1 WHERE seq = 1`, events[0].Operator)
	// The operator brings the revoked basis back to life, wider.
	exec(`UPDATE consent_legal_bases SET revoked_at = NULL WHERE id = $1`, b.ID)
	if p := broken("revoked or restored by hand"); p.BasisID != b.ID {
		t.Errorf("restored basis: %+v", p)
	}
	// Restored with its time: the basis's times are checked against the
	// trail too.
	exec(`UPDATE consent_legal_bases SET revoked_at = 1 WHERE id = $1`, b.ID)
	if p := broken("its revocation time"); p.BasisID != b.ID {
		t.Errorf("revocation time edited: %+v", p)
	}
	exec(`UPDATE consent_legal_bases SET revoked_at = (SELECT at FROM consent_basis_trail WHERE basis_id = $1 AND action = 'revoked') WHERE id = $1`, b.ID)
	exec(`UPDATE consent_legal_bases SET items = '["name","birthdate","address"]' WHERE id = $1`, b.ID)
	if p := broken("edited by hand"); p.BasisID != b.ID {
		t.Errorf("widened basis: %+v", p)
	}
	exec(`UPDATE consent_legal_bases SET items = '["name","birthdate"]' WHERE id = $1`, b.ID)
	// A basis inserted without the command.
	exec(`INSERT INTO consent_legal_bases (id, agency, purpose, items, basis, law, created_at, revoked_at, version, updated_at)
		VALUES ('lb_forged', 'BYT', 'tax', '["name"]', 'public_task', 'none', 1, NULL, 1, 1)`)
	if p := broken("no trail"); p.BasisID != "lb_forged" {
		t.Errorf("forged basis: %+v", p)
	}
	exec(`DELETE FROM consent_legal_bases WHERE id = 'lb_forged'`)
	// The last event removed, with the head moved back: the checkpoint
	// committed it.
	exec(`DELETE FROM consent_basis_trail WHERE seq = 3`)
	exec(`UPDATE consent_chain_heads SET seq = 2, hash = (SELECT hash FROM consent_basis_trail WHERE seq = 2) WHERE citizen_id = $1`, consent.BasisTrailChain)
	if p := broken("entries were removed"); p.CitizenID != consent.BasisTrailChain || p.Seq != 3 {
		t.Errorf("removed trail event: %+v", p)
	}
}
