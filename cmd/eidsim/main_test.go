package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp/eid"
)

const payload = "onedoor-eid://login?request=AbCdEfGhIjKlMnOpQrStUv&issuer=http%3A%2F%2F127.0.0.1%3A1"

func TestParseArgs(t *testing.T) {
	t.Setenv("EIDSIM_API", "") // the default, whatever the environment says
	tests := []struct {
		name string
		args []string
		want *options // nil: a usage error
	}{
		{"enroll", []string{"enroll", "--home", "h", "--idp", "https://id.test", "--personal-id", "001099012345", "--activation-code", "ABCDE-FGHJK"},
			&options{cmd: "enroll", home: "h", idp: "https://id.test", personalID: "001099012345", activationCode: "ABCDE-FGHJK", deviceName: "eidsim", platform: runtime.GOOS, model: "eidsim"}},
		{"enroll with = and a name", []string{"enroll", "-home=h", "--idp=u", "--personal-id=1", "--activation-code=c", "--device-name", "Pixel 9", "--platform=android", "--model", "Pixel 9 Pro"},
			&options{cmd: "enroll", home: "h", idp: "u", personalID: "1", activationCode: "c", deviceName: "Pixel 9", platform: "android", model: "Pixel 9 Pro"}},
		{"enroll missing flags", []string{"enroll", "--home", "h", "--idp", "u"}, nil},
		{"enroll positional", []string{"enroll", "--home", "h", "--idp", "u", "--personal-id", "1", "--activation-code", "c", "extra"}, nil},
		{"approve flags first", []string{"approve", "--home", "h", "--deny", payload},
			&options{cmd: "approve", home: "h", deny: true, payload: payload}},
		{"approve flags after", []string{"approve", payload, "--deny", "--home", "h", "--json"},
			&options{cmd: "approve", home: "h", deny: true, json: true, payload: payload}},
		{"approve flags around", []string{"approve", "--home=h", payload, "--share", "name, birthdate,,"},
			&options{cmd: "approve", home: "h", share: []string{"name", "birthdate"}, payload: payload}},
		{"approve share repeated", []string{"approve", "--home=h", "--share=name", "--share", "address", payload},
			&options{cmd: "approve", home: "h", share: []string{"name", "address"}, payload: payload}},
		{"approve share nothing", []string{"approve", "--home=h", "--share=", payload},
			&options{cmd: "approve", home: "h", share: []string{}, payload: payload}},
		{"approve with a pick", []string{"approve", "--home=h", "--match", "07", payload},
			&options{cmd: "approve", home: "h", match: "07", payload: payload}},
		{"approve after --", []string{"approve", "--home", "h", "--", "-odd"},
			&options{cmd: "approve", home: "h", payload: "-odd"}},
		// Request ids are base64url: one in 64 begins with '-'.
		{"approve an id that looks like a flag", []string{"approve", "--home", "h", "--match", "42", "-Do9c-Euv278EMii04ch7Q"},
			&options{cmd: "approve", home: "h", match: "42", payload: "-Do9c-Euv278EMii04ch7Q"}},
		{"approve an id that looks like a flag, flags after", []string{"approve", "-Do9c-Euv278EMii04ch7Q", "--home", "h", "--deny"},
			&options{cmd: "approve", home: "h", deny: true, payload: "-Do9c-Euv278EMii04ch7Q"}},
		{"approve a short dash argument is still a flag", []string{"approve", "--home", "h", "-Do9c", payload}, nil},
		{"approve without payload", []string{"approve", "--home", "h", "--deny"}, nil},
		{"approve two payloads", []string{"approve", "--home", "h", payload, payload}, nil},
		{"approve without home", []string{"approve", payload}, nil},
		{"approve unknown flag", []string{"approve", "--home", "h", "--force", payload}, nil},
		{"approve flag without value", []string{"approve", payload, "--home"}, nil},
		{"deny with a value", []string{"approve", "--home", "h", "--deny=maybe", payload}, nil},
		{"login", []string{"login", "--home", "h"}, &options{cmd: "login", home: "h"}},
		{"login extra", []string{"login", "--home", "h", "now"}, nil},
		{"login with approve's flag", []string{"login", "--home", "h", "--deny"}, nil},
		{"show", []string{"show", "--home", "/tmp/x"}, &options{cmd: "show", home: "/tmp/x"}},
		{"devices", []string{"devices", "--home", "/tmp/x"}, &options{cmd: "devices", home: "/tmp/x"}},
		{"revoke-device", []string{"revoke-device", "DEV1", "--home", "/tmp/x"}, &options{cmd: "revoke-device", home: "/tmp/x", deviceID: "DEV1"}},
		{"revoke-device without id", []string{"revoke-device", "--home", "/tmp/x"}, nil},
		{"api flags first", []string{"api", "--home", "h", "--api", "http://api.test", "-H", "Content-Type: text/plain", "--include", "post", "/v1/x", "{}"},
			&options{cmd: "api", home: "h", api: "http://api.test", include: true, headers: []header{{"Content-Type", "text/plain"}},
				method: "POST", path: "/v1/x", body: "{}", hasBody: true}},
		{"api flags after", []string{"api", "GET", "/v1/me?x=1", "--home", "h", "-i", "--header", "X-A: 1", "-H", "X-A:2"},
			&options{cmd: "api", home: "h", api: defaultAPI, include: true, headers: []header{{"X-A", "1"}, {"X-A", "2"}}, method: "GET", path: "/v1/me?x=1"}},
		{"api removing a header", []string{"api", "--home", "h", "-H", "Content-Type:", "PUT", "/v1/x", "@body.json"},
			&options{cmd: "api", home: "h", api: defaultAPI, headers: []header{{"Content-Type", ""}}, method: "PUT", path: "/v1/x", body: "@body.json", hasBody: true}},
		{"api without method", []string{"api", "--home", "h"}, nil},
		{"api without path", []string{"api", "--home", "h", "GET"}, nil},
		{"api absolute URL", []string{"api", "--home", "h", "GET", "https://evil.example/v1/me"}, nil},
		{"api scheme-relative path", []string{"api", "--home", "h", "GET", "//evil.example/v1/me"}, nil},
		{"api bad method", []string{"api", "--home", "h", "GE(T", "/v1/me"}, nil},
		{"api header without a colon", []string{"api", "--home", "h", "-H", "Content-Type", "GET", "/v1/me"}, nil},
		{"api header with a bad name", []string{"api", "--home", "h", "-H", "Content Type: x", "GET", "/v1/me"}, nil},
		{"api two bodies", []string{"api", "--home", "h", "POST", "/v1/x", "{}", "{}"}, nil},
		{"events", []string{"events", "--home", "h"}, &options{cmd: "events", home: "h", api: defaultAPI}},
		{"events with flags", []string{"events", "--max", "3", "--home", "h", "--api", "http://api.test"}, &options{cmd: "events", home: "h", api: "http://api.test", max: 3}},
		{"events negative max", []string{"events", "--home", "h", "--max", "-1"}, nil},
		{"events positional", []string{"events", "--home", "h", "GET"}, nil},
		{"events with api's flag", []string{"events", "--home", "h", "--include"}, nil},
		{"representations", []string{"representations", "--home", "h"}, &options{cmd: "representations", home: "h", api: defaultAPI}},
		{"representations positional", []string{"representations", "--home", "h", "x"}, nil},
		{"mandate grant", []string{"mandate", "grant", "--home", "h", "--organisation", "0101234567", "--grantee", "001099000002",
			"--service", "1.001193", "--service=2.000001,3.1", "--category", "business", "--valid-until", "2027-06-01", "--may-delegate"},
			&options{cmd: "mandate grant", home: "h", api: defaultAPI, organisation: "0101234567", grantee: "001099000002",
				services: []string{"1.001193", "2.000001", "3.1"}, categories: []string{"business"}, mayDelegate: true,
				validUntil: time.Date(2027, 6, 2, 0, 0, 0, 0, vietnam)}},
		{"mandate grant for a ward from a time", []string{"mandate", "grant", "--home", "h", "--person", "001099000010", "--grantee", "001099000002",
			"--category", "education", "--valid-from", "2027-01-01T08:00:00+07:00", "--valid-until", "2027-01-31"},
			&options{cmd: "mandate grant", home: "h", api: defaultAPI, person: "001099000010", grantee: "001099000002",
				categories: []string{"education"}, validFrom: rfc3339(t, "2027-01-01T08:00:00+07:00"), validUntil: time.Date(2027, 2, 1, 0, 0, 0, 0, vietnam)}},
		{"mandate grant for both", []string{"mandate", "grant", "--home", "h", "--person", "001099000010", "--organisation", "0101234567",
			"--grantee", "001099000002", "--service", "x", "--valid-until", "2027-01-31"}, nil},
		{"mandate grant without terms", []string{"mandate", "grant", "--home", "h", "--organisation", "0101234567", "--grantee", "001099000002", "--valid-until", "2027-01-31"}, nil},
		{"mandate grant without end", []string{"mandate", "grant", "--home", "h", "--organisation", "0101234567", "--grantee", "001099000002", "--service", "x"}, nil},
		{"mandate grant bad date", []string{"mandate", "grant", "--home", "h", "--organisation", "0101234567", "--grantee", "001099000002", "--service", "x", "--valid-until", "31/01/2027"}, nil},
		{"mandate list", []string{"mandate", "list", "--home", "h"}, &options{cmd: "mandate list", home: "h", api: defaultAPI}},
		{"mandate accept", []string{"mandate", "accept", "mdt_abc", "--home", "h"}, &options{cmd: "mandate accept", home: "h", api: defaultAPI, mandateID: "mdt_abc"}},
		{"mandate revoke", []string{"mandate", "revoke", "--home", "h", "--api", "http://api.test", "mdt_abc"}, &options{cmd: "mandate revoke", home: "h", api: "http://api.test", mandateID: "mdt_abc"}},
		{"mandate accept without id", []string{"mandate", "accept", "--home", "h"}, nil},
		{"mandate without what", []string{"mandate", "--home", "h"}, nil},
		{"mandate unknown", []string{"mandate", "delete", "--home", "h"}, nil},
		{"unknown command", []string{"delete", "--home", "h"}, nil},
		{"no command", nil, nil},
		{"flag instead of command", []string{"--home", "h"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if tt.want == nil {
				if _, ok := errors.AsType[*usageError](err); !ok {
					t.Errorf("parseArgs = %+v, %v; want a usage error", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseArgs = %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
}

func TestRun_ExitCodes(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"usage error", []string{"approve", "--home", empty}, 2, "", "missing PAYLOAD"},
		{"usage lists the command's flags", []string{"approve", "--bogus"}, 2, "", "-share claims"},
		{"no command", nil, 2, "", "missing command"},
		{"help", []string{"enroll", "-h"}, 0, "-activation-code code", ""},
		{"show before enrolling", []string{"show", "--home", empty}, 1, "", "not enrolled"},
		{"approve before enrolling", []string{"approve", "--home", empty, payload}, 1, "", "not enrolled"},
		{"enroll at a bad URL", []string{"enroll", "--home", empty, "--idp", "ftp://x", "--personal-id", "1", "--activation-code", "c"}, 1, "", "http(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(ctx, tt.args, &out, &errOut); code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, errOut.String())
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q", out.String(), errOut.String(), tt.stdout, tt.stderr)
			}
			if tt.code == 1 && strings.Contains(errOut.String(), "usage:") {
				t.Errorf("a failure printed the usage")
			}
		})
	}
}

// writeDevice makes a home as enroll leaves it, without an IdP.
func writeDevice(t *testing.T, idpURL string) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	home := t.TempDir()
	b, _ := json.Marshal(map[string]string{
		"idp": idpURL, "device_id": "AbCdEfGhIjKlMnOpQrStUv", "personal_id": "001099012345",
		"device_name": "eidsim", "level": "urn:onedoor:loa:high", "enrolled_at": "2025-03-01T09:00:00Z",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	if err := os.WriteFile(filepath.Join(home, "device.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

func TestRun_Show(t *testing.T) {
	home := writeDevice(t, "https://id.onedoor.test")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"show", "--home", home}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"device id:   AbCdEfGhIjKlMnOpQrStUv\n", "idp:         https://id.onedoor.test\n", "personal id: 001099012345\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

// TestRun_Approve checks what approve prints, against an IdP that answers
// without checking (eidapp's tests check the protocol).
func TestRun_Approve(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.Header.Get("Authorization"), "DeviceJWT "):
			_ = json.NewEncoder(w).Encode(eid.AppView{
				RequestID: "AbCdEfGhIjKlMnOpQrStUv", ClientID: "dvc", ClientName: "Cổng\x1b[2J DVC",
				Claims: []eid.ClaimRequest{{Name: "name"}, {Name: "phone_number", Optional: true}}, MatchChoices: []string{"17", "42", "88"},
				PurposeCode: "tax", Purpose: "Khai thuế",
			})
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/decision"):
			_, _ = w.Write([]byte(`{"status":"approved"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	home := writeDevice(t, srv.URL)
	p := eid.Payload(srv.URL, "AbCdEfGhIjKlMnOpQrStUv")

	var out, errOut bytes.Buffer
	// A QR payload needs the pick: without it approve sends nothing and
	// lists the app's three numbers.
	if code := run(context.Background(), []string{"approve", p, "--home", home}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "17, 42, 88") || out.Len() != 0 {
		t.Errorf("approve without --match: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"approve", p, "--home", home, "--match", "4"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--match") {
		t.Errorf("approve --match 4: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"approve", p, "--home", home, "--match", "43"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "17, 42, 88") {
		t.Errorf("approve --match 43 (not offered): exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"approve", p, "--home", home, "--share", "name", "--match", "42"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "relying party: Cổng?[2J DVC (dvc)\npurpose:       Khai thuế (tax)\nmatch number:  42 (picked among 17, 42, 88)\nclaims shared: name\ndeclined:      phone_number\ndecision:      approve (IdP status: approved)\n"
	if out.String() != want {
		t.Errorf("output\n%s\nwant\n%s", out.String(), want)
	}

	out.Reset()
	if code := run(context.Background(), []string{"approve", "--json", "--match", "42", "--home", home, p}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if got["match_number"] != "42" || got["decision"] != "approve" || !reflect.DeepEqual(got["claims"], []any{"name", "phone_number"}) {
		t.Errorf("--json output = %v", got)
	}

	// --decline shares every requested claim but the declined ones.
	out.Reset()
	if code := run(context.Background(), []string{"approve", "--json", "--match", "42", "--decline", "phone_number", "--home", home, p}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got = nil
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got["claims"], []any{"name"}) || !reflect.DeepEqual(got["declined"], []any{"phone_number"}) || got["purpose_code"] != "tax" {
		t.Errorf("--decline output = %v", got)
	}
	if code := run(context.Background(), []string{"approve", "--decline", "x", "--share", "name", "--home", home, p}, &out, &errOut); code != 2 {
		t.Errorf("--share with --decline: exit %d, want 2", code)
	}
}

func rfc3339(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseArgs_Help(t *testing.T) {
	if _, err := parseArgs([]string{"login", "--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("err = %v, want flag.ErrHelp", err)
	}
}

// `eidsim --help` prints every command's flags with their defaults and
// exits 0.
func TestRun_HelpListsEveryFlag(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{arg}, &out, &errb); code != 0 || errb.Len() != 0 {
			t.Fatalf("eidsim %s: exit %d, stderr %q", arg, code, errb.String())
		}
		for _, want := range []string{"flags of enroll:", "flags of approve:", "-activation-code", `(default "eidsim")`, "eidsim events --home DIR", "flags of events:", "-max N",
			"flags of mandate grant:", "-may-delegate", "eidsim representations --home DIR"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("eidsim %s lacks %q", arg, want)
			}
		}
	}
}
