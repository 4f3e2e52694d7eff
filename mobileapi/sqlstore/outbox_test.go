package sqlstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	idpsqlstore "github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/sqlstore"
	"github.com/onedoor/onedoor/push"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// failingOutbox fails every enqueue, as a full disk or a dropped
// connection would in the middle of the transaction.
type failingOutbox struct{}

func (failingOutbox) EnqueueTx(context.Context, sqldb.Querier, ...*push.Message) error {
	return errors.New("outbox unavailable")
}

// TestTransition_NotificationCommitsWithTheInboxMessage checks the
// transactional outbox: a decision's inbox message and its push are
// written together, and a failed enqueue leaves the application as it was.
func TestTransition_NotificationCommitsWithTheInboxMessage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := b.open(t)
			if err := idpsqlstore.New(db, d).Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			ps := pushsql.New(db, d)
			if err := ps.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			s := sqlstore.New(db, d, sqlstore.WithOutbox(ps), sqlstore.WithJobs(ps))
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			a := &mobileapi.Application{CitizenID: "cit-1", ServiceID: "svc_test", ServiceCode: "TEST.001", ServiceVersion: 1,
				AgencyCode: "AG", Form: json.RawMessage(`{}`)}
			if err := s.CreateApplication(ctx, a); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Transition(ctx, mobileapi.Transition{Scope: mobileapi.Scope{CitizenID: "cit-1"}, ApplicationID: a.ID,
				Actor: mobileapi.ActorCitizen, To: mobileapi.StatusSubmitted}); err != nil {
				t.Fatal(err)
			}

			approve := func(s *sqlstore.Store) (*mobileapi.Message, error) {
				inbox := &mobileapi.Message{Title: mobileapi.Text{VI: "Đã duyệt", EN: "Approved"}, Body: "Come and collect it."}
				_, err := s.Transition(ctx, mobileapi.Transition{Scope: mobileapi.Scope{AgencyCode: "AG"}, ApplicationID: a.ID,
					Actor: mobileapi.ActorAgency, To: mobileapi.StatusApproved, Inbox: inbox, Recipients: []string{"cit-1"}})
				return inbox, err
			}
			broken := sqlstore.New(db, d, sqlstore.WithOutbox(failingOutbox{}))
			if _, err := approve(broken); err == nil {
				t.Fatal("the transition succeeded though its notification could not be queued")
			}
			if got, _ := s.GetApplication(ctx, mobileapi.Scope{CitizenID: "cit-1"}, a.ID); got.Status != mobileapi.StatusSubmitted {
				t.Fatalf("status after the failed transition: %s", got.Status)
			}
			if l, _, _ := s.ListInbox(ctx, "cit-1", mobileapi.Page{Limit: 10}); len(l) != 0 {
				t.Fatalf("the inbox kept %d messages of the failed transition", len(l))
			}

			inbox, err := approve(s)
			if err != nil {
				t.Fatal(err)
			}
			if inbox.NotificationID == "" {
				t.Fatal("no notification id")
			}
			m, err := ps.GetMessage(ctx, "cit-1", inbox.NotificationID)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != push.KindResult || m.InboxMessageID != inbox.ID || m.ApplicationID != a.ID || m.AgencyCode != "AG" ||
				m.ServiceCode != "TEST.001" || m.Title.EN != "Approved" || m.State != push.StateQueued {
				t.Errorf("queued notification = %+v", m)
			}
		})
	}
}

// TestTransition_EveryRecipientGetsItsPush: an application filed for
// someone else sends its decision to each recipient's inbox with its own
// push, in the one transaction.
func TestTransition_EveryRecipientGetsItsPush(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := b.open(t)
			if err := idpsqlstore.New(db, d).Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			ps := pushsql.New(db, d)
			if err := ps.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			s := sqlstore.New(db, d, sqlstore.WithOutbox(ps), sqlstore.WithJobs(ps))
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			a := &mobileapi.Application{CitizenID: "cit-parent", ServiceID: "svc_test", ServiceCode: "TEST.001", ServiceVersion: 1,
				AgencyCode: "AG", Form: json.RawMessage(`{}`),
				Subject: mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: "cit-child", Name: "Bé Thử", Ref: "000000000099"}}
			if err := s.CreateApplication(ctx, a); err != nil {
				t.Fatal(err)
			}
			parent := mobileapi.Scope{CitizenID: "cit-parent", Represents: []mobileapi.Represented{{PartyID: "cit-child"}}}
			if _, err := s.Transition(ctx, mobileapi.Transition{Scope: parent, ApplicationID: a.ID,
				Actor: mobileapi.ActorCitizen, To: mobileapi.StatusSubmitted}); err != nil {
				t.Fatal(err)
			}
			inbox := &mobileapi.Message{Title: mobileapi.Text{VI: "Đã duyệt", EN: "Approved"}}
			if _, err := s.Transition(ctx, mobileapi.Transition{Scope: mobileapi.Scope{AgencyCode: "AG"}, ApplicationID: a.ID,
				Actor: mobileapi.ActorAgency, To: mobileapi.StatusApproved, Inbox: inbox,
				Recipients: []string{"cit-parent", "cit-child", "cit-other-parent"}}); err != nil {
				t.Fatal(err)
			}
			for _, who := range []string{"cit-parent", "cit-child", "cit-other-parent"} {
				ms, err := ps.MessagesAfter(ctx, who, 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				inb, _, err := s.ListInbox(ctx, who, mobileapi.Page{Limit: 10})
				if err != nil {
					t.Fatal(err)
				}
				if len(ms) != 1 || len(inb) != 1 || ms[0].InboxMessageID != inb[0].ID || ms[0].CitizenID != who || ms[0].Kind != push.KindResult {
					t.Errorf("%s: pushes %+v, inbox %+v", who, ms, inb)
				}
			}
		})
	}
}
