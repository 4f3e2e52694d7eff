package main

import (
	"strings"
	"testing"
)

// Agencies form a tree; codes are unique; a parent must exist first; the
// list is JSON.
func TestCLI_Agency(t *testing.T) {
	env := map[string]string{"ONEDOOR_DATA_DIR": migratedDir(t)}
	code, out, errOut := cli(t, env, "agency", "create", "--code", "BTP", "--name", "Bộ Tư pháp (demo)", "--name-en", "Ministry of Justice (demo)")
	if code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	var a agencyView
	decode(t, out, &a)
	if a.Code != "BTP" || a.Name != "Bộ Tư pháp (demo)" || a.NameEN != "Ministry of Justice (demo)" || a.CreatedAt.IsZero() {
		t.Errorf("created %+v", a)
	}
	if code, out, _ := cli(t, env, "agency", "create", "--code", "BTP-HT", "--name", "Cục Hộ tịch (demo)", "--parent", "BTP"); code != 0 {
		t.Fatalf("create child: %d %s", code, out)
	}
	if code, out, _ := cli(t, env, "agency", "create", "--code", "UBND-HN", "--name", "UBND Hà Nội (demo)", "--province", "HN"); code != 0 {
		t.Fatalf("create province: %d %s", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--code", "BTP", "--name", "again"}, "exists"},
		{[]string{"--code", "X-1", "--name", "orphan", "--parent", "NOPE"}, "no parent agency"},
		{[]string{"--name", "no code"}, "--code and --name are required"},
	} {
		code, _, errOut := cli(t, env, append([]string{"agency", "create"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("create %v: %d %q, want an error saying %q", tc.args, code, errOut, tc.want)
		}
	}
	code, out, _ = cli(t, env, "agency", "list")
	var list []agencyView
	decodeList(t, out, "agencies", &list)
	if code != 0 || len(list) != 3 || list[1].Code != "BTP-HT" || list[1].ParentCode != "BTP" || list[2].ProvinceCode != "HN" {
		t.Errorf("list: %d %+v", code, list)
	}
}
