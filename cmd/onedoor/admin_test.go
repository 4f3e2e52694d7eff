package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp/sqlite"
)

// cli runs the onedoor command in-process and returns its exit code and output.
func cli(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// migratedDir is a data directory with a migrated database: admin commands
// other than migrate refuse to create one.
func migratedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if code, _, errs := cli(t, nil, "migrate", "--data-dir", dir); code != 0 {
		t.Fatalf("migrate: %d %s", code, errs)
	}
	return dir
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
}

// decodeList reads a list command's output: an object with the list under
// key beside the store it used.
func decodeList(t *testing.T, s, key string, v any) {
	t.Helper()
	var obj map[string]json.RawMessage
	decode(t, s, &obj)
	if _, ok := obj["store"]; !ok {
		t.Errorf("output names no store: %s", s)
	}
	raw, ok := obj[key]
	if !ok {
		t.Fatalf("output has no %q: %s", key, s)
	}
	decode(t, string(raw), v)
}

func TestCLI_Client(t *testing.T) {
	dir := migratedDir(t)
	code, out, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Sở Demo", "--redirect-uri", "https://agency.example/cb",
		"--redirect-uri", "https://agency.example/cb2", "--post-logout-redirect-uri", "https://agency.example/", "--scope", "openid profile eid", "--par-required", "--id-token-alg", "RS256")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	var created map[string]any
	decode(t, out, &created)
	id, _ := created["client_id"].(string)
	secret, _ := created["client_secret"].(string)
	if id == "" || len(secret) < 43 {
		t.Fatalf("create output = %v; want client_id and a 256-bit secret", created)
	}
	if created["require_pushed_authorization_requests"] != true || created["id_token_signed_response_alg"] != "RS256" {
		t.Errorf("create output = %v", created)
	}

	code, out, _ = cli(t, nil, "client", "list", "--data-dir", dir)
	var list []map[string]any
	decodeList(t, out, "clients", &list)
	if code != 0 || len(list) != 2 { // the eID app's own client plus ours
		t.Fatalf("list: exit %d, %d clients: %s", code, len(list), out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, `"client_secret":`) {
		t.Error("list shows a secret")
	}
	if code, out, _ = cli(t, nil, "client", "show", id, "--data-dir", dir); code != 0 || !strings.Contains(out, "agency.example/cb2") {
		t.Errorf("show: exit %d: %s", code, out)
	}
	if code, _, _ = cli(t, nil, "client", "delete", "--data-dir", dir, "--id", id); code != 0 {
		t.Errorf("delete: exit %d", code)
	}
	if code, _, errs = cli(t, nil, "client", "show", "--data-dir", dir, id); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("show deleted: exit %d: %s", code, errs)
	}
	if code, _, _ = cli(t, nil, "client", "delete", "--data-dir", dir, "onedoor-eid-app"); code == 0 {
		t.Error("the eID app's client was deleted")
	}
}

// `client create --claims` lets a client receive claims beyond its scopes';
// show and list print them with the resulting allowance.
func TestCLI_ClientClaims(t *testing.T) {
	dir := migratedDir(t)
	code, out, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Sở Demo", "--redirect-uri", "https://agency.example/cb",
		"--scope", "openid phone", "--claims", "name,personal_id")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	var c struct {
		ID      string   `json:"client_id"`
		Claims  []string `json:"claims"`
		Allowed []string `json:"allowed_claims"`
	}
	decode(t, out, &c)
	if strings.Join(c.Claims, " ") != "name personal_id" || strings.Join(c.Allowed, " ") != "name phone_number personal_id" {
		t.Errorf("create output: claims %v, allowed %v", c.Claims, c.Allowed)
	}
	_, out, _ = cli(t, nil, "client", "show", c.ID, "--data-dir", dir)
	decode(t, out, &c)
	if strings.Join(c.Allowed, " ") != "name phone_number personal_id" {
		t.Errorf("show: allowed %v", c.Allowed)
	}
	_, out, _ = cli(t, nil, "client", "list", "--data-dir", dir)
	if !strings.Contains(out, `"allowed_claims"`) {
		t.Errorf("list lacks allowed_claims: %s", out)
	}
	code, _, errs = cli(t, nil, "client", "create", "--data-dir", dir, "--name", "X", "--redirect-uri", "https://agency.example/cb",
		"--claims", "salary,name,name")
	if code != 1 || !strings.Contains(errs, `claim "salary" is not a registry claim`) || !strings.Contains(errs, `claim "name" is listed twice`) {
		t.Errorf("bad --claims: exit %d: %s", code, errs)
	}
}

func TestCLI_ClientCreateReportsEveryProblem(t *testing.T) {
	code, _, errs := cli(t, nil, "client", "create", "--data-dir", migratedDir(t), "--name", "",
		"--redirect-uri", "http://evil.example/cb", "--redirect-uri", "https://ok.example/cb#frag",
		"--auth-method", "magic", "--grant-type", "password")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"name is required", "http is allowed only on localhost", "fragment", "auth method \"magic\"", "grant type \"password\""} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if code, _, _ := cli(t, nil, "client", "create", "--data-dir", t.TempDir(), "--bogus-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

const citizensJSON = `[
 {"personal_id":"000000000101","family_name":"Đặng","given_name":"Thị Demo","birthdate":"1999-09-09","gender":"female","address":"Hà Nội (giả)","phone_number":"+84900000101"},
 {"personal_id":"000000000102","family_name":"Võ","given_name":"Văn Demo","birthdate":"1970-01-01","gender":"male","address":"","phone_number":""}
]`

func TestCLI_CitizenImport(t *testing.T) {
	dir := migratedDir(t)
	f := filepath.Join(t.TempDir(), "c.json")
	_ = os.WriteFile(f, []byte(citizensJSON), 0o600)
	code, out, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, f)
	if code != 0 || !strings.Contains(out, `"imported": 2`) {
		t.Fatalf("import: exit %d: %s %s", code, out, errs)
	}
	// The same file again conflicts and imports nothing more.
	if code, _, _ = cli(t, nil, "citizen", "import", "--data-dir", dir, f); code != 1 {
		t.Errorf("re-import: exit %d, want 1", code)
	}

	csvFile := filepath.Join(t.TempDir(), "c.csv")
	_ = os.WriteFile(csvFile, []byte("personal_id,family_name,given_name,birthdate,gender,address,phone_number\n"+
		"000000000103,Bùi,Văn Demo,1988-02-29,male,Huế (giả),+84900000103\n"+
		"12345,Lỗi,Demo,1988-02-30,robot,x,0900\n"), 0o600)
	code, _, errs = cli(t, nil, "citizen", "import", "--data-dir", dir, csvFile)
	if code != 1 || !strings.Contains(errs, "row 2") || !strings.Contains(errs, "personal_id must be 12 digits") || !strings.Contains(errs, "gender") {
		t.Fatalf("bad CSV: exit %d: %s", code, errs)
	}
	code, out, _ = cli(t, nil, "citizen", "list", "--data-dir", dir)
	var list []map[string]any
	decodeList(t, out, "citizens", &list)
	if code != 0 || len(list) != 2 {
		t.Fatalf("after a rejected file the registry has %d citizens, want 2 (all or none)", len(list))
	}
	if list[0]["sub"] == list[0]["personal_id"] {
		t.Error("subject equals the personal id")
	}

	code, out, _ = cli(t, nil, "citizen", "activate", "--data-dir", dir, "--id", "000000000101", "--level", "high")
	var act struct {
		Code      string    `json:"activation_code"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	decode(t, out, &act)
	if code != 0 || act.Code == "" || time.Until(act.ExpiresAt) > 15*time.Minute || time.Until(act.ExpiresAt) < 14*time.Minute {
		t.Errorf("activate: exit %d: %+v", code, act)
	}
	if code, _, _ = cli(t, nil, "citizen", "activate", "--data-dir", dir, "--id", "000000000101", "--level", "low"); code == 0 {
		t.Error("activation at level low accepted")
	}
	if code, out, _ = cli(t, nil, "citizen", "show", "--data-dir", dir, "--id", "000000000102"); code != 0 || !strings.Contains(out, "Võ") {
		t.Errorf("show: exit %d: %s", code, out)
	}

	// A registry export in local conventions is normalised on import.
	local := filepath.Join(t.TempDir(), "local.csv")
	_ = os.WriteFile(local, []byte("personal_id,family_name,given_name,birthdate,gender,address,phone_number\n"+
		"000000000104, Hồ ,Thị Demo,1995-05-05,Nữ,Vinh (giả),0912 345 678\n"), 0o600)
	if code, _, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, local); code != 0 {
		t.Fatalf("local-format import: %s", errs)
	}
	_, out, _ = cli(t, nil, "citizen", "show", "--data-dir", dir, "--id", "000000000104")
	if !strings.Contains(out, `"phone_number": "+84912345678"`) || !strings.Contains(out, `"gender": "female"`) || !strings.Contains(out, `"family_name": "Hồ"`) {
		t.Errorf("not normalised: %s", out)
	}
}

func TestCLI_Keys(t *testing.T) {
	dir := migratedDir(t)
	// A database set up by another command has no signing keys yet.
	if code, _, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Sở Demo",
		"--redirect-uri", "https://agency.example/cb", "--scope", "openid"); code != 0 {
		t.Fatalf("client create: %s", errs)
	}
	// keys list is read only: it shows what is there and writes nothing.
	before := dumpDB(t, dir)
	code, out, _ := cli(t, nil, "keys", "list", "--data-dir", dir)
	var keys []map[string]any
	decodeList(t, out, "keys", &keys)
	if code != 0 || len(keys) != 0 {
		t.Fatalf("keys list before any key exists: exit %d: %s", code, out)
	}
	if after := dumpDB(t, dir); after != before {
		t.Fatalf("keys list changed the database:\nbefore %s\nafter  %s", before, after)
	}
	// A next key published moments ago must not start signing yet; rotate
	// creates the missing keys first.
	if code, _, errs := cli(t, nil, "keys", "rotate", "--data-dir", dir); code != 1 || !strings.Contains(errs, "published") {
		t.Errorf("early rotate: exit %d: %s", code, errs)
	}
	before = dumpDB(t, dir)
	code, out, _ = cli(t, nil, "keys", "list", "--data-dir", dir)
	decodeList(t, out, "keys", &keys)
	if code != 0 || len(keys) != 4 { // active and next, for ES256 and RS256
		t.Fatalf("keys list: exit %d: %s", code, out)
	}
	if after := dumpDB(t, dir); after != before {
		t.Fatalf("keys list changed the database:\nbefore %s\nafter  %s", before, after)
	}
	if code, out, _ = cli(t, nil, "keys", "rotate", "--data-dir", dir, "--force"); code != 0 || !strings.Contains(out, "activated") {
		t.Errorf("forced rotate: exit %d: %s", code, out)
	}
}

// dumpDB renders every row of every table of the data directory's SQLite
// database, to compare a database before and after a command.
func dumpDB(t *testing.T, dir string) string {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(dir, "onedoor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		rows, err := db.Query(`SELECT * FROM "` + tbl + `"`) //nolint:gosec // table names from sqlite_master
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%v", vals))
		}
		rows.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "%s: %d rows %x\n", tbl, len(lines), sha256.Sum256([]byte(strings.Join(lines, "\n"))))
	}
	return b.String()
}

func TestCLI_EnvAndValidation(t *testing.T) {
	// Environment equivalents feed the flags; every problem is reported.
	code, _, errs := cli(t, map[string]string{"ONEDOOR_IDP_ADDR": "nonsense", "ONEDOOR_ISSUER": "ftp://x", "ONEDOOR_LOG_LEVEL": "loud"}, "serve", "--data-dir", t.TempDir())
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"--idp-addr must be host:port", "--issuer must be an absolute http(s) URL", "--log-level"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if code, _, errs := cli(t, nil, "serve", "--issuer", "http://idp.example.gov.vn", "--data-dir", t.TempDir()); code != 1 || !strings.Contains(errs, "https") {
		t.Errorf("http issuer off loopback: exit %d: %s", code, errs)
	}
	if code, _, _ := cli(t, nil, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if got := EnvName("postgres-dsn"); got != "ONEDOOR_POSTGRES_DSN" {
		t.Errorf("EnvName = %q", got)
	}
}

// A client created with the admin command while the server runs on the same
// storage works at once; deleted, it stops working within the client cache's
// bound (oidc.ClientMaxStale), and stays refused.
func TestCLI_RunningServerSeesNewClient(t *testing.T) {
	e := startMain(t)
	code, out, errs := cli(t, nil, "client", "create", "--data-dir", e.m.Config.DataDir, "--name", "Live agency",
		"--grant-type", "client_credentials", "--scope", "registry.read")
	if code != 0 {
		t.Fatalf("create: %s", errs)
	}
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	decode(t, out, &c)
	cc := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: e.issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cc.Token(context.Background()); err != nil {
		t.Fatalf("new client rejected by the running server: %v", err)
	}
	if code, _, _ := cli(t, nil, "client", "delete", "--data-dir", e.m.Config.DataDir, c.ID); code != 0 {
		t.Fatal("delete failed")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := cc.Token(context.Background())
		if err != nil {
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
				t.Fatalf("deleted client: got %v, want invalid_client", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("deleted client still gets tokens")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 10 {
		if _, err := cc.Token(context.Background()); err == nil {
			t.Fatal("deleted client got a token again")
		}
	}
}

func TestCLI_MigrateTwice(t *testing.T) {
	dir := migratedDir(t)
	for i := range 2 {
		code, out, errs := cli(t, nil, "migrate", "--data-dir", dir)
		if code != 0 || !strings.Contains(out, `"migrated": true`) {
			t.Fatalf("migrate #%d: exit %d: %s %s", i+1, code, out, errs)
		}
	}
	// The eID app's own client exists without --demo.
	if code, out, _ := cli(t, nil, "client", "show", "onedoor-eid-app", "--data-dir", dir); code != 0 || !strings.Contains(out, `"token_endpoint_auth_method": "none"`) {
		t.Errorf("eID app client: exit %d: %s", code, out)
	}
}

// Plain-text connections to shared stores on other hosts are allowed (a
// private network may be trusted) but said at start: Redis holds login
// decisions, codes and sessions.
func TestConfig_WarnsOfPlaintextRemoteStores(t *testing.T) {
	for _, tt := range []struct {
		redis, pg string
		warnings  int
	}{
		{"redis://127.0.0.1:6379/0", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", 0},
		{"redis://localhost:6379/0", "postgres://postgres@[::1]:5432/test", 0},
		{"rediss://redis.internal:6380/0", "postgres://onedoor@db.internal/onedoor?sslmode=verify-full", 0},
		{"redis://10.20.0.5:6379/0", "postgres://onedoor@db.internal/onedoor?sslmode=verify-full", 1},
		{"rediss://redis.internal:6380/0", "postgres://onedoor@10.20.0.6:5432/onedoor?sslmode=disable", 1},
		{"redis://10.20.0.5:6379/0", "postgres://onedoor@10.20.0.6:5432/onedoor?sslmode=require", 2},
	} {
		c := NewMain().Config
		c.RedisURL, c.PostgresDSN = tt.redis, tt.pg
		if got := c.Warnings(); len(got) != tt.warnings {
			t.Errorf("redis %s, postgres %s: warnings %q, want %d", tt.redis, tt.pg, got, tt.warnings)
		}
	}
}

// --api-url is the mobile API's audience: https except on loopback (by
// default http://localhost:PORT of the bound --api-addr, see
// TestMobileAPI_Me).
func TestConfig_APIURL(t *testing.T) {
	for _, bad := range []string{"http://api.example.gov.vn", "https://api.example.gov.vn/?x=1", "ftp://api.example.gov.vn", "https://u:p@api.example.gov.vn"} {
		c := DefaultConfig()
		c.APIURL = bad
		if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "--api-url") {
			t.Errorf("api url %q: %v, want an --api-url problem", bad, err)
		}
	}
	c := DefaultConfig()
	c.APIURL = "https://api.example.gov.vn/"
	if err := c.Validate(true); err != nil || c.APIURL != "https://api.example.gov.vn" {
		t.Errorf("https API URL: %q, %v", c.APIURL, err)
	}
}

// An operator's look-up of a citizen is in that citizen's access log.
func TestCLI_OperatorLookupsAreLogged(t *testing.T) {
	dir := migratedDir(t)
	f := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(f, []byte(`[{"personal_id":"000000000301","family_name":"Đỗ","given_name":"Demo","birthdate":"1990-01-01","gender":"female","address":"1 Phố Mẫu (giả)","phone_number":"+84900000301"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, f); code != 0 {
		t.Fatalf("import: %s", errs)
	}
	if code, _, errs := cli(t, nil, "citizen", "show", "--data-dir", dir, "--id", "000000000301"); code != 0 {
		t.Fatalf("show: %s", errs)
	}
	if code, _, errs := cli(t, nil, "citizen", "list", "--data-dir", dir); code != 0 {
		t.Fatalf("list: %s", errs)
	}
	m := NewMain()
	m.Config.DataDir = dir
	if err := m.OpenStorage(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.Store.GetCitizenByPersonalID(t.Context(), "000000000301")
	if err != nil {
		t.Fatal(err)
	}
	es, _, err := m.ConsentStore.ListEntries(t.Context(), consent.EntryQuery{CitizenID: c.ID})
	if err != nil || len(es) != 2 {
		t.Fatalf("entries %d, %v; want the show and the list", len(es), err)
	}
	for _, e := range es {
		if e.Channel != consent.ChannelOperator || e.Actor.Operator == "" || e.Outcome != consent.OutcomeReleased {
			t.Errorf("entry %+v", e)
		}
	}
}

// `client create` refuses a scope the IdP does not know, exits non-zero and
// lists what it accepts; a namespaced API scope and the built-in ones pass.
func TestCLI_ClientCreateRefusesUnknownScopes(t *testing.T) {
	dir := migratedDir(t)
	for _, scope := range []string{"openid email", "openid profil", "admin"} {
		code, out, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "X", "--redirect-uri", "https://agency.example/cb", "--scope", scope)
		bad := strings.Fields(scope)[len(strings.Fields(scope))-1]
		if code != exitFail || out != "" || !strings.Contains(errs, fmt.Sprintf("scope %q is unknown", bad)) ||
			!strings.Contains(errs, "openid, profile, address, phone, eid, offline_access, agency") || !strings.Contains(errs, "registry.read") {
			t.Errorf("--scope %q: exit %d: %s%s", scope, code, out, errs)
		}
	}
	if code, _, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "X", "--redirect-uri", "https://agency.example/cb",
		"--scope", "openid profile address phone eid offline_access"); code != 0 {
		t.Errorf("built-in scopes refused: %s", errs)
	}
	if code, _, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "X", "--grant-type", "client_credentials",
		"--scope", "registry.read https://api.example.gov.vn/records"); code != 0 {
		t.Errorf("API scopes refused: %s", errs)
	}
	// Nothing was stored by the refused commands.
	_, out, _ := cli(t, nil, "client", "list", "--data-dir", dir)
	var list []map[string]any
	if decodeList(t, out, "clients", &list); len(list) != 3 {
		t.Errorf("%d clients stored, want the eID app's and the two accepted", len(list))
	}
	// --help states the rule.
	if _, out, _ := cli(t, nil, "client", "create", "--help"); !strings.Contains(out, "registry.read") {
		t.Errorf("client create --help does not state the scope rule:\n%s", out)
	}
}

// A client that cannot send a browser back (client_credentials only) may
// not register redirect or post-logout redirect URIs.
func TestCLI_ClientCreateRefusesRedirectsWithoutCodeGrant(t *testing.T) {
	dir := migratedDir(t)
	for _, flag := range []string{"--redirect-uri", "--post-logout-redirect-uri"} {
		code, _, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "X", "--grant-type", "client_credentials",
			"--scope", "registry.read", flag, "https://agency.example/cb")
		if code != exitFail || !strings.Contains(errs, "only for clients with the authorization_code grant") {
			t.Errorf("%s on a client_credentials client: exit %d: %s", flag, code, errs)
		}
	}
}
