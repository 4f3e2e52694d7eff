package web

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/onedoor/onedoor/idp/sso"
	"github.com/onedoor/onedoor/represent"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDiscovery_Golden pins the discovery document: what each endpoint
// accepts is a promise to every relying party (go test ./idp/web -update
// rewrites it after a deliberate change).
func TestDiscovery_Golden(t *testing.T) {
	s := &Server{cfg: Config{Issuer: "https://id.onedoor.test", Sessions: sso.New(nil, nil, nil), Registration: &Registration{},
		Represent: &represent.Service{}}}
	rec := httptest.NewRecorder()
	s.discovery(rec, httptest.NewRequest(http.MethodGet, PathDiscovery, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/discovery.golden.json"
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("discovery document changed:\n%s\nwant:\n%s", pretty.Bytes(), want)
	}
}
