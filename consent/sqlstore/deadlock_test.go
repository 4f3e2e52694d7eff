package sqlstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// TestConcurrency_ReleaseAmendCheckpoint runs releases (basis row, then a
// citizen's head), amendments (trail head, then basis row) and
// checkpoints (heads, the trail's among them) side by side on PostgreSQL
// for a while: with the checkpoint locking a citizen head before the
// trail head they could form a lock cycle, which PostgreSQL breaks by
// failing one of them (deadlock detected). None may fail. The cycle
// needs the update to meet a citizen's head before the trail's, which
// depends on PostgreSQL's plan and the rows' places, so this test guards
// against regressions rather than reproducing the cycle at will: the lock
// order itself is argued at Store.lockTrailHeads.
func TestConcurrency_ReleaseAmendCheckpoint(t *testing.T) {
	db := dbtest.Postgres(t)
	s := migrated(t, db, sqldb.PostgreSQL)
	ctx := t.Context()
	signer, verifier := consenttest.Keys(t, "a")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	const citizens = 8
	release := func(citizen string, b *consent.LegalBasis) error {
		return s.AppendRelease(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: citizen, At: time.Now(),
			Actor: consent.Actor{Agency: b.Agency, ClientID: "bhxh-app"}, Channel: consent.ChannelBroker, Items: []string{"name"},
			Purpose: b.Purpose, Basis: b.Basis, Law: b.Law, BasisID: b.ID, BasisVersion: b.Version, Outcome: consent.OutcomeReleased})
	}
	// The citizens' heads exist before the trail's, so a checkpoint's
	// update meets them first.
	for i := range citizens {
		if err := s.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("cit_", i), At: time.Now(),
			Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
	}
	b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L1"}
	if err := s.PutLegalBasis(ctx, b, consenttest.TestChange); err != nil {
		t.Fatal(err)
	}
	current := func() (*consent.LegalBasis, error) {
		bs, err := s.LegalBases(ctx, b.Agency, b.Purpose)
		if err != nil || len(bs) != 1 {
			return nil, fmt.Errorf("live bases %v: %w", bs, err)
		}
		return bs[0], nil
	}
	// The load runs for a while; what is asserted is only that nothing failed.
	load := newMixedLoad(t, 1500*time.Millisecond, func(err error) bool {
		var refused *consent.RefusedError
		return errors.As(err, &refused) // an amendment overtook the release
	})
	loop := load.loop
	for w := range 4 {
		loop("release", func(i int) error {
			cur, err := current()
			if err != nil {
				return err
			}
			return release(fmt.Sprint("cit_", (w+i)%citizens), cur)
		})
	}
	loop("amend", func(i int) error {
		_, err := s.AmendLegalBasis(ctx, b.ID, []string{"name"}, fmt.Sprint("L", i), consenttest.TestChange)
		return err
	})
	loop("checkpoint", func(int) error {
		_, err := cp.Commit(ctx)
		return err
	})
	load.verify(t, cp, s)
}
