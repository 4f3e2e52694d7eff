package consent

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// RecordTrailChain is the chain-head id of the consent trail: every grant,
// re-grant and withdrawal of a consent record, and every citizen's flag on
// an access-log entry, in one hash chain beside the legal bases' trail.
// Checkpoints commit its head like a citizen's ('#' never starts a
// citizen's subject), so a record or a flag changed by hand no longer
// matches what was committed and witnessed.
const RecordTrailChain = "#consent-records"

// RecordAction is what one consent trail event did.
type RecordAction string

// Consent trail actions.
const (
	RecordGranted   RecordAction = "granted"   // a new record, version 1
	RecordRegranted RecordAction = "regranted" // a later grant of the live record: version +1
	RecordWithdrawn RecordAction = "withdrawn"
	// RecordAdopted records a consent stored before the trail existed, and
	// FlagAdopted a flag made before it: once, when the trail was created,
	// so only the trail's first events may be adoptions.
	RecordAdopted RecordAction = "adopted"
	EntryFlagged  RecordAction = "flagged"
	FlagAdopted   RecordAction = "flag_adopted"
)

// RecordState is a consent record as one trail event left it: every
// stored field, the evidence as its SHA-256, times in Unix milliseconds
// (WithdrawnAt 0 while live).
type RecordState struct {
	Version      int64     `json:"version"`
	ClientID     string    `json:"client"`
	Agency       string    `json:"agency"`
	Recipient    string    `json:"recipient"`
	Purpose      Purpose   `json:"purpose"`
	Items        []string  `json:"items"`
	Declined     []string  `json:"declined"`
	Notice       string    `json:"notice"`
	Method       Method    `json:"method"`
	EvidenceHash []byte    `json:"evidence_hash"`
	GivenBy      *OnBehalf `json:"given_by,omitempty"`
	GrantedAt    int64     `json:"granted_at"`
	UpdatedAt    int64     `json:"updated_at"`
	ExpiresAt    int64     `json:"expires_at"`
	WithdrawnAt  int64     `json:"withdrawn_at,omitempty"`
}

// RecordStateOf returns r's state as the trail records it.
func RecordStateOf(r *Record) *RecordState {
	sum := sha256.Sum256([]byte(r.Evidence))
	st := &RecordState{Version: r.Version, ClientID: r.ClientID, Agency: r.Agency, Recipient: r.Recipient, Purpose: r.Purpose,
		Items: nonNil(slices.Clone(r.Items)), Declined: nonNil(slices.Clone(r.Declined)), Notice: r.Notice, Method: r.Method,
		EvidenceHash: sum[:], GivenBy: r.GivenBy, GrantedAt: r.GrantedAt.UnixMilli(), UpdatedAt: r.UpdatedAt.UnixMilli(),
		ExpiresAt: r.ExpiresAt.UnixMilli()}
	if r.WithdrawnAt != nil {
		st.WithdrawnAt = r.WithdrawnAt.UnixMilli()
	}
	return st
}

// Diff names the fields in which s and o differ (none when equal).
func (s *RecordState) Diff(o *RecordState) []string {
	if s == nil || o == nil {
		if s == o {
			return nil
		}
		return []string{"state"}
	}
	var d []string
	add := func(differ bool, name string) {
		if differ {
			d = append(d, name)
		}
	}
	add(s.Version != o.Version, "version")
	add(s.ClientID != o.ClientID, "client")
	add(s.Agency != o.Agency, "agency")
	add(s.Recipient != o.Recipient, "recipient")
	add(s.Purpose != o.Purpose, "purpose")
	add(!slices.Equal(s.Items, o.Items), "items")
	add(!slices.Equal(s.Declined, o.Declined), "declined items")
	add(s.Notice != o.Notice, "notice")
	add(s.Method != o.Method, "method")
	add(string(s.EvidenceHash) != string(o.EvidenceHash), "evidence")
	add((s.GivenBy == nil) != (o.GivenBy == nil) || (s.GivenBy != nil && *s.GivenBy != *o.GivenBy), "given by")
	add(s.GrantedAt != o.GrantedAt, "granted time")
	add(s.UpdatedAt != o.UpdatedAt, "updated time")
	add(s.ExpiresAt != o.ExpiresAt, "expiry")
	add(s.WithdrawnAt != o.WithdrawnAt, "withdrawal")
	return d
}

// RecordEvent is one entry of the consent trail: a grant, re-grant or
// withdrawal of a record (ConsentID, State), or a citizen's flag on an
// access-log entry (EntryID, Note). It is appended in the transaction that
// changes the record or sets the flag.
type RecordEvent struct {
	ID        string // "cre_…"
	Seq       int64  // position in the trail, from 1
	At        time.Time
	Action    RecordAction
	CitizenID string
	ConsentID string       // record events
	State     *RecordState // the record after the event (record events)
	Receipt   []byte       // SHA-256 of the receipt's JWS (grants and withdrawals)
	EntryID   string       // flag events: the entry flagged, at At
	Note      []byte       // flag events: SHA-256 of the citizen's note
	Prev      []byte
	Hash      []byte
}

// recordHashed is the canonical form a consent trail event's hash covers.
// Never reorder or rename its fields: stored hashes depend on them.
type recordHashed struct {
	V         int          `json:"v"`
	ID        string       `json:"id"`
	Seq       int64        `json:"seq"`
	At        int64        `json:"at"`
	Action    RecordAction `json:"action"`
	CitizenID string       `json:"citizen"`
	ConsentID string       `json:"consent"`
	State     *RecordState `json:"state"`
	Receipt   []byte       `json:"receipt"`
	EntryID   string       `json:"entry"`
	Note      []byte       `json:"note"`
	Prev      []byte       `json:"prev"`
}

// ComputeHash returns the hash the event should have: SHA-256 over its
// canonical JSON, which includes Prev.
func (e *RecordEvent) ComputeHash() []byte {
	prev := e.Prev
	if len(prev) == 0 {
		prev = nil
	}
	b, err := json.Marshal(recordHashed{V: 1, ID: e.ID, Seq: e.Seq, At: e.At.UnixMilli(), Action: e.Action, CitizenID: e.CitizenID,
		ConsentID: e.ConsentID, State: e.State, Receipt: e.Receipt, EntryID: e.EntryID, Note: e.Note, Prev: prev})
	if err != nil {
		panic(fmt.Sprintf("consent: hashing a consent trail event: %v", err)) // strings, numbers and lists: cannot fail
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// Seal links e after the trail's head (nil or seq 0 for the first event):
// it sets Seq, Prev and Hash. Stores call it under the trail's head lock.
func (e *RecordEvent) Seal(prev *Head) {
	e.Seq, e.Prev = 1, nil
	if prev != nil && prev.Seq > 0 {
		e.Seq, e.Prev = prev.Seq+1, prev.Hash
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	e.Hash = e.ComputeHash()
}

// Sum is the SHA-256 the trail keeps of a receipt or a note.
func Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
