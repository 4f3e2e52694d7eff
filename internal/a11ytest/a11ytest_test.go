package a11ytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
		b, err := os.ReadFile(filepath.Join("assets", name)) // #nosec G304 G703 -- names from our own SHA256SUMS
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

// TestCheck_FindsViolations: on a page with known faults, Check reports them
// with their impact (the checker really runs).
func TestCheck_FindsViolations(t *testing.T) {
	chromium := os.Getenv("ONEDOOR_TEST_CHROMIUM")
	if chromium == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but ONEDOOR_TEST_CHROMIUM is not set")
		}
		t.Skip("set ONEDOOR_TEST_CHROMIUM to run axe in Chromium")
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()))...)
	defer acancel()
	tab, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(tab, 30*time.Second)
	defer cancelT()
	page := `<!doctype html><html><head><title>t</title></head><body><main><h1>x</h1>` +
		`<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">` +
		`<p style="color:#ccc;background:#fff">faint</p></main></body></html>`
	if err := chromedp.Do(ctx, chromedp.Navigate("data:text/html,"+url.PathEscape(page))); err != nil {
		t.Fatal(err)
	}
	vs, err := Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vs {
		got[v.ID] = v.Impact
	}
	for id, impact := range map[string]string{"image-alt": Critical, "html-has-lang": Serious, "color-contrast": Serious} {
		if got[id] != impact {
			t.Errorf("violation %s: impact %q, want %q (all: %v)", id, got[id], impact, vs)
		}
	}
	if len(Severe(vs)) < 3 {
		t.Errorf("Severe kept %d of %v", len(Severe(vs)), vs)
	}
	// A second run reuses the injected script.
	if _, err := Check(ctx); err != nil {
		t.Fatal(err)
	}
}
