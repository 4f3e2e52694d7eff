package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/represent"
)

// An operator lists a citizen's mandates, shows one and revokes it: the
// revocation is the operator's, takes the tokens issued under it with it,
// and happens once.
func TestCLI_Mandate(t *testing.T) {
	dir := migratedDir(t)
	if code, _, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, writeTemp(t, "c.json", citizensJSON)); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := cli(t, nil, "org", "import", "--data-dir", dir, writeTemp(t, "o.csv", orgsCSV)); code != 0 {
		t.Fatal(errs)
	}
	m := openDir(t, dir)
	ctx := t.Context()
	rep, _ := m.Store.GetCitizenByPersonalID(ctx, "000000000101")
	md, err := m.Represent.Grant(ctx, represent.GrantRequest{GrantorID: rep.ID, Organisation: "0100000101", Grantee: "000000000102",
		Services: []string{"tax-return"}, ValidUntil: time.Now().AddDate(0, 6, 0), Evidence: "eyJ.fake.jws"})
	if err != nil {
		t.Fatal(err)
	}

	code, out, errs := cli(t, nil, "mandate", "list", "--data-dir", dir, "--personal-id", "000000000102")
	var list struct{ Mandates []mandateView }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Mandates) != 1 {
		t.Fatalf("list: exit %d: %s %s", code, out, errs)
	}
	if v := list.Mandates[0]; v.ID != md.ID || v.State != represent.MandatePending || v.Grantor != "000000000101" || v.Grantee != "000000000102" ||
		v.Party != "0100000101" || v.PartyType != "organisation" {
		t.Errorf("listed as %+v", v)
	}
	if strings.Contains(out, "eyJ.fake.jws") {
		t.Error("the list shows the evidence")
	}
	if code, out, _ := cli(t, nil, "mandate", "show", "--data-dir", dir, md.ID); code != 0 || !strings.Contains(out, `"services": [`) {
		t.Errorf("show: exit %d: %s", code, out)
	}

	code, out, errs = cli(t, nil, "mandate", "revoke", "--data-dir", dir, md.ID)
	var v mandateView
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.State != represent.MandateRevoked || v.RevokedBy != represent.OperatorActor {
		t.Fatalf("revoke: exit %d: %s %s", code, out, errs)
	}
	if denied, err := m.Store.AnyRevoked(ctx, represent.MandateKey(md.ID)); err != nil || !denied {
		t.Errorf("the mandate's tokens are not denied: %v %v", denied, err)
	}
	if code, _, errs := cli(t, nil, "mandate", "revoke", "--data-dir", dir, md.ID); code != 1 || !strings.Contains(errs, "revoked already") {
		t.Errorf("revoke twice: exit %d: %s", code, errs)
	}
	if code, _, errs := cli(t, nil, "mandate", "show", "--data-dir", dir, "mdt_nothing"); code != 1 || !strings.Contains(errs, "no mandate mdt_nothing") {
		t.Errorf("show a missing one: exit %d: %s", code, errs)
	}
	if code, _, errs := cli(t, nil, "mandate", "list", "--data-dir", dir, "--personal-id", "000000000999"); code != 1 || !strings.Contains(errs, "no citizen has personal id") {
		t.Errorf("list for nobody: exit %d: %s", code, errs)
	}
	for _, args := range [][]string{{"mandate"}, {"mandate", "fly"}, {"mandate", "list"}, {"mandate", "list", "--personal-id", "12"}, {"mandate", "show"}, {"mandate", "revoke", "a", "b"}} {
		if code, _, _ := cli(t, nil, append(args, "--data-dir", dir)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
