package eid_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/represent"
)

// TestService_DecideAs: an approval's act_as is checked for the device's
// citizen; a party they do not represent, an act_as on a login that did
// not ask representation, or one without a checker, is refused and the
// request stays pending for a proper answer.
func TestService_DecideAs(t *testing.T) {
	ctx := context.Background()
	company := represent.Party{Type: represent.TypeOrganisation, ID: "org:abc", TaxCode: "0101234567", Name: "Công ty TNHH Ví Dụ"}
	var asked []string
	check := func(_ context.Context, citizenID, ref string) (*represent.Party, error) {
		asked = append(asked, citizenID+"/"+ref)
		switch ref {
		case company.TaxCode:
			return &company, nil
		case "0109999999":
			return nil, fmt.Errorf("outage: %w", represent.ErrUnavailable)
		case testCitizen.PersonalID:
			p := represent.Party{Type: represent.TypePerson, ID: testCitizen.ID, PersonalID: testCitizen.PersonalID}
			return &p, nil
		}
		return nil, represent.ErrNotRepresented
	}
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelHigh)
	actAs := func(ref string) func(map[string]any, *eid.ApprovalClaims) {
		return func(_ map[string]any, c *eid.ApprovalClaims) { c.ActAs = ref }
	}
	rep := func() *eid.LoginRequest {
		r := &eid.LoginRequest{ClientID: "dvc", ClientName: "DVC", Claims: []eid.ClaimRequest{{Name: "name"}}, Representation: true}
		if err := f.svc.NewLogin(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := rep()
	if v := f.svc.AppView(r); !v.Representation {
		t.Errorf("AppView of a representation login: %+v", v)
	}
	for _, ref := range []string{"0107654321", "001099000000", testCitizen.PersonalID} {
		_, err := f.svc.DecideAs(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, actAs(ref)), check)
		if !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("act_as %s: err = %v, want ErrInvalid", ref, err)
		}
	}
	if _, err := f.svc.DecideAs(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, actAs("0109999999")), check); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("outage: err = %v, want ErrUnavailable", err)
	}
	// Refused without a checker, as the plain Decide does.
	if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, actAs(company.TaxCode))); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("Decide with act_as: err = %v, want ErrInvalid", err)
	}
	if st, _, _ := f.svc.Status(ctx, r.ID); st != eid.StatusPending {
		t.Fatalf("after refusals: %s, want pending", st)
	}
	d, err := f.svc.DecideAs(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, actAs(company.TaxCode)), check)
	if err != nil || !d.Approved || d.ActAs == nil || d.ActAs.ID != company.ID || d.CitizenID != testCitizen.ID {
		t.Fatalf("DecideAs = %+v, %v", d, err)
	}
	if asked[0] != testCitizen.ID+"/0107654321" {
		t.Errorf("checked %v: must be the device's citizen", asked)
	}
	_, taken, err := f.svc.TakeDecision(ctx, r.ID)
	if err != nil || taken.ActAs == nil || taken.ActAs.ID != company.ID {
		t.Errorf("stored decision = %+v, %v", taken, err)
	}

	// A login that did not ask representation (an agency that does not
	// register the scope): act_as refused, even for a represented party.
	plain := f.newLogin(t, "")
	if _, err := f.svc.DecideAs(ctx, plain.ID, dev, f.approval(t, dev, key, plain, eid.DecisionApprove, []string{"name"}, actAs(company.TaxCode)), check); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("act_as without the scope: err = %v, want ErrInvalid", err)
	}
	if st, _, _ := f.svc.Status(ctx, plain.ID); st != eid.StatusPending {
		t.Errorf("after refusal: %s, want pending", st)
	}
	// Acting for themselves: no act_as, no party.
	r = rep()
	if d, err := f.svc.DecideAs(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil), check); err != nil || d.ActAs != nil {
		t.Errorf("self = %+v, %v", d, err)
	}
}
