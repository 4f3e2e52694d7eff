package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/docs/snippets/agencyrp"
	"github.com/onedoor/onedoor/docs/snippets/resourceserver"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/represent"
)

// The guides in docs/ are tested here: every snippet they show is a file
// the guide includes verbatim, and every such file is run against a real
// OneDoor, so a guide cannot drift from the code.

const docsDir = "../../docs"

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := readRepoFile(docsDir, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readRepoFile reads one of the repository's own files.
func readRepoFile(parts ...string) ([]byte, error) {
	return os.ReadFile(filepath.Join(parts...)) // #nosec G304 -- the repository's docs, named by the tests
}

// includesVerbatim fails unless the guide shows the snippet file exactly.
func includesVerbatim(t *testing.T, doc, docName, snippet string) {
	t.Helper()
	b, err := readRepoFile(docsDir, snippet)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc, "\n"+string(b)+"```") {
		t.Errorf("%s does not include %s verbatim in a fenced block: copy the file into it", docName, snippet)
	}
}

var fenceRE = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```")

// fencedBlocks returns the contents of the guide's fenced blocks of language
// lang that contain marker.
func fencedBlocks(doc, lang, marker string) []string {
	var out []string
	for _, m := range fenceRE.FindAllStringSubmatch(doc, -1) {
		if m[1] == lang && strings.Contains(m[2], marker) {
			out = append(out, m[2])
		}
	}
	return out
}

// shellWords splits one shell command line as sh would for the guides'
// commands: quotes, backslash-newline continuations and trailing comments.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	s = strings.ReplaceAll(s, "\\\n", " ")
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				t.Fatalf("unbalanced quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '#' && !inWord:
			i = len(s)
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// The guide's `client create` command prints exactly the members its JSON
// shows, with the same values wherever they do not change per run.
func TestGuide_ClientCreateOutput(t *testing.T) {
	doc := readDoc(t, "agency-integration.md")
	cmds := fencedBlocks(doc, "sh", "onedoor client create --name")
	outs := fencedBlocks(doc, "json", `"token_endpoint_auth_method"`)
	if len(cmds) == 0 || len(outs) == 0 {
		t.Fatal("the guide has no client create command followed by its output")
	}
	args := shellWords(t, cmds[0])
	if args[0] != "onedoor" {
		t.Fatalf("command %q", args)
	}
	dir := migratedDir(t)
	code, out, errs := cli(t, nil, append(args[1:], "--data-dir", dir)...)
	if code != 0 {
		t.Fatalf("the guide's command fails: %d %s", code, errs)
	}
	var got, want map[string]any
	decode(t, out, &got)
	decode(t, outs[0], &want)
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("client create prints %q (%v); the guide does not show it", k, got[k])
		}
	}
	volatile := []string{"client_id", "client_secret", "created_at", "store"}
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("the guide shows %q; client create does not print it", k)
		case slices.Contains(volatile, k):
		default:
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(v)
			if string(gj) != string(wj) {
				t.Errorf("%s: client create prints %s, the guide shows %s", k, gj, wj)
			}
		}
	}
	if s, _ := got["store"].(string); !strings.HasPrefix(s, "sqlite:") || !strings.HasPrefix(want["store"].(string), "sqlite:") {
		t.Errorf("store = %q, guide %q", s, want["store"])
	}
}

// The guide's example of a mistyped data directory prints what the command
// really prints.
func TestGuide_MissingDatabase(t *testing.T) {
	doc := readDoc(t, "agency-integration.md")
	blocks := fencedBlocks(doc, "sh", "--data-dir ./typo")
	if len(blocks) != 1 {
		t.Fatal("the guide has no example of a missing database")
	}
	cmdLine, want, _ := strings.Cut(blocks[0], "\n")
	dir := t.TempDir()
	want = strings.ReplaceAll(strings.TrimSpace(want), "/home/op/typo", filepath.Join(dir, "typo"))
	args := shellWords(t, cmdLine[strings.Index(cmdLine, "onedoor client"):])
	args[len(args)-1] = filepath.Join(dir, "typo")
	code, _, errs := cli(t, nil, args[1:]...)
	if code != 1 || strings.TrimSpace(errs) != want {
		t.Errorf("exit %d, stderr:\n%s\nthe guide shows:\n%s", code, errs, want)
	}
}

// rpLogin drives a citizen's login at a relying party listening at base:
// its /login, OneDoor's page approved in the eID app, then the callback,
// whose JSON answer it returns.
func (e *testEnv) rpLogin(base string) (status int, body map[string]any) {
	e.t.Helper()
	return e.rpLoginAs(base, "")
}

// rpLoginAs is rpLogin with the app approving for the party actAs names
// (a tax code or a ward's personal id; "" for the citizen themself).
func (e *testEnv) rpLoginAs(base, actAs string) (status int, body map[string]any) {
	e.t.Helper()
	b := newBrowser()
	start := b.follow(e.t, base+"/login")
	if !strings.HasPrefix(start.String(), e.issuer+"/authorize?") {
		e.t.Fatalf("/login redirects to %s", start)
	}
	q := start.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("nonce") == "" {
		e.t.Errorf("the guide's authorization request lacks PKCE, state or nonce: %s", start)
	}
	var back *url.URL
	if actAs == "" {
		back = e.login(b, start.String(), e.app, nil)
	} else {
		payload, statusURL := b.loginPage(e.t, start.String())
		if _, err := e.app.ApproveAs(context.Background(), payload, pick(payload), false, nil, actAs); err != nil {
			e.t.Fatalf("approve as %q: %v", actAs, err)
		}
		st, next := b.status(e.t, statusURL)
		if st != "approved" || next == "" {
			e.t.Fatalf("status after approval = %q, %q", st, next)
		}
		back = b.follow(e.t, next)
	}
	resp, err := b.Get(back.String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		e.t.Fatalf("callback answered %d %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, body
}

// checkLoggedIn checks what a relying party got: a verified ID token for the
// citizen and userinfo with the claims of profile and eid.
func checkLoggedIn(t *testing.T, status int, body map[string]any) {
	t.Helper()
	idt, _ := body["id_token"].(map[string]any)
	ui, _ := body["userinfo"].(map[string]any)
	if status != http.StatusOK || idt == nil || ui == nil {
		t.Fatalf("callback: %d %v", status, body)
	}
	if idt["sub"] == "" || idt["sub"] != ui["sub"] || idt["acr"] != string(idp.LevelHigh) {
		t.Errorf("ID token %v, userinfo %v", idt, ui)
	}
	if ui["personal_id"] != demoCitizens[0].PersonalID || ui["family_name"] != demoCitizens[0].FamilyName {
		t.Errorf("userinfo = %v", ui)
	}
}

func TestGuide_GoOIDC(t *testing.T) {
	includesVerbatim(t, readDoc(t, "agency-integration.md"), "agency-integration.md", "snippets/agencyrp/rp.go")
	e := startMain(t)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	cb := srv.URL + "/oidc/callback"
	id, secret := e.client(ClientSpec{Name: "Sở Tư pháp (Go)", Scope: "openid profile eid", RedirectURIs: []string{cb}})
	var err error
	h, err = agencyrp.New(context.Background(), agencyrp.Config{Issuer: e.issuer, ClientID: id, ClientSecret: secret, RedirectURL: cb})
	if err != nil {
		t.Fatal(err)
	}
	status, body := e.rpLogin(srv.URL)
	checkLoggedIn(t, status, body)
}

// The openid-client snippet runs in Node with the exact version the
// package-lock.json pins. Without node the test is skipped, except in CI.
func TestGuide_OpenIDClient(t *testing.T) {
	e := startMain(t)
	base := startNodeRP(t, e, "openid profile eid", "")
	status, body := e.rpLogin(base)
	checkLoggedIn(t, status, body)
}

// openid-client as a relying party that asks the representation scope
// reads act and the representation claim: the legal representative logs in
// for their company.
func TestGuide_OpenIDClientRepresentation(t *testing.T) {
	e := startRepEnv(t)
	base := startNodeRP(t, e.testEnv, "openid representation", "openid representation")
	status, body := e.rpLoginAs(base, repCompanyTax)
	if status != http.StatusOK {
		t.Fatalf("callback: %d %v", status, body)
	}
	for _, name := range []string{"id_token", "userinfo"} {
		claims := mapOf(body[name])
		sub, _ := claims["sub"].(string)
		if sub != e.company.ID || !strings.HasPrefix(sub, represent.OrgSubjectPrefix) {
			t.Errorf("%s: sub %q, want the company's %q", name, sub, e.company.ID)
		}
		if act := mapOf(claims["act"]); act["sub"] != e.actor {
			t.Errorf("%s: act %v, want the citizen %s", name, claims["act"], e.actor)
		}
		if rep := mapOf(claims["representation"]); rep["basis"] != "legal_representative" || rep["type"] != "organisation" {
			t.Errorf("%s: representation %v", name, claims["representation"])
		}
		if org := mapOf(claims["organisation"]); org["tax_code"] != repCompanyTax {
			t.Errorf("%s: organisation %v", name, claims["organisation"])
		}
	}
	// Back-channel logout names the session: the ID token carries its sid.
	if sid, _ := mapOf(body["id_token"])["sid"].(string); sid == "" {
		t.Errorf("the ID token of a representation login has no sid: %v", body["id_token"])
	}
}

// startNodeRP runs docs/snippets/node/rp.mjs for a new client of e
// registered with scope, the snippet asking askScope (SCOPE; "" leaves its
// default), and returns its base URL once it listens.
func startNodeRP(t *testing.T, e *testEnv, scope, askScope string) string {
	t.Helper()
	dir := filepath.Join(docsDir, "snippets", "node")
	includesVerbatim(t, readDoc(t, "agency-integration.md"), "agency-integration.md", "snippets/node/rp.mjs")
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed; CI runs the openid-client guide (Node 20 or later)")
		}
		t.Skip("node is not installed: the openid-client guide is not run (install Node 20 or later)")
	}
	npmCI(t, dir)

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	id, secret := e.client(ClientSpec{Name: "Sở Tư pháp (Node)", Scope: scope, RedirectURIs: []string{base + "/oidc/callback"}})
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, "rp.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ONEDOOR_ISSUER="+e.issuer, "CLIENT_ID="+id, "CLIENT_SECRET="+secret,
		"REDIRECT_URI="+base+"/oidc/callback", "PORT="+strconv.Itoa(port))
	if askScope != "" {
		cmd.Env = append(cmd.Env, "SCOPE="+askScope)
	}
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening on ") {
				ready <- nil
			}
		}
		ready <- errors.New("rp.mjs exited before listening")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rp.mjs did not start in 30 s")
	}
	return base
}

// npmCI installs the snippet's dependencies exactly as package-lock.json
// pins them, from npm's cache when it has them; it does nothing when they
// are installed already.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	var pkg, lock struct {
		Dependencies map[string]string         `json:"dependencies"`
		Packages     map[string]map[string]any `json:"packages"`
		Version      string                    `json:"version"`
	}
	b, _ := readRepoFile(dir, "package.json")
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	b, _ = readRepoFile(dir, "package-lock.json")
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	pinned := pkg.Dependencies["openid-client"]
	if lock.Packages["node_modules/openid-client"]["version"] != pinned || !regexp.MustCompile(`^6\.\d+\.\d+$`).MatchString(pinned) {
		t.Fatalf("package.json pins openid-client %q, package-lock.json %v: want one exact 6.x version", pinned, lock.Packages["node_modules/openid-client"]["version"])
	}
	var installed struct {
		Version string `json:"version"`
	}
	if b, err := readRepoFile(dir, "node_modules", "openid-client", "package.json"); err == nil && json.Unmarshal(b, &installed) == nil && installed.Version == pinned {
		return
	}
	cmd := exec.Command("npm", "ci", "--prefer-offline", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// The resource server snippet accepts a citizen's token minted for it and
// refuses tokens minted for another audience, ID tokens and altered tokens.
func TestGuide_ResourceServer(t *testing.T) {
	includesVerbatim(t, readDoc(t, "agency-integration.md"), "agency-integration.md", "snippets/resourceserver/verify.go")
	e := startMain(t, withResources(recordsAPI))
	ctx := context.Background()
	v, err := resourceserver.NewVerifier(ctx, e.issuer, recordsAPI)
	if err != nil {
		t.Fatal(err)
	}
	id, secret := e.client(ClientSpec{Scope: "openid profile eid"})
	r := e.rp(id, secret, "openid", "profile", "eid")
	tok, _ := e.codeFlow(r, newBrowser(), e.app, oauth2.SetAuthURLParam("resource", recordsAPI))
	c, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("the guide's verifier refuses a token minted for it: %v", err)
	}
	if c.Kind != "citizen" || c.ClientID != id || c.ACR != string(idp.LevelHigh) || !slices.Contains(c.Audience, recordsAPI) {
		t.Errorf("claims = %+v", c)
	}

	// The middleware serves it, and refuses anything else.
	api := httptest.NewServer(v.CitizenOnly(func(w http.ResponseWriter, _ *http.Request, c *resourceserver.Claims) {
		_, _ = io.WriteString(w, c.Subject)
	}))
	defer api.Close()
	call := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := call(tok.AccessToken); st != http.StatusOK {
		t.Errorf("citizen token for the API: %d", st)
	}
	forUserinfo, _ := e.codeFlow(r, newBrowser(), e.app)
	idToken, _ := forUserinfo.Extra("id_token").(string)
	cc, ccSecret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
	_, body := postBasic(t, e.issuer+"/token", cc, ccSecret, map[string][]string{"grant_type": {"client_credentials"}, "resource": {recordsAPI}})
	var clientTok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal([]byte(body), &clientTok)
	if clientTok.AccessToken == "" {
		t.Fatalf("client_credentials: %s", body)
	}
	if c, err := v.Verify(ctx, clientTok.AccessToken); err != nil || c.Kind != "client" || c.Subject != cc {
		t.Errorf("client token: %+v %v", c, err)
	}
	tampered := tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"
	for name, bad := range map[string]string{
		"a token for userinfo":      forUserinfo.AccessToken,
		"an ID token":               idToken,
		"a tampered signature":      tampered,
		"a client's token":          clientTok.AccessToken,
		"no token":                  "",
		"a token of another issuer": foreignToken(t),
	} {
		if st := call(bad); st != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, st)
		}
	}
}

// foreignToken is an at+jwt signed by a key OneDoor never published.
func foreignToken(t *testing.T) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "https://elsewhere.example", "sub": "x", "aud": recordsAPI,
		"client_id": "x", "kind": "citizen", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()})
	tok.Header["typ"] = "at+jwt"
	tok.Header["kid"] = "not-onedoor"
	s, err := tok.SignedString(newECKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The citizen import guide's examples import, normalised as it says.
func TestGuide_CitizenImport(t *testing.T) {
	doc := readDoc(t, "citizen-import.md")
	jsonEx := fencedBlocks(doc, "json", "personal_id")
	csvEx := fencedBlocks(doc, "csv", "personal_id")
	if len(jsonEx) != 1 || len(csvEx) != 1 {
		t.Fatalf("want one JSON and one CSV example, got %d and %d", len(jsonEx), len(csvEx))
	}
	dir := migratedDir(t)
	for name, body := range map[string]string{"citizens.json": jsonEx[0], "citizens.csv": csvEx[0]} {
		f := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, f)
		if code != 0 || !strings.Contains(out, `"imported": 2`) {
			t.Fatalf("%s: exit %d: %s %s", name, code, out, errs)
		}
	}
	code, out, _ := cli(t, nil, "citizen", "show", "--data-dir", dir, "--id", "000000000203")
	var c map[string]any
	decode(t, out, &c)
	if code != 0 || c["family_name"] != "Hồ" || c["gender"] != "female" || c["phone_number"] != "+84912345678" || c["address"] != "12 Đường Thử, Vinh (địa chỉ giả)" {
		t.Errorf("the guide's first CSV row is stored as %v", c)
	}
	// An unknown member names the fields there are.
	f := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(f, []byte(`[{"personal_id": "000000000205", "email": "x@example.vn"}]`), 0o600)
	code, _, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, f)
	if code != 1 || !strings.Contains(errs, "personal_id, family_name, given_name, birthdate, gender, address, phone_number") {
		t.Errorf("unknown member: exit %d: %s", code, errs)
	}
	rt := reflect.TypeFor[idp.CitizenRecord]()
	for i := range rt.NumField() {
		if field, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); !strings.Contains(doc, "| `"+field+"` |") {
			t.Errorf("the guide's table does not describe %s", field)
		}
	}
}

// The README's levels of assurance: a login is at the approving device's
// level (never low), amr names the device key and the citizen's approval,
// unknown acr_values are ignored, and activation at low is refused.
func TestGuide_LevelsOfAssurance(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, "openid", "profile")
	sub := e.enroll(demoCitizens[1].PersonalID, idp.LevelSubstantial)
	for _, tc := range []struct {
		name  string
		app   *eidapp.App
		extra []oauth2.AuthCodeOption
		want  idp.Level
	}{
		{"substantial device, no acr_values", sub, nil, idp.LevelSubstantial},
		{"high device, acr_values low", e.app, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", string(idp.LevelLow))}, idp.LevelHigh},
		{"substantial device, unknown acr_values", sub, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", "urn:example:unknown")}, idp.LevelSubstantial},
	} {
		_, idt := e.codeFlow(r, newBrowser(), tc.app, tc.extra...)
		var c struct {
			ACR string   `json:"acr"`
			AMR []string `json:"amr"`
		}
		_ = idt.Claims(&c)
		if c.ACR != string(tc.want) || !slices.Equal(c.AMR, []string{"hwk", "user"}) {
			t.Errorf("%s: acr %q amr %v, want %s and [hwk user]", tc.name, c.ACR, c.AMR, tc.want)
		}
	}
	if _, _, err := e.m.EID.Activate(context.Background(), demoCitizens[1].PersonalID, idp.LevelLow); err == nil {
		t.Error("an activation code at level low was issued")
	}
}

// The guide's activation, enrollment and approval lines, run as written
// (the server's address, the code and the payload filled in): the eidsim
// binary enrolls a device and approves a real login with it.
func TestGuide_TestCitizenAndDevice(t *testing.T) {
	doc := readDoc(t, "agency-integration.md")
	blocks := fencedBlocks(doc, "sh", "eidsim enroll")
	if len(blocks) != 1 {
		t.Fatal("the guide has no activation, enrollment and approval lines")
	}
	lines := strings.Split(strings.TrimSpace(blocks[0]), "\n")
	if len(lines) != 3 {
		t.Fatalf("want activate, enroll and approve, got %q", lines)
	}
	e := startMain(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	eidsim := filepath.Join(t.TempDir(), "eidsim")
	if out, err := exec.Command(goBin, "build", "-o", eidsim, "../eidsim").CombinedOutput(); err != nil {
		t.Fatalf("build eidsim: %v\n%s", err, out)
	}
	home := filepath.Join(t.TempDir(), "citizen1")
	fill := func(args []string, code, payload string) []string {
		for i, a := range args {
			switch a {
			case "/tmp/citizen1":
				args[i] = home
			case "http://localhost:8080":
				args[i] = e.issuer
			case "CODE":
				args[i] = code
			case "onedoor-eid://login?...":
				args[i] = payload
			case "NN":
				args[i] = pick(payload) // the number the login page showed
			}
		}
		return args
	}
	run := func(line, code, payload string) string {
		t.Helper()
		args := shellWords(t, line)
		if len(args) < 4 || strings.Join(args[:3], " ") != "go run ./cmd/eidsim" {
			t.Fatalf("not an eidsim line: %q", line)
		}
		out, err := exec.Command(eidsim, fill(args[3:], code, payload)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	}

	args := shellWords(t, lines[0])
	code, out, errs := cli(t, nil, append(args[1:], "--data-dir", e.m.Config.DataDir)...)
	var act struct {
		Code string `json:"activation_code"`
	}
	decode(t, out, &act)
	if code != 0 || act.Code == "" {
		t.Fatalf("%s: exit %d %s", lines[0], code, errs)
	}
	run(lines[1], act.Code, "")

	id, secret := e.client(ClientSpec{Scope: "openid profile eid"})
	r := e.rp(id, secret, "openid", "profile", "eid")
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)))
	payload, statusURL := b.loginPage(t, u)
	run(lines[2], "", payload)
	st, next := b.status(t, statusURL)
	if st != "approved" {
		t.Fatalf("after eidsim approve the page says %q", st)
	}
	_, idt := e.exchange(r, b.follow(t, next), state, nonce, verifier)
	if idt.Subject == "" {
		t.Error("no subject")
	}
}
