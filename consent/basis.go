package consent

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// BasisTrailChain is the chain-head id of the legal bases' governance
// trail. The trail's head sits beside the citizens' heads, so checkpoints
// commit it like any chain; '#' never starts a citizen's subject.
const BasisTrailChain = "#legal-bases"

// BasisAction is what one trail event did to a legal basis.
type BasisAction string

// Basis actions.
const (
	BasisGranted BasisAction = "granted"
	BasisAmended BasisAction = "amended"
	BasisRevoked BasisAction = "revoked"
	// BasisAdopted records a basis registered before the trail existed,
	// once, when the trail was created: only the trail's first events may
	// be adoptions.
	BasisAdopted BasisAction = "adopted"
)

// BasisChange is who changes a legal basis, when and why: every grant,
// amendment and revocation requires an operator and a reason.
type BasisChange struct {
	Operator string
	Reason   string
	At       time.Time // zero: the store's clock
}

// BasisState is a legal basis as one trail event saw it.
type BasisState struct {
	Version int64    `json:"version"`
	Basis   Basis    `json:"basis"`
	Items   []string `json:"items"`
	Law     string   `json:"law"`
}

// StateOf returns b's state as the trail records it.
func StateOf(b *LegalBasis) *BasisState {
	items := slices.Clone(b.Items)
	if items == nil {
		items = []string{}
	}
	return &BasisState{Version: b.Version, Basis: b.Basis, Items: items, Law: b.Law}
}

// Equal reports whether s and o say the same.
func (s *BasisState) Equal(o *BasisState) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Version == o.Version && s.Basis == o.Basis && s.Law == o.Law && slices.Equal(s.Items, o.Items)
}

// BasisEvent is one entry of the legal bases' governance trail: who
// granted, amended or revoked which basis, when, why, and what it was
// before and after. The trail is one hash chain, like a citizen's access
// log, appended in the transaction that changes the basis.
type BasisEvent struct {
	ID       string // "lbe_…"
	Seq      int64  // position in the trail, from 1
	At       time.Time
	Operator string
	Action   BasisAction
	BasisID  string
	Agency   string
	Purpose  string
	Before   *BasisState // nil for a grant or adoption
	After    *BasisState // nil for a revocation
	Reason   string
	Prev     []byte
	Hash     []byte
}

// basisHashed is the canonical form a trail event's hash covers. Never
// reorder or rename its fields: stored hashes depend on them.
type basisHashed struct {
	V        int         `json:"v"`
	ID       string      `json:"id"`
	Seq      int64       `json:"seq"`
	At       int64       `json:"at"` // Unix milliseconds, as stored
	Operator string      `json:"operator"`
	Action   BasisAction `json:"action"`
	BasisID  string      `json:"basis_id"`
	Agency   string      `json:"agency"`
	Purpose  string      `json:"purpose"`
	Before   *BasisState `json:"before"`
	After    *BasisState `json:"after"`
	Reason   string      `json:"reason"`
	Prev     []byte      `json:"prev"`
}

// ComputeHash returns the hash the event should have: SHA-256 over its
// canonical JSON, which includes Prev.
func (e *BasisEvent) ComputeHash() []byte {
	prev := e.Prev
	if len(prev) == 0 {
		prev = nil
	}
	b, err := json.Marshal(basisHashed{V: 1, ID: e.ID, Seq: e.Seq, At: e.At.UnixMilli(), Operator: e.Operator, Action: e.Action,
		BasisID: e.BasisID, Agency: e.Agency, Purpose: e.Purpose, Before: e.Before, After: e.After, Reason: e.Reason, Prev: prev})
	if err != nil {
		panic(fmt.Sprintf("consent: hashing a basis event: %v", err)) // strings, numbers and lists: cannot fail
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// Seal links e after the trail's head (nil for the first event): it sets
// Seq, Prev and Hash. Stores call it under the trail's head lock.
func (e *BasisEvent) Seal(prev *Head) {
	e.Seq, e.Prev = 1, nil
	if prev != nil && prev.Seq > 0 {
		e.Seq, e.Prev = prev.Seq+1, prev.Hash
	}
	e.At = e.At.UTC().Truncate(time.Millisecond)
	e.Hash = e.ComputeHash()
}
