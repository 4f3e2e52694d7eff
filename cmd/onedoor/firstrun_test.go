package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/internal/dbtest"
)

// A mistyped --data-dir must not look like lost data: admin commands other
// than migrate refuse a directory without a database, name the absolute path
// they looked at and the flag that sets it, and create nothing.
func TestCLI_AdminCommandsNeverCreateADatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{
		{"client", "list"}, {"citizen", "list"}, {"keys", "list"}, {"agency", "list"},
		{"client", "create", "--name", "X", "--redirect-uri", "https://agency.example/cb"},
	} {
		code, _, errs := cli(t, nil, append(args, "--data-dir", dir)...)
		if code != 1 || !strings.Contains(errs, filepath.Join(dir, "onedoor.db")) || !strings.Contains(errs, "--data-dir") {
			t.Errorf("%v: exit %d, stderr %q; want 1 naming %s and --data-dir", args, code, errs, dir)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the data directory was created: %v", err)
	}
	// migrate is how a database is made, and it says where.
	code, out, errs := cli(t, nil, "migrate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, `"store": "sqlite:`+filepath.Join(dir, "onedoor.db")+`"`) {
		t.Fatalf("migrate: exit %d: %s %s", code, out, errs)
	}
	if code, out, errs = cli(t, nil, "agency", "create", "--data-dir", dir, "--code", "X1", "--name", "Sở Thử (demo)"); code != 0 || !strings.Contains(out, `"store": "sqlite:`) {
		t.Fatalf("agency create: exit %d: %s %s", code, out, errs)
	}
}

// The same on PostgreSQL: a database (or schema) without OneDoor's tables is
// refused, naming where it points and never the password.
func TestCLI_AdminCommandsRefuseAnEmptyPostgres(t *testing.T) {
	dsn := dbtest.SchemaDSN(t)
	key := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(key, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := cli(t, nil, "client", "list", "--postgres-dsn", dsn, "--master-key-file", key)
	if code != 1 || !strings.Contains(errs, "no OneDoor schema") || !strings.Contains(errs, "--postgres-dsn") {
		t.Fatalf("client list on an empty schema: exit %d, %q", code, errs)
	}
	code, out, errs := cli(t, nil, "migrate", "--postgres-dsn", dsn, "--master-key-file", key)
	if code != 0 || !strings.Contains(out, `"store": "postgres://`) {
		t.Fatalf("migrate: exit %d: %s %s", code, out, errs)
	}
	if code, _, errs = cli(t, nil, "client", "list", "--postgres-dsn", dsn, "--master-key-file", key); code != 0 {
		t.Fatalf("client list after migrate: exit %d %s", code, errs)
	}
}

func TestConfig_StoreNameHidesThePassword(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://app:s3cret@db.example:5432/onedoor?sslmode=verify-full": "postgres://db.example:5432/onedoor",
		"host=db.example port=5432 dbname=onedoor user=app password=s3cret": "postgres://db.example:5432/onedoor",
		// A quoted password that holds spaces and "host=": pgx connects
		// with it, so its parser, not a split on spaces, must read it.
		"host=db.example dbname=app password='pa ss host=leak'":   "postgres://db.example:5432/app",
		"postgres://app:s3cret@db.example/onedoor?search_path=t1": "postgres://db.example:5432/onedoor?search_path=t1",
		"postgres://app:s3?cr/et@db.example/onedoor":              "postgres (the DSN does not parse)",
	} {
		c := DefaultConfig()
		c.PostgresDSN = dsn
		if got := c.StoreName(); got != want {
			t.Errorf("StoreName(%q) = %q, want %q", dsn, got, want)
		}
	}
}

// --help anywhere prints the usage and every flag with its default, on
// stdout, and exits 0.
func TestCLI_HelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"serve", "--help"}, {"client", "--help"}, {"client", "create", "--help"},
		{"citizen", "-h"}, {"citizen", "show", "--help"}, {"keys", "help"}, {"agency", "--help"}, {"migrate", "--help"},
	} {
		code, out, errs := cli(t, nil, args...)
		if code != 0 || !strings.Contains(out, "usage:") || errs != "" {
			t.Errorf("%v: exit %d, stdout %d bytes, stderr %q", args, code, len(out), errs)
		}
	}
	_, out, _ := cli(t, nil, "--help")
	for _, f := range []string{"-idp-addr", "-issuer", "-data-dir", "-postgres-dsn", `(default "127.0.0.1:8080")`} {
		if !strings.Contains(out, f) {
			t.Errorf("onedoor --help lacks %s", f)
		}
	}
}

// The issuer follows the port the IdP listens on, so `--idp-addr
// 127.0.0.1:9000` alone gives a working issuer; a server reachable from
// elsewhere must say how it is reached; a loopback issuer on another port
// than the listener is warned about.
func TestConfig_IssuerDefaultsFromTheListenAddress(t *testing.T) {
	if got := defaultIssuer("127.0.0.1:9000"); got != "http://localhost:9000" {
		t.Errorf("defaultIssuer = %q", got)
	}
	c := DefaultConfig()
	c.IDPAddr = "127.0.0.1:9000"
	if err := c.Validate(true); err != nil {
		t.Errorf("loopback without --issuer: %v", err)
	}
	for _, addr := range []string{"0.0.0.0:8080", ":8080", "10.0.0.5:8080"} {
		c := DefaultConfig()
		c.IDPAddr = addr
		if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "--issuer is required") {
			t.Errorf("--idp-addr %s without --issuer: %v", addr, err)
		}
	}
	c = DefaultConfig()
	c.IDPAddr, c.Issuer = "127.0.0.1:8080", "http://localhost:9000"
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "port 9000") {
		t.Errorf("mismatched loopback ports: warnings %q", w)
	}
	c.Issuer = "http://localhost:8080"
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("matching ports: warnings %q", w)
	}
}

// A server started with no --issuer on a random loopback port serves the
// issuer http://localhost:PORT.
func TestRun_DefaultIssuer(t *testing.T) {
	e := startMain(t, func(c *Config) { c.Issuer = "" })
	if !strings.HasPrefix(e.m.Issuer, "http://localhost:") || !strings.HasSuffix(e.m.Issuer, ":"+e.m.IDPAddr[strings.LastIndex(e.m.IDPAddr, ":")+1:]) {
		t.Fatalf("issuer %q for %s", e.m.Issuer, e.m.IDPAddr)
	}
}

// Every IdP request leaves one info line with its route, status, client id
// and request id, and never the secret, code or token it carried; `/` tells
// a visitor what the server is.
func TestIdP_RequestLogAndFrontPage(t *testing.T) {
	var logs syncBuffer
	m := newTestMainLogging(t, &logs, slog.LevelInfo)
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "openid"})
	if code, body := tokenBasic(t, e.issuer, id, secret, url.Values{"grant_type": {"client_credentials"}}); code != http.StatusOK {
		t.Fatalf("token: %d %s", code, body)
	}
	if code, _ := tokenBasic(t, e.issuer, id, "wrong-"+secret, url.Values{"grant_type": {"authorization_code"}, "code": {"a-secret-code-value"}}); code != http.StatusUnauthorized {
		t.Fatalf("bad secret: %d", code)
	}
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/", nil)
	req.Header.Set("X-Request-Id", "lb-7f3a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), e.issuer+"/.well-known/openid-configuration") || resp.Header.Get("X-Request-Id") != "lb-7f3a" {
		t.Fatalf("front page: %d %q %s", resp.StatusCode, resp.Header.Get("X-Request-Id"), page)
	}
	out := logs.String()
	for _, want := range []string{"route=/token status=200", "route=/token status=401", "client_id=" + id, "route=/{$} status=200", "request_id=lb-7f3a"} {
		if !strings.Contains(out, want) {
			t.Errorf("request log lacks %q:\n%s", want, out)
		}
	}
	// ID and secret swapped, a common mistake: the secret must not be logged.
	if code, _ := tokenBasic(t, e.issuer, secret, id, url.Values{"grant_type": {"client_credentials"}}); code != http.StatusUnauthorized {
		t.Fatalf("swapped credentials: %d", code)
	}
	if !strings.Contains(logs.String(), "client_id=unverified:") {
		t.Errorf("a failed authentication's client id is not hashed:\n%s", logs.String())
	}
	out = logs.String()
	for _, secretish := range []string{secret, "a-secret-code-value"} {
		if strings.Contains(out, secretish) {
			t.Errorf("the log holds a credential")
		}
	}
}

// A second --demo on the same data rewrites no client: the secrets it knows
// still work, an operator's change to a demo client stays, and a server
// without --demo on that data says it holds demo data.
func TestDemo_SecondSeedingRewritesNothing(t *testing.T) {
	var logs syncBuffer
	m := newTestMainLogging(t, &logs, slog.LevelWarn)
	ctx := t.Context()
	_, ward1, err := m.seedDemo(ctx, "http://localhost:9")
	if err != nil {
		t.Fatal(err)
	}
	before, err := m.Store.GetClient(ctx, demoSiteClient)
	if err != nil {
		t.Fatal(err)
	}
	_, ward2, err := m.seedDemo(ctx, "http://localhost:10")
	if err != nil {
		t.Fatal(err)
	}
	after, err := m.Store.GetClient(ctx, demoSiteClient)
	if err != nil {
		t.Fatal(err)
	}
	if ward1 != ward2 || !after.CreatedAt.Equal(before.CreatedAt) || !slices.Equal(after.RedirectURIs, before.RedirectURIs) {
		t.Fatalf("second seeding rewrote the demo clients: %v -> %v", before.RedirectURIs, after.RedirectURIs)
	}
	if !strings.Contains(logs.String(), "demo client kept as it is") {
		t.Errorf("no warning about the other demo site address:\n%s", logs.String())
	}
	if code, body := tokenBasic(t, m.Issuer, demoWardClient, ward2, url.Values{"grant_type": {"client_credentials"}, "scope": {"agency"}}); code != http.StatusOK {
		t.Fatalf("the demo secret no longer works: %d %s", code, body)
	}
	if !m.holdsDemoData(ctx) {
		t.Error("holdsDemoData is false after seeding")
	}
}

// An admin command run with another master key than the server's refuses
// before it stores anything (a client secret or an audit checkpoint nobody
// could use or verify), and on SQLite never creates a key beside a database.
func TestCLI_WrongMasterKeyRefused(t *testing.T) {
	e := startMain(t)
	dir := e.m.Config.DataDir
	wrong := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(wrong, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"client", "list"}, {"audit", "checkpoint"}, {"client", "create", "--name", "X", "--grant-type", "client_credentials"}} {
		code, _, errs := cli(t, nil, append(args, "--data-dir", dir, "--master-key-file", wrong)...)
		if code != 1 || !strings.Contains(errs, "does not open this database's signing keys") {
			t.Errorf("%v with another key: exit %d, %q", args, code, errs)
		}
	}
	missing := filepath.Join(t.TempDir(), "absent.key")
	if code, _, _ := cli(t, nil, "client", "list", "--data-dir", dir, "--master-key-file", missing); code != 1 {
		t.Errorf("missing key file: exit %d", code)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("an admin command created a master key: %v", err)
	}
	if code, _, errs := cli(t, nil, "client", "list", "--data-dir", dir); code != 0 {
		t.Errorf("the right key: exit %d %s", code, errs)
	}
}

// Admin commands other than migrate never migrate: on a database behind
// this binary they refuse and say to run migrate, so a newer binary on an
// operator's machine does not upgrade the schema under running replicas.
func TestCLI_AdminCommandsDoNotMigrate(t *testing.T) {
	dir := migratedDir(t)
	m := NewMain()
	m.Config.DataDir = dir
	if err := m.OpenStorage(t.Context()); err != nil {
		t.Fatal(err)
	}
	// As if this binary were newer than the one that migrated.
	var version int
	var name string
	var applied int64
	if err := m.DB.QueryRowContext(t.Context(), `SELECT version, name, applied_at FROM api_schema_migrations ORDER BY version DESC LIMIT 1`).Scan(&version, &name, &applied); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DB.ExecContext(t.Context(), `DELETE FROM api_schema_migrations WHERE version = $1`, version); err != nil {
		t.Fatal(err)
	}
	code, _, errs := cli(t, nil, "agency", "list", "--data-dir", dir)
	if code != 1 || !strings.Contains(errs, "api_schema_migrations") || !strings.Contains(errs, "onedoor migrate") {
		t.Fatalf("agency list on a database behind: exit %d, %q", code, errs)
	}
	// The migration's own effects are still there: put its record back.
	if _, err := m.DB.ExecContext(t.Context(), `INSERT INTO api_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, version, name, applied); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if code, _, errs := cli(t, nil, "agency", "list", "--data-dir", dir); code != 0 {
		t.Fatalf("agency list once the schema is current: %s", errs)
	}
}
