package sqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/push"
)

// The applications' part of mobileapi.Store.
var (
	_ mobileapi.ApplicationStore = (*Store)(nil)
	_ mobileapi.QueueStore       = (*Store)(nil)
	_ mobileapi.WebhookStore     = (*Store)(nil)
	_ mobileapi.InboxStore       = (*Store)(nil)
)

// File kinds in api_application_files.
const (
	kindAttachment = "attachment"
	kindDocument   = "document"
)

const applicationColumns = `id, citizen_id, service_id, service_code, service_version, agency_code, status,
	form, prefilled, version, created_at, updated_at, submitted_at, decided_at,
	applicant_name, subject_type, subject_id, subject_name, subject_ref, service_category`

const fileColumns = `id, name, content_type, size, sha256, document_code, blob_key, created_at`

// CreateApplication stores a new draft with its first timeline entry. ID,
// Status, Version, the times and Timeline are set here; a is filled in.
func (s *Store) CreateApplication(ctx context.Context, a *mobileapi.Application) error {
	const op = "create application"
	switch {
	case a.CitizenID == "":
		return invalidInput(op, "citizen_id is required")
	case a.ServiceID == "":
		return invalidInput(op, "service_id is required")
	case a.ServiceVersion < 1:
		return invalidInput(op, "service_version must be positive")
	case a.AgencyCode == "":
		return invalidInput(op, "agency_code is required")
	case a.Subject.ID != "" && a.Subject.Type != mobileapi.SubjectPerson && a.Subject.Type != mobileapi.SubjectOrganisation:
		return invalidInput(op, "subject type must be person or organisation")
	}
	form, err := formText(op, a.Form)
	if err != nil {
		return err
	}
	prefilled := []byte("{}")
	if len(a.Prefilled) > 0 {
		if prefilled, err = json.Marshal(a.Prefilled); err != nil {
			return invalidInput(op, "prefilled cannot be encoded")
		}
	}
	now := s.clock()
	b := *a
	b.ID = newID("app")
	b.Status = mobileapi.StatusDraft
	b.Form = json.RawMessage(form)
	b.Version = 1
	b.CreatedAt, b.UpdatedAt = now, now
	b.SubmittedAt, b.DecidedAt = nil, nil
	b.Attachments, b.Results = nil, nil
	b.Timeline = []mobileapi.TimelineEntry{{At: now, By: "citizen", To: mobileapi.StatusDraft}}
	if b.Subject.ID == "" || b.Subject.ID == b.CitizenID {
		b.Subject = mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: b.CitizenID, Name: cmpOr(b.Subject.Name, b.ApplicantName), Ref: b.Subject.Ref}
	}
	if len(b.Prefilled) == 0 {
		b.Prefilled = nil
	}
	err = s.inTx(ctx, op, func(q sqldb.Querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO api_applications (`+applicationColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, $13, $14, $15, $16, $17, $18)`,
			b.ID, b.CitizenID, b.ServiceID, b.ServiceCode, b.ServiceVersion, b.AgencyCode, b.Status,
			form, string(prefilled), b.Version, sqldb.MS(now), sqldb.MS(now),
			b.ApplicantName, b.Subject.Type, b.Subject.ID, b.Subject.Name, b.Subject.Ref, b.ServiceCategory)
		if err != nil {
			return sqldb.Err(op, err)
		}
		return insertTimeline(ctx, q, op, b.ID, 1, b.Timeline[0])
	})
	if err != nil {
		return err
	}
	*a = b
	return nil
}

// GetApplication returns the application with its timeline, attachments and
// published results, read in one snapshot so they match its Version.
func (s *Store) GetApplication(ctx context.Context, scope mobileapi.Scope, id string) (*mobileapi.Application, error) {
	const op = "get application"
	if err := checkScope(op, scope); err != nil {
		return nil, err
	}
	var a *mobileapi.Application
	err := s.snapshot(ctx, op, func(q sqldb.Querier) error {
		var err error
		a, err = s.loadApplication(ctx, q, op, scope, id, false)
		if err != nil {
			return err
		}
		return loadChildren(ctx, q, op, a)
	})
	return a, err
}

// ListApplications returns summaries, newest change first. The cursor is
// the (updated_at, id) of the last item: a row changing between pages moves
// to the front and is not seen twice, and no unchanged row is skipped.
func (s *Store) ListApplications(ctx context.Context, q mobileapi.ApplicationQuery) ([]*mobileapi.Application, string, error) {
	const op = "list applications"
	if err := checkScope(op, q.Scope); err != nil {
		return nil, "", err
	}
	limit := pageLimit(q.Limit)
	var (
		where []string
		args  []any
	)
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if q.Scope.CitizenID != "" {
		where = append(where, citizenWhere(q.Scope, arg))
	} else {
		where = append(where, "agency_code = "+arg(q.Scope.AgencyCode), "status <> "+arg(string(mobileapi.StatusDraft)))
	}
	if len(q.Statuses) > 0 {
		var in []string
		for _, st := range q.Statuses {
			if !st.Valid() {
				return nil, "", invalidInput(op, "status: unknown value")
			}
			in = append(in, arg(string(st)))
		}
		where = append(where, "status IN ("+strings.Join(in, ", ")+")")
	}
	if q.SubjectID != "" {
		where = append(where, "subject_id = "+arg(q.SubjectID))
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", invalidInput(op, "cursor is malformed")
		}
		where = append(where, "(updated_at < "+arg(at)+" OR (updated_at = "+arg(at)+" AND id < "+arg(id)+"))")
	}
	query := `SELECT ` + applicationColumns + ` FROM api_applications WHERE ` + strings.Join(where, " AND ") + // #nosec G202 -- constant fragments and placeholders; the values are bound
		` ORDER BY updated_at DESC, id DESC LIMIT ` + arg(limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*mobileapi.Application
	for rows.Next() {
		a, err := scanApplication(rows)
		if err != nil {
			return nil, "", sqldb.Err(op, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", sqldb.Err(op, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(sqldb.MS(last.UpdatedAt), last.ID)
	}
	return out, next, nil
}

// citizenWhere is the condition of a citizen's scope (Scope.Visible): each
// disjunct is served by an index (citizen_id or subject_id first). What a
// citizen filed for themself has subject_id = citizen_id (CreateApplication,
// migration 0005), so subject_id = me covers it; what they filed for
// someone else shows only through Represents. The citizen_id disjunct
// keeps Scope.Visible's reading of an empty subject (never stored).
func citizenWhere(scope mobileapi.Scope, arg func(any) string) string {
	me := arg(scope.CitizenID)
	or := []string{"subject_id = " + me, "(citizen_id = " + me + " AND subject_id = '')"}
	var unbounded []string
	for _, r := range scope.Represents {
		if len(r.Services) == 0 && len(r.Categories) == 0 {
			unbounded = append(unbounded, arg(r.PartyID))
			continue
		}
		var terms []string
		if len(r.Services) > 0 {
			in := make([]string, len(r.Services))
			for i, c := range r.Services {
				in[i] = arg(c)
			}
			terms = append(terms, "service_code IN ("+strings.Join(in, ", ")+")")
		}
		if len(r.Categories) > 0 {
			in := make([]string, len(r.Categories))
			for i, c := range r.Categories {
				in[i] = arg(c)
			}
			terms = append(terms, "service_category IN ("+strings.Join(in, ", ")+")")
		}
		or = append(or, "(subject_id = "+arg(r.PartyID)+" AND ("+strings.Join(terms, " OR ")+"))")
	}
	if len(unbounded) > 0 {
		or = append(or, "subject_id IN ("+strings.Join(unbounded, ", ")+")")
	}
	return "(" + strings.Join(or, " OR ") + ")"
}

// UpdateForm replaces the form of the citizen's editable application.
func (s *Store) UpdateForm(ctx context.Context, scope mobileapi.Scope, id string, ifVersion int64, form json.RawMessage) (*mobileapi.Application, error) {
	const op = "update form"
	if err := citizenOnly(op, scope); err != nil {
		return nil, err
	}
	text, err := formText(op, form)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, op, scope, id, ifVersion, func(q sqldb.Querier, a *mobileapi.Application, now time.Time) error {
		if !a.Status.Editable() {
			return fmt.Errorf("%s: status %s is not editable: %w", op, a.Status, idp.ErrConflict)
		}
		_, err := q.ExecContext(ctx, `UPDATE api_applications SET form = $1 WHERE id = $2`, text, a.ID)
		return sqldb.Err(op, err)
	})
}

// DeleteDraft deletes the citizen's draft with its timeline and attachments
// and returns the attachments' blob keys.
func (s *Store) DeleteDraft(ctx context.Context, scope mobileapi.Scope, id string, ifVersion int64) ([]string, error) {
	const op = "delete draft"
	if err := citizenOnly(op, scope); err != nil {
		return nil, err
	}
	var keys []string
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		a, err := s.loadApplication(ctx, q, op, scope, id, true)
		if err != nil {
			return err
		}
		if err := checkVersion(op, a, ifVersion); err != nil {
			return err
		}
		if a.Status != mobileapi.StatusDraft {
			return fmt.Errorf("%s: status %s is not a draft: %w", op, a.Status, idp.ErrConflict)
		}
		rows, err := q.QueryContext(ctx, `SELECT blob_key FROM api_application_files WHERE application_id = $1 ORDER BY created_at, id`, a.ID)
		if err != nil {
			return sqldb.Err(op, err)
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return sqldb.Err(op, err)
			}
			keys = append(keys, k)
		}
		if err := rows.Err(); err != nil {
			return sqldb.Err(op, err)
		}
		for _, stmt := range []string{
			`DELETE FROM api_application_files WHERE application_id = $1`,
			`DELETE FROM api_application_timeline WHERE application_id = $1`,
			`DELETE FROM api_applications WHERE id = $1`,
		} {
			if _, err := q.ExecContext(ctx, stmt, a.ID); err != nil {
				return sqldb.Err(op, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// AddAttachment adds f to the citizen's editable application. f.ID may be
// chosen by the caller (who stored the bytes under a key naming it); it is
// generated otherwise, and so is BlobKey. f is filled in.
func (s *Store) AddAttachment(ctx context.Context, scope mobileapi.Scope, id string, ifVersion int64, f *mobileapi.File) (*mobileapi.Application, error) {
	const op = "add attachment"
	if err := citizenOnly(op, scope); err != nil {
		return nil, err
	}
	if err := checkFile(op, f); err != nil {
		return nil, err
	}
	g := *f
	if g.ID == "" {
		g.ID = newID("att")
	}
	if g.BlobKey == "" {
		g.BlobKey = "applications/" + id + "/attachments/" + g.ID
	}
	a, err := s.change(ctx, op, scope, id, ifVersion, func(q sqldb.Querier, a *mobileapi.Application, now time.Time) error {
		if !a.Status.Editable() {
			return fmt.Errorf("%s: status %s is not editable: %w", op, a.Status, idp.ErrConflict)
		}
		// Counted under the application's row lock (BEGIN IMMEDIATE on
		// SQLite): concurrent uploads cannot pass the quota together.
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_application_files WHERE application_id = $1 AND kind = $2`,
			a.ID, kindAttachment).Scan(&n); err != nil {
			return sqldb.Err(op, err)
		}
		if n >= mobileapi.MaxAttachments {
			return fmt.Errorf("%s: %d files: %w", op, n, mobileapi.ErrQuota)
		}
		g.CreatedAt = now
		return insertFile(ctx, q, op, a.ID, kindAttachment, "", &g)
	})
	if err != nil {
		return nil, err
	}
	*f = g
	return a, nil
}

// AddDocument stores an unpublished result document of the competent
// agency. The application must be visible to the agency (so not a draft)
// and not finished: a decided or withdrawn application has no transition
// left to publish it (ErrConflict). The version does not change: nobody
// sees the document until it is published.
func (s *Store) AddDocument(ctx context.Context, agencyCode, applicationID string, f *mobileapi.File) error {
	const op = "add document"
	scope := mobileapi.Scope{AgencyCode: agencyCode}
	if err := checkScope(op, scope); err != nil {
		return err
	}
	if err := checkFile(op, f); err != nil {
		return err
	}
	g := *f
	if g.ID == "" {
		g.ID = newID("doc")
	}
	if g.BlobKey == "" {
		g.BlobKey = "applications/" + applicationID + "/documents/" + g.ID
	}
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		a, err := s.loadApplication(ctx, q, op, scope, applicationID, true)
		if err != nil {
			return err
		}
		if a.Status.Decided() || a.Status == mobileapi.StatusWithdrawn {
			return fmt.Errorf("%s: status %s is final: %w", op, a.Status, idp.ErrConflict)
		}
		g.CreatedAt = s.clock()
		return insertFile(ctx, q, op, a.ID, kindDocument, agencyCode, &g)
	})
	if err != nil {
		return err
	}
	*f = g
	return nil
}

// GetDocument returns a result document agencyCode uploaded to an
// application routed to it, published or not.
func (s *Store) GetDocument(ctx context.Context, agencyCode, applicationID, id string) (*mobileapi.File, error) {
	const op = "get document"
	f, err := scanFile(s.db.QueryRowContext(ctx, `SELECT f.`+strings.ReplaceAll(fileColumns, ", ", ", f.")+`
		FROM api_application_files f JOIN api_applications a ON a.id = f.application_id
		WHERE f.id = $1 AND f.application_id = $2 AND f.kind = $3 AND f.agency_code = $4 AND a.agency_code = $4`,
		id, applicationID, kindDocument, agencyCode), nil)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	return f, nil
}

// ReferencedBlobs returns which of keys an attachment or a result document
// (published or not) names.
func (s *Store) ReferencedBlobs(ctx context.Context, keys []string) (map[string]bool, error) {
	const op = "referenced blobs"
	out := make(map[string]bool, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	args := make([]any, len(keys))
	marks := make([]string, len(keys))
	for i, k := range keys {
		args[i], marks[i] = k, fmt.Sprintf("$%d", i+1)
	}
	//nolint:gosec // only placeholders are concatenated; the keys are bound
	rows, err := s.db.QueryContext(ctx, `SELECT blob_key FROM api_application_files WHERE blob_key IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, sqldb.Err(op, err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, sqldb.Err(op, err)
	}
	return out, nil
}

// Transition moves an application in one transaction: the status and
// version, the timeline entry, the agency's event with one delivery per
// subscribed webhook, the published documents and the inbox message. Any
// error leaves nothing behind.
func (s *Store) Transition(ctx context.Context, t mobileapi.Transition) (*mobileapi.Application, error) {
	const op = "transition application"
	if err := checkScope(op, t.Scope); err != nil {
		return nil, err
	}
	if !t.To.Valid() {
		return nil, invalidInput(op, "to: unknown status")
	}
	by := t.By
	switch {
	case t.Scope.CitizenID != "" && t.Actor == mobileapi.ActorCitizen:
		if by == "" {
			by = "citizen"
		}
	case t.Scope.AgencyCode != "" && t.Actor == mobileapi.ActorAgency:
		if by == "" {
			by = "agency:" + t.Scope.AgencyCode
		}
	default:
		return nil, invalidInput(op, "actor does not match the scope")
	}
	var to []string
	if t.Inbox != nil {
		if to = recipients(t.Recipients); len(to) == 0 {
			return nil, invalidInput(op, "inbox: no recipient")
		}
	}
	var msg *mobileapi.Message
	a, err := s.change(ctx, op, t.Scope, t.ApplicationID, t.IfVersion, func(q sqldb.Querier, a *mobileapi.Application, now time.Time) error {
		from := a.Status
		if !mobileapi.CanTransition(t.Actor, from, t.To) {
			return fmt.Errorf("%s: from %s to %s: %w", op, from, t.To, idp.ErrConflict)
		}
		set := `status = $1`
		args := []any{string(t.To)}
		switch {
		case t.To == mobileapi.StatusSubmitted:
			set += `, submitted_at = $3`
			args = append(args, a.ID, sqldb.MS(now))
		case t.To.Decided():
			set += `, decided_at = $3`
			args = append(args, a.ID, sqldb.MS(now))
		default:
			args = append(args, a.ID)
		}
		if _, err := q.ExecContext(ctx, `UPDATE api_applications SET `+set+` WHERE id = $2`, args...); err != nil {
			return sqldb.Err(op, err)
		}
		var seq int
		if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM api_application_timeline WHERE application_id = $1`, a.ID).Scan(&seq); err != nil {
			return sqldb.Err(op, err)
		}
		entry := mobileapi.TimelineEntry{At: now, By: by, From: from, To: t.To, Message: t.Message}
		if err := insertTimeline(ctx, q, op, a.ID, seq+1, entry); err != nil {
			return err
		}
		if typ, ok := mobileapi.EventFor(from, t.To); ok {
			e := &mobileapi.Event{ID: newID("evt"), Type: typ, AgencyCode: a.AgencyCode, ApplicationID: a.ID,
				ServiceID: a.ServiceID, ServiceCode: a.ServiceCode, OccurredAt: now}
			if err := s.enqueueEvent(ctx, q, op, e); err != nil {
				return err
			}
		}
		results, err := publishDocuments(ctx, q, op, t.Scope.AgencyCode, a.ID, t.Documents, now)
		if err != nil {
			return err
		}
		if t.Inbox != nil {
			m := *t.Inbox
			m.ID = newID("msg")
			m.ApplicationID, m.Status = a.ID, t.To
			if m.AgencyCode == "" {
				m.AgencyCode = a.AgencyCode
			}
			m.Results, m.CreatedAt, m.ReadAt = results, now, nil
			// One copy per recipient the caller named, each with its own
			// push: all or none commit.
			for i, who := range to {
				c := m
				c.CitizenID, c.NotificationID = who, ""
				if i > 0 {
					c.ID = newID("msg")
				}
				if err := s.deliver(ctx, q, op, a, t.To, &c); err != nil {
					return err
				}
				if i == 0 {
					m = c
				}
			}
			msg = &m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if msg != nil {
		*t.Inbox = *msg
	}
	return a, nil
}

// recipients are the citizens named, each once, in order, at most
// MaxRecipients: exactly whom the caller named (Transition.Recipients).
func recipients(names []string) []string {
	var out []string
	for _, o := range names {
		if o != "" && !slices.Contains(out, o) && len(out) < mobileapi.MaxRecipients {
			out = append(out, o)
		}
	}
	return out
}

// deliver inserts one inbox message and, with an outbox, its push.
func (s *Store) deliver(ctx context.Context, q sqldb.Querier, op string, a *mobileapi.Application, to mobileapi.Status, m *mobileapi.Message) error {
	if err := insertMessage(ctx, q, op, m); err != nil {
		return err
	}
	if s.outbox == nil {
		return nil
	}
	kind := push.KindStatusChange
	if to.Decided() {
		kind = push.KindResult
	}
	n := &push.Message{CitizenID: m.CitizenID, Kind: kind, ServiceCode: a.ServiceCode, AgencyCode: a.AgencyCode,
		ApplicationID: a.ID, InboxMessageID: m.ID, Title: push.Text{VI: m.Title.VI, EN: m.Title.EN}, Body: m.Body,
		// A newer status replaces an older one not yet shown.
		CollapseKey: collapseKey(a.ID)}
	if err := s.outbox.EnqueueTx(ctx, q, n); err != nil {
		return err
	}
	m.NotificationID = n.ID
	return nil
}

// change runs fn on the scope's application, locked in a write
// transaction, after checking ifVersion; then bumps the version and
// updated_at and returns the application as it now stands.
func (s *Store) change(ctx context.Context, op string, scope mobileapi.Scope, id string, ifVersion int64,
	fn func(q sqldb.Querier, a *mobileapi.Application, now time.Time) error,
) (*mobileapi.Application, error) {
	var out *mobileapi.Application
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		a, err := s.loadApplication(ctx, q, op, scope, id, true)
		if err != nil {
			return err
		}
		if err := checkVersion(op, a, ifVersion); err != nil {
			return err
		}
		now := s.clock()
		if now.Before(a.UpdatedAt) {
			now = a.UpdatedAt // a clock stepping back must not reorder the lists
		}
		if err := fn(q, a, now); err != nil {
			return err
		}
		if _, err := q.ExecContext(ctx, `UPDATE api_applications SET version = version + 1, updated_at = $1 WHERE id = $2`,
			sqldb.MS(now), a.ID); err != nil {
			return sqldb.Err(op, err)
		}
		out, err = s.loadApplication(ctx, q, op, scope, id, false)
		if err != nil {
			return err
		}
		return loadChildren(ctx, q, op, out)
	})
	return out, err
}

// loadApplication reads the application the scope may see, locking its row
// when asked; any other is ErrNotFound.
func (s *Store) loadApplication(ctx context.Context, q sqldb.Querier, op string, scope mobileapi.Scope, id string, lock bool) (*mobileapi.Application, error) {
	query := `SELECT ` + applicationColumns + ` FROM api_applications WHERE id = $1`
	if lock {
		query += s.d.ForUpdate()
	}
	a, err := scanApplication(q.QueryRowContext(ctx, query, id))
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	if !scope.Visible(a) {
		return nil, fmt.Errorf("%s: %w", op, idp.ErrNotFound)
	}
	// A lock is taken to change it: a citizen changes only what they filed.
	if lock && scope.CitizenID != "" && a.CitizenID != scope.CitizenID {
		return nil, fmt.Errorf("%s: %w", op, mobileapi.ErrNotApplicant)
	}
	return a, nil
}

// loadChildren reads a's timeline, attachments and published results.
func loadChildren(ctx context.Context, q sqldb.Querier, op string, a *mobileapi.Application) error {
	rows, err := q.QueryContext(ctx, `SELECT at, actor, from_status, to_status, message
		FROM api_application_timeline WHERE application_id = $1 ORDER BY seq`, a.ID)
	if err != nil {
		return sqldb.Err(op, err)
	}
	defer rows.Close()
	a.Timeline = nil
	for rows.Next() {
		var (
			e  mobileapi.TimelineEntry
			at int64
		)
		if err := rows.Scan(&at, &e.By, &e.From, &e.To, &e.Message); err != nil {
			return sqldb.Err(op, err)
		}
		e.At = sqldb.FromMS(at)
		a.Timeline = append(a.Timeline, e)
	}
	if err := rows.Err(); err != nil {
		return sqldb.Err(op, err)
	}
	rows.Close()
	frows, err := q.QueryContext(ctx, `SELECT kind, `+fileColumns+` FROM api_application_files
		WHERE application_id = $1 AND (kind = $2 OR published_at IS NOT NULL) ORDER BY created_at, id`, a.ID, kindAttachment)
	if err != nil {
		return sqldb.Err(op, err)
	}
	defer frows.Close()
	a.Attachments, a.Results = nil, nil
	for frows.Next() {
		var kind string
		f, err := scanFile(frows, &kind)
		if err != nil {
			return sqldb.Err(op, err)
		}
		if kind == kindAttachment {
			a.Attachments = append(a.Attachments, *f)
		} else {
			a.Results = append(a.Results, *f)
		}
	}
	return sqldb.Err(op, frows.Err())
}

// publishDocuments publishes the named documents: each must be one of the
// application's unpublished documents uploaded by agencyCode (a citizen's
// scope has none), else ErrInvalid.
func publishDocuments(ctx context.Context, q sqldb.Querier, op, agencyCode, applicationID string, ids []string, now time.Time) ([]mobileapi.File, error) {
	var out []mobileapi.File
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return nil, invalidInput(op, "documents: listed twice")
		}
		f, err := scanFile(q.QueryRowContext(ctx, `SELECT `+fileColumns+` FROM api_application_files
			WHERE id = $1 AND application_id = $2 AND kind = $3 AND agency_code = $4 AND published_at IS NULL`,
			id, applicationID, kindDocument, agencyCode), nil)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && agencyCode == "") {
			return nil, invalidInput(op, "documents: not an unpublished document of this application")
		}
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		if _, err := q.ExecContext(ctx, `UPDATE api_application_files SET published_at = $1 WHERE id = $2`, sqldb.MS(now), id); err != nil {
			return nil, sqldb.Err(op, err)
		}
		out = append(out, *f)
	}
	return out, nil
}

func insertTimeline(ctx context.Context, q sqldb.Querier, op, applicationID string, seq int, e mobileapi.TimelineEntry) error {
	_, err := q.ExecContext(ctx, `INSERT INTO api_application_timeline
		(application_id, seq, at, actor, from_status, to_status, message) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		applicationID, seq, sqldb.MS(e.At), e.By, string(e.From), string(e.To), e.Message)
	return sqldb.Err(op, err)
}

func insertFile(ctx context.Context, q sqldb.Querier, op, applicationID, kind, agencyCode string, f *mobileapi.File) error {
	_, err := q.ExecContext(ctx, `INSERT INTO api_application_files
		(application_id, kind, agency_code, `+fileColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		applicationID, kind, agencyCode, f.ID, f.Name, f.ContentType, f.Size, f.SHA256, f.DocumentCode, f.BlobKey,
		sqldb.MS(f.CreatedAt))
	return sqldb.Err(op, err)
}

func scanApplication(r sqldb.Scanner) (*mobileapi.Application, error) {
	var (
		a                  mobileapi.Application
		status             string
		form, prefilled    string
		created, updated   int64
		submitted, decided sql.NullInt64
	)
	if err := r.Scan(&a.ID, &a.CitizenID, &a.ServiceID, &a.ServiceCode, &a.ServiceVersion, &a.AgencyCode, &status,
		&form, &prefilled, &a.Version, &created, &updated, &submitted, &decided,
		&a.ApplicantName, &a.Subject.Type, &a.Subject.ID, &a.Subject.Name, &a.Subject.Ref, &a.ServiceCategory); err != nil {
		return nil, err
	}
	a.Status = mobileapi.Status(status)
	a.Form = json.RawMessage(form)
	if prefilled != "{}" {
		if err := json.Unmarshal([]byte(prefilled), &a.Prefilled); err != nil {
			return nil, fmt.Errorf("application %s: prefilled: %w", a.ID, err)
		}
	}
	a.CreatedAt, a.UpdatedAt = sqldb.FromMS(created), sqldb.FromMS(updated)
	a.SubmittedAt, a.DecidedAt = sqldb.FromNullMS(submitted), sqldb.FromNullMS(decided)
	return &a, nil
}

// scanFile reads fileColumns, preceded by the kind when kind is not nil.
func scanFile(r sqldb.Scanner, kind *string) (*mobileapi.File, error) {
	var (
		f       mobileapi.File
		created int64
	)
	dest := []any{&f.ID, &f.Name, &f.ContentType, &f.Size, &f.SHA256, &f.DocumentCode, &f.BlobKey, &created}
	if kind != nil {
		dest = append([]any{kind}, dest...)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	f.CreatedAt = sqldb.FromMS(created)
	return &f, nil
}

// snapshot runs fn in a read-only transaction that sees one snapshot:
// REPEATABLE READ on PostgreSQL, a deferred transaction on SQLite.
func (s *Store) snapshot(ctx context.Context, op string, fn func(q sqldb.Querier) error) error {
	var opts *sql.TxOptions
	if s.d == sqldb.PostgreSQL {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return sqldb.Err(op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	return sqldb.Err(op, tx.Commit())
}

// checkScope requires exactly one of the citizen and the agency.
func checkScope(op string, scope mobileapi.Scope) error {
	if (scope.CitizenID == "") == (scope.AgencyCode == "") {
		return invalidInput(op, "scope must name exactly one of a citizen and an agency")
	}
	return nil
}

// citizenOnly admits the citizen's scope alone: only they edit their
// application.
func citizenOnly(op string, scope mobileapi.Scope) error {
	if err := checkScope(op, scope); err != nil {
		return err
	}
	if scope.CitizenID == "" {
		return invalidInput(op, "scope: only the citizen changes an application's form and attachments")
	}
	return nil
}

func checkVersion(op string, a *mobileapi.Application, ifVersion int64) error {
	if ifVersion > 0 && ifVersion != a.Version {
		return fmt.Errorf("%s: version is %d, not %d: %w", op, a.Version, ifVersion, mobileapi.ErrPrecondition)
	}
	return nil
}

func checkFile(op string, f *mobileapi.File) error {
	switch {
	case f == nil:
		return invalidInput(op, "file is required")
	case f.Name == "":
		return invalidInput(op, "name is required")
	case f.ContentType == "":
		return invalidInput(op, "content_type is required")
	case f.Size < 0:
		return invalidInput(op, "size must not be negative")
	case f.SHA256 == "":
		return invalidInput(op, "sha256 is required")
	}
	return nil
}

// formText returns the form as stored: a JSON object, {} when empty.
func formText(op string, form json.RawMessage) (string, error) {
	b := bytes.TrimSpace(form)
	if len(b) == 0 {
		return "{}", nil
	}
	if b[0] != '{' || !json.Valid(b) {
		return "", invalidInput(op, "form must be a JSON object")
	}
	return string(b), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func invalidInput(op, msg string) error { return fmt.Errorf("%s: %s: %w", op, msg, idp.ErrInvalid) }

// pageLimit applies Page.Limit's rules: 0 is the default, and it is
// clamped to [1, MaxLimit].
func pageLimit(n int) int {
	switch {
	case n == 0:
		return mobileapi.DefaultLimit
	case n < 1:
		return 1
	case n > mobileapi.MaxLimit:
		return mobileapi.MaxLimit
	}
	return n
}

// encodeCursor makes the opaque cursor of a list ordered by (time, id).
func encodeCursor(ms int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(ms, 10) + "." + id))
}

// decodeCursor reads a cursor made by encodeCursor.
func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", err
	}
	ms, id, ok := strings.Cut(string(b), ".")
	if !ok || id == "" {
		return 0, "", errors.New("no id")
	}
	// Ids are short ASCII; anything else (a NUL, invalid UTF-8) would reach
	// PostgreSQL as a text parameter it refuses.
	if len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return 0, "", errors.New("malformed id")
	}
	v, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0, "", err
	}
	return v, id, nil
}

// collapseKey is the provider collapse key of an application's pushes: one
// per application, so a newer status replaces an older one not yet shown,
// yet not the application's id, which a push must not carry (providers and
// the lock screen see collapse keys).
func collapseKey(applicationID string) string {
	h := sha256.Sum256([]byte("onedoor push collapse\x00" + applicationID))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}
