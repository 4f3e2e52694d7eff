package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/dbtest"
)

// TestCLI_EveryCommandNamesItsStore runs every admin command that succeeds
// and checks that its JSON output is an object naming the store it used.
func TestCLI_EveryCommandNamesItsStore(t *testing.T) {
	e := startMain(t)
	dir := e.m.Config.DataDir
	want := "sqlite:" + filepath.Join(absPath(dir), "onedoor.db")
	second := e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)

	// Each step may use what an earlier one printed.
	var clientID, basisID, tokenID string
	file := filepath.Join(t.TempDir(), "c.csv")
	if err := os.WriteFile(file, []byte("personal_id,family_name,given_name,birthdate,gender,address,phone_number\n"+
		"000000000191,Lê,Văn Demo,1990-01-01,male,Huế (giả),+84900000191\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args  []string
		after func(out map[string]json.RawMessage)
	}{
		{args: []string{"migrate"}},
		{args: []string{"client", "create", "--name", "Sở Demo", "--redirect-uri", "https://agency.example/cb"},
			after: func(out map[string]json.RawMessage) { _ = json.Unmarshal(out["client_id"], &clientID) }},
		{args: []string{"client", "list"}},
		{args: []string{"client", "show", "CLIENT"}},
		{args: []string{"client", "delete", "CLIENT"}},
		{args: []string{"citizen", "import", file}},
		{args: []string{"citizen", "list"}},
		{args: []string{"citizen", "show", "--id", demoCitizens[0].PersonalID}},
		{args: []string{"citizen", "activate", "--id", demoCitizens[1].PersonalID}},
		{args: []string{"citizen", "revoke-device", "--id", demoCitizens[0].PersonalID, "--device", second.Enrollment().DeviceID}},
		{args: []string{"keys", "list"}},
		{args: []string{"keys", "rotate", "--force"}},
		{args: []string{"agency", "create", "--code", "BYT", "--name", "Bộ Y tế"}},
		{args: []string{"agency", "list"}},
		{args: []string{"agency", "grant-basis", "--agency", "BYT", "--purpose", "kham-benh", "--items", "name", "--basis", "public_task", "--law", "Luật Khám bệnh",
			"--operator", "op", "--reason", "test"},
			after: func(out map[string]json.RawMessage) { _ = json.Unmarshal(out["id"], &basisID) }},
		{args: []string{"agency", "bases"}},
		{args: []string{"agency", "revoke-basis", "BASIS", "--operator", "op", "--reason", "test"}},
		{args: []string{"agency", "token", "--agency", "BYT"},
			after: func(out map[string]json.RawMessage) {
				var tok struct {
					ID string `json:"id"`
				}
				_ = json.Unmarshal(out["token"], &tok)
				tokenID = tok.ID
			}},
		{args: []string{"agency", "token", "list"}},
		{args: []string{"agency", "token", "revoke", "--id", "TOKEN"}},
		{args: []string{"client", "list", "--pending"}},
		{args: []string{"audit", "verify"}},
		{args: []string{"audit", "checkpoint"}},
		{args: []string{"audit", "flags"}},
		{args: []string{"blobs", "sweep", "--dry-run"}},
		{args: []string{"blobs", "sweep"}},
		{args: []string{"push", "broadcast", "--title", "Hạn nộp hồ sơ"}},
		{args: []string{"push", "broadcasts"}},
	}
	for _, s := range steps {
		args := make([]string, 0, len(s.args)+2)
		for _, a := range s.args {
			args = append(args, strings.NewReplacer("CLIENT", clientID, "BASIS", basisID, "TOKEN", tokenID).Replace(a))
		}
		args = append(args, "--data-dir", dir)
		name := strings.Join(s.args[:min(2, len(s.args))], " ")
		code, out, errs := cli(t, nil, args...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, errs)
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &obj); err != nil {
			t.Errorf("%s: output is not a JSON object: %v\n%s", name, err, out)
			continue
		}
		var store string
		if err := json.Unmarshal(obj["store"], &store); err != nil || store != want {
			t.Errorf("%s: store = %s, want %q", name, obj["store"], want)
		}
		if s.after != nil {
			s.after(obj)
		}
	}
}

// TestCLI_ListsNamePostgresStore: on PostgreSQL the lists name the host
// and database, never the user or password.
func TestCLI_ListsNamePostgresStore(t *testing.T) {
	dsn := dbtest.SchemaDSN(t)
	env := map[string]string{"ONEDOOR_POSTGRES_DSN": dsn, "ONEDOOR_MASTER_KEY_FILE": sharedMasterKey(t)}
	if code, _, errs := cli(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	want := (&Config{PostgresDSN: dsn}).StoreName()
	if !strings.HasPrefix(want, "postgres") || strings.Contains(want, "@") {
		t.Fatalf("StoreName = %q", want)
	}
	for _, args := range [][]string{{"client", "list"}, {"citizen", "list"}, {"keys", "list"}, {"agency", "list"}, {"agency", "bases"}, {"audit", "flags"}, {"push", "broadcasts"}} {
		code, out, errs := cli(t, env, args...)
		var obj struct {
			Store string `json:"store"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &obj) != nil || obj.Store != want {
			t.Errorf("%v: exit %d, store %q, want %q: %s%s", args, code, obj.Store, want, out, errs)
		}
	}
}
