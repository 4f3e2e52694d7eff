package consent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

// Channel is the way data left the platform.
type Channel string

// Channels.
const (
	ChannelIDToken     Channel = "id_token"    // claims in an ID token
	ChannelUserInfo    Channel = "userinfo"    // the IdP's userinfo endpoint
	ChannelBroker      Channel = "broker"      // an agency's data request
	ChannelPrefill     Channel = "prefill"     // a form pre-filled for the citizen
	ChannelApplication Channel = "application" // an agency reading an application's applicant
	ChannelOperator    Channel = "operator"    // an operator's look-up
)

// Outcome says whether the data was released.
type Outcome string

// Outcomes. A refused data request is logged too, so the citizen sees who
// tried.
const (
	OutcomeReleased Outcome = "released"
	OutcomeRefused  Outcome = "refused"
)

// Actor is who received (or asked for) the data.
type Actor struct {
	Agency   string `json:"agency,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Operator string `json:"operator,omitempty"` // an operator's name, for look-ups
}

// OnBehalf names the representative who acted for the citizen (a guardian,
// or the holder of a mandate) when the citizen did not act themselves: the
// release or consent happened because someone else chose it for them, and
// the citizen's log says who and on what basis.
type OnBehalf struct {
	CitizenID string `json:"citizen"` // the representative's subject
	// Basis is the representation's basis: legal_representative,
	// guardian or mandate (package represent).
	Basis     string `json:"basis"`
	MandateID string `json:"mandate,omitempty"`
}

// Names are how the recipient was named when an entry was made: the
// citizen's log shows these, so a client or agency renamed later does not
// rewrite what the citizen was told.
type Names struct {
	Client   string `json:"client,omitempty"`
	AgencyVI string `json:"agency_vi,omitempty"`
	AgencyEN string `json:"agency_en,omitempty"`
}

// EntryVersion is the hash form of new entries. Version 1 (entries stored
// before) has no names and no basis version; version 2 covers them.
const EntryVersion = 2

// Entry is one release of a citizen's personal data. Each citizen's entries
// form a hash chain: Hash covers every field below it except the flag, and
// Prev is the previous entry's Hash (zero for the first), so editing,
// removing or reordering a stored entry breaks the chain at that entry.
type Entry struct {
	ID        string // "log_…"
	CitizenID string
	Seq       int64 // position in the citizen's chain, from 1
	At        time.Time
	Actor     Actor
	Channel   Channel
	Items     []string
	Purpose   string // purpose code
	ConsentID string // the record relied on, for BasisConsent
	Basis     Basis
	Law       string // for a legal basis
	Outcome   Outcome
	Reason    string // why a request was refused (which item lacked which basis)
	// OnBehalf is set when a representative acted for the citizen.
	OnBehalf *OnBehalf
	// Names is the recipient as named at the time (version 2); nil when
	// the actor had no agency or client, or for version 1 entries.
	Names *Names
	// BasisID and BasisVersion name the legal basis relied on, at the
	// version it had then (version 2, with a legal Basis).
	BasisID      string
	BasisVersion int64
	// V is the entry's hash form: 1 for entries stored before names and
	// basis versions, EntryVersion for those sealed since.
	V    int
	Prev []byte
	Hash []byte

	// The citizen's "this wasn't me": outside the entry's hash, the only
	// thing about an entry that may change; setting it appends an event to
	// the consent trail (RecordTrailChain), which verify checks it against.
	FlaggedAt *time.Time
	FlagNote  string
}

// hashed is the canonical form an entry's hash covers. Its fields are
// never reordered or renamed: stored hashes depend on them.
type hashed struct {
	V         int      `json:"v"`
	ID        string   `json:"id"`
	CitizenID string   `json:"citizen"`
	Seq       int64    `json:"seq"`
	At        int64    `json:"at"` // Unix milliseconds, as stored
	Actor     Actor    `json:"actor"`
	Channel   Channel  `json:"channel"`
	Items     []string `json:"items"`
	Purpose   string   `json:"purpose"`
	ConsentID string   `json:"consent"`
	Basis     Basis    `json:"basis"`
	Law       string   `json:"law"`
	Outcome   Outcome  `json:"outcome"`
	Reason    string   `json:"reason"`
	Prev      []byte   `json:"prev"`
	// OnBehalf is left out when empty, so the hashes of entries stored
	// before representation existed still verify.
	OnBehalf *OnBehalf `json:"on_behalf,omitempty"`
	// Version 2. Left out when empty, so that version 1 entries hash as
	// they did; V itself is hashed, so relabelling an entry breaks it.
	Names        *Names `json:"names,omitempty"`
	BasisID      string `json:"basis_id,omitempty"`
	BasisVersion int64  `json:"basis_version,omitempty"`
}

// ComputeHash returns the hash the entry should have: SHA-256 over its
// canonical JSON, which includes Prev.
func (e *Entry) ComputeHash() []byte {
	items := e.Items
	if items == nil {
		items = []string{}
	}
	// A first entry's Prev hashes as null whether it reads back from a
	// store as nil or as an empty slice.
	prev := e.Prev
	if len(prev) == 0 {
		prev = nil
	}
	v := e.V
	if v == 0 {
		v = 1
	}
	b, err := json.Marshal(hashed{V: v, ID: e.ID, CitizenID: e.CitizenID, Seq: e.Seq, At: e.At.UnixMilli(),
		Actor: e.Actor, Channel: e.Channel, Items: items, Purpose: e.Purpose, ConsentID: e.ConsentID,
		Basis: e.Basis, Law: e.Law, Outcome: e.Outcome, Reason: e.Reason, Prev: prev, OnBehalf: e.OnBehalf,
		Names: e.Names, BasisID: e.BasisID, BasisVersion: e.BasisVersion})
	if err != nil {
		panic(fmt.Sprintf("consent: hashing an entry: %v", err)) // only strings and numbers: cannot fail
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// Seal links e after prev (nil for a citizen's first entry): it sets Seq,
// Prev and Hash. Stores call it under the citizen's chain lock.
func (e *Entry) Seal(prev *Head) {
	e.V = EntryVersion
	e.Seq, e.Prev = 1, nil
	if prev != nil {
		e.Seq, e.Prev = prev.Seq+1, prev.Hash
	}
	e.At = e.At.Truncate(time.Millisecond)
	e.Hash = e.ComputeHash()
}

// Head is the last entry of a citizen's chain.
type Head struct {
	CitizenID string
	Seq       int64
	Hash      []byte
}

// EntryQuery selects log entries.
type EntryQuery struct {
	CitizenID string // required, except for Flagged
	Flagged   bool   // only flagged entries (across citizens when CitizenID is empty)
	Page      Page
}

// LogStore keeps the access log. Entries are append-only: no method
// changes an entry except its flag.
type LogStore interface {
	// Append adds e at the end of its citizen's chain in one transaction:
	// it takes the chain head under a lock, calls e.Seal, inserts the entry
	// and moves the head, so concurrent appends for one citizen (on any
	// replica) form one valid chain. e.ID, CitizenID and At are the
	// caller's.
	Append(ctx context.Context, e *Entry) error
	// AppendRelease appends a release as Append does, after checking in
	// the same transaction that what the release was decided on still
	// holds: the legal basis e names (BasisID) is live at BasisVersion and
	// covers e.Items, or the consent (ConsentID, for BasisConsent) is
	// active and covers them. It holds that basis or consent (a shared row
	// lock) until the entry is stored, so a revocation, amendment or
	// withdrawal comes wholly before the release or after it. When it no
	// longer holds it returns *RefusedError naming each item and why, and
	// appends nothing.
	AppendRelease(ctx context.Context, e *Entry) error
	// ListEntries pages entries newest first.
	ListEntries(ctx context.Context, q EntryQuery) ([]*Entry, string, error)
	// GetEntry returns one entry of the citizen's; ErrNotFound for another's.
	GetEntry(ctx context.Context, citizenID, id string) (*Entry, error)
	// FlagEntry records "this wasn't me" once (a second flag keeps the
	// first), with its EntryFlagged event on the consent trail in the same
	// transaction, and returns the entry.
	FlagEntry(ctx context.Context, citizenID, id, note string, at time.Time) (*Entry, error)
}
