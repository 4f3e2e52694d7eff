package docs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
)

// refRE finds the URLs the page loads or links to.
var refRE = regexp.MustCompile(`(?i)\b(?:src|href|data-spec-url)="([^"]*)"`)

func TestPageLoadsSameOriginAssetsOnly(t *testing.T) {
	html := string(Page("/v1/openapi.json"))
	if strings.Contains(html, "http://") || strings.Contains(html, "https://") || strings.Contains(html, "//cdn") {
		t.Fatalf("page names another host:\n%s", html)
	}
	refs := refRE.FindAllStringSubmatch(html, -1)
	if len(refs) < 4 {
		t.Fatalf("found %d references, want the style, two scripts and the spec:\n%s", len(refs), html)
	}
	var scripts int
	for _, m := range refs {
		u := m[1]
		switch {
		case u == "data:,": // the empty favicon: no request at all
		case u == "/v1/openapi.json":
		case strings.HasPrefix(u, AssetPrefix):
			name := strings.TrimPrefix(u, AssetPrefix)
			if _, err := fs.Stat(Assets, name); err != nil {
				t.Errorf("%s: no such asset: %v", u, err)
			}
			if strings.HasSuffix(name, ".js") {
				scripts++
			}
		default:
			t.Errorf("reference %q is not a same-origin path", u)
		}
	}
	if scripts != 2 {
		t.Errorf("page loads %d scripts, want Redoc and init.js", scripts)
	}
	// Every script is a file: the policy allows no inline script.
	if n := strings.Count(html, "<script"); n != scripts {
		t.Errorf("%d script elements for %d script files", n, scripts)
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self';") {
		t.Errorf("policy %q allows scripts beyond the server's", ContentSecurityPolicy)
	}
}

func TestPageEscapesSpecURL(t *testing.T) {
	html := string(Page(`/x"><script>alert(1)</script>`))
	if strings.Contains(html, "<script>alert") {
		t.Fatalf("spec URL not escaped:\n%s", html)
	}
	for _, m := range refRE.FindAllStringSubmatch(string(Page("javascript:alert(1)")), -1) {
		if strings.HasPrefix(m[1], "javascript:") {
			t.Fatalf("javascript: URL kept in %s", m[0])
		}
	}
}

// The vendored files are byte for byte what update.sh fetched, next to
// their licenses.
func TestVendoredAssets(t *testing.T) {
	f, err := os.Open("SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("malformed line %q", sc.Text())
		}
		sums[name] = sum
	}
	for _, name := range []string{"redoc.standalone.js", "redoc.standalone.js.LICENSE.txt", "redoc.LICENSE"} {
		b, err := fs.ReadFile(Assets, name)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if got := hex.EncodeToString(h[:]); got != sums[name] {
			t.Errorf("%s: sha256 %s, want %s (run update.sh)", name, got, sums[name])
		}
	}
	lic, _ := fs.ReadFile(Assets, "redoc.LICENSE")
	if !bytes.Contains(lic, []byte("MIT License")) {
		t.Error("redoc.LICENSE is not Redoc's MIT license")
	}
	// The bundle announces the version update.sh pins.
	script, err := os.ReadFile("update.sh")
	if err != nil {
		t.Fatal(err)
	}
	v := regexp.MustCompile(`(?m)^VERSION=(\S+)$`).FindSubmatch(script)
	notices, _ := fs.ReadFile(Assets, "redoc.standalone.js.LICENSE.txt")
	if v == nil || !bytes.Contains(notices, []byte(`Version: "`+string(v[1])+`"`)) {
		t.Errorf("the bundle is not the version update.sh names (%q)", v)
	}
}
