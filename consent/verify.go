package consent

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Problem is the first broken thing Verify found: an entry whose hash,
// link or position is wrong, a committed leaf that no longer matches the
// entry it names, or a checkpoint whose signature or root is wrong.
type Problem struct {
	CitizenID string `json:"citizen,omitempty"`
	Seq       int64  `json:"seq,omitempty"`
	EntryID   string `json:"entry_id,omitempty"`
	// Leaf is the tree leaf involved, if any.
	Leaf *int64 `json:"leaf,omitempty"`
	// Checkpoint is the size of the checkpoint involved, if any.
	Checkpoint int64 `json:"checkpoint_size,omitempty"`
	// BasisID is the legal basis involved, if any (CitizenID is then
	// BasisTrailChain for a trail event).
	BasisID string `json:"basis_id,omitempty"`
	// ConsentID is the consent record involved, if any (CitizenID is then
	// RecordTrailChain for a consent trail event).
	ConsentID string `json:"consent_id,omitempty"`
	What      string `json:"what"`
}

func (p *Problem) Error() string {
	var b bytes.Buffer
	b.WriteString("audit log broken")
	switch {
	case p.CitizenID == BasisTrailChain:
		b.WriteString(": legal-basis trail")
	case p.CitizenID == RecordTrailChain:
		b.WriteString(": consent trail")
	case p.CitizenID != "":
		fmt.Fprintf(&b, ": citizen %s", p.CitizenID)
	case p.BasisID != "" || p.ConsentID != "":
		b.WriteString(":")
	}
	if p.Seq != 0 {
		fmt.Fprintf(&b, " seq %d", p.Seq)
	}
	if p.EntryID != "" {
		fmt.Fprintf(&b, " entry %s", p.EntryID)
	}
	if p.BasisID != "" {
		fmt.Fprintf(&b, " basis %s", p.BasisID)
	}
	if p.ConsentID != "" {
		fmt.Fprintf(&b, " consent %s", p.ConsentID)
	}
	if p.Leaf != nil {
		fmt.Fprintf(&b, " leaf %d", *p.Leaf)
	}
	if p.Checkpoint != 0 {
		fmt.Fprintf(&b, " checkpoint of size %d", p.Checkpoint)
	}
	b.WriteString(": " + p.What)
	return b.String()
}

// Report is what Verify checked, and the first problem when there is one.
type Report struct {
	Citizens int64 `json:"citizens"`
	Entries  int64 `json:"entries"`
	Leaves   int64 `json:"leaves"`
	// BasisEvents and LegalBases count the legal bases' trail and rows.
	BasisEvents int64 `json:"basis_events"`
	LegalBases  int64 `json:"legal_bases"`
	// RecordEvents and Records count the consent trail (grants,
	// withdrawals and flags) and the consent records.
	RecordEvents int64  `json:"record_events"`
	Records      int64  `json:"records"`
	Checkpoints  int64  `json:"checkpoints"`
	TreeSize     int64  `json:"tree_size"`
	Root         string `json:"root,omitempty"` // base64, of the last checkpoint
	// LastCheckpointSize and LastCheckpointAt are the newest checkpoint's
	// size and time: how much of the log is signed, and since when.
	LastCheckpointSize int64      `json:"last_checkpoint_size"`
	LastCheckpointAt   *time.Time `json:"last_checkpoint_at,omitempty"`
	// Witnessed is each configured witness's latest valid cosignature,
	// and WitnessedSize the largest size a quorum of them cosigned (set by
	// VerifyWitnesses).
	Witnessed     []Witnessed `json:"witnessed,omitempty"`
	WitnessedSize int64       `json:"witnessed_size"`
	Broken        *Problem    `json:"broken,omitempty"`
}

// Intact reports whether nothing was found broken.
func (r *Report) Intact() bool { return r.Broken == nil }

const verifyPage = 1000

// Verify checks the whole access log: the legal bases' and the consent
// trails and the rows they back (verifyTrail, verifyRecordTrail), every
// citizen's chain (each Hash recomputed, each Prev the previous Hash, Seq
// from 1 without gaps, the stored head at an entry of the chain, each
// flag against its consent trail event), every committed leaf against the
// entry it names, and every checkpoint (its signature by v, and its root
// against the tree recomputed from the leaves). It stops at the first
// problem, in citizen and seq order, then in tree order. The error is for
// a store that could not be read, never for what is broken.
//
// Verify may run while the platform appends: it reads each chain's head
// before its entries and the last checkpoint before the leaves, and
// checks only what those name; a record or flag that seems to have no
// event rereads the consent trail's newer events first.
func Verify(ctx context.Context, s AuditStore, v note.Verifier) (*Report, error) {
	r := &Report{}
	idx := basisIndex{}
	if p, err := verifyTrail(ctx, s, r, idx); err != nil || p != nil {
		r.Broken = p
		return r, err
	}
	recs := newRecordIndex(s)
	if p, err := verifyRecordTrail(ctx, s, r, recs); err != nil || p != nil {
		r.Broken = p
		return r, err
	}
	after := ""
	for {
		citizens, err := s.Citizens(ctx, after, verifyPage)
		if err != nil {
			return nil, err
		}
		for _, c := range citizens {
			r.Citizens++
			if p, err := verifyChain(ctx, s, c, r, idx, recs); err != nil || p != nil {
				r.Broken = p
				return r, err
			}
		}
		if len(citizens) < verifyPage {
			break
		}
		after = citizens[len(citizens)-1]
	}
	if p, err := recs.unmatchedFlags(ctx); err != nil || p != nil {
		r.Broken = p
		return r, err
	}
	p, err := verifyTree(ctx, s, v, r)
	r.Broken = p
	return r, err
}

// verifyTrail checks the legal bases' trail: its hash chain and committed
// leaves like a citizen's chain, that each event starts from the state the
// previous one left (adoptions only first), and that every stored basis is
// what its last event says, with the times of its events, so a basis
// inserted or edited by hand is found. It fills idx with each basis's
// versions, against which the releases are checked.
func verifyTrail(ctx context.Context, s AuditStore, r *Report, idx basisIndex) (*Problem, error) {
	read := func(after int64) ([]link, error) {
		page, err := s.BasisTrail(ctx, after, verifyPage)
		if err != nil {
			return nil, err
		}
		out := make([]link, len(page))
		for i, e := range page {
			out[i] = link{owner: BasisTrailChain, seq: e.Seq, id: e.ID, prev: e.Prev, hash: e.Hash, want: e.ComputeHash()}
		}
		return out, nil
	}
	if p, err := verifyLinks(ctx, s, BasisTrailChain, read, func() { r.BasisEvents++ }); err != nil || p != nil {
		return p, err
	}
	type last struct {
		ev    *BasisEvent
		state *BasisState
	}
	bases := map[string]*last{}
	broken := func(e *BasisEvent, what string) *Problem {
		return &Problem{CitizenID: BasisTrailChain, Seq: e.Seq, EntryID: e.ID, BasisID: e.BasisID, What: what}
	}
	var after int64
	others := false
	for {
		page, err := s.BasisTrail(ctx, after, verifyPage)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			cur := bases[e.BasisID]
			switch e.Action {
			case BasisAdopted, BasisGranted:
				if e.Action == BasisAdopted && others {
					return broken(e, "a basis was adopted after the trail began: it was added by hand"), nil
				}
				if cur != nil {
					return broken(e, "the basis was granted twice"), nil
				}
				if e.Before != nil || e.After == nil || (e.Action == BasisGranted && e.After.Version != 1) {
					return broken(e, "a grant must start from nothing at version 1"), nil
				}
			case BasisAmended, BasisRevoked:
				if cur == nil || cur.ev.Action == BasisRevoked {
					return broken(e, "it changes a basis that was never granted or is revoked"), nil
				}
				if !e.Before.Equal(cur.state) {
					return broken(e, "what it says the basis was differs from the previous event"), nil
				}
				if e.Action == BasisAmended && (e.After == nil || e.After.Version != e.Before.Version+1 || e.After.Basis != e.Before.Basis) {
					return broken(e, "an amendment must keep the basis and add one to its version"), nil
				}
				if e.Action == BasisRevoked && e.After != nil {
					return broken(e, "a revocation leaves nothing after it"), nil
				}
				if e.Agency != cur.ev.Agency || e.Purpose != cur.ev.Purpose {
					return broken(e, "it names another agency or purpose than the grant"), nil
				}
			default:
				return broken(e, fmt.Sprintf("unknown action %q", e.Action)), nil
			}
			if e.Action != BasisAdopted {
				others = true
			}
			st := e.After
			if e.Action == BasisRevoked {
				st = e.Before
			}
			bases[e.BasisID] = &last{ev: e, state: st}
			idx.add(e)
		}
		if len(page) < verifyPage {
			break
		}
		after = page[len(page)-1].Seq
	}
	rows, err := s.AllLegalBases(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, b := range rows {
		r.LegalBases++
		seen[b.ID] = true
		l := bases[b.ID]
		p := &Problem{BasisID: b.ID}
		switch {
		case l == nil:
			p.What = "the legal basis has no trail: it was inserted by hand"
		case (b.RevokedAt != nil) != (l.ev.Action == BasisRevoked):
			p.What = "the basis's revocation differs from its trail: it was revoked or restored by hand"
		case b.Agency != l.ev.Agency || b.Purpose != l.ev.Purpose || !StateOf(b).Equal(l.state):
			p.What = fmt.Sprintf("the basis differs from its last trail event (%d): it was edited by hand", l.ev.Seq)
		case idx[b.ID].timesProblem(b) != "":
			p.What = idx[b.ID].timesProblem(b)
		default:
			continue
		}
		return p, nil
	}
	for id, l := range bases {
		if !seen[id] {
			return &Problem{BasisID: id, CitizenID: BasisTrailChain, Seq: l.ev.Seq, EntryID: l.ev.ID, What: "the trail names a legal basis that is no longer stored: it was deleted by hand"}, nil
		}
	}
	return nil, nil
}

// link is one element of a hash chain, as verifyChain checks it: a
// citizen's entry or a legal-basis trail event.
type link struct {
	owner string // the chain it says it belongs to
	seq   int64
	id    string
	prev  []byte
	hash  []byte
	want  []byte // the hash recomputed from its contents
	v     int    // the entry's hash form (EntryVersion); 0 for trail events
	// bad says how the entry's claim of a legal basis differs from the
	// trail (basisIndex.entryProblem), for the basis basisID.
	bad, basisID string
}

func entryLinks(ctx context.Context, s AuditStore, citizen string, idx basisIndex, flags *recordIndex) func(after int64) ([]link, error) {
	recs := &consentRecords{s: s, got: map[string]*Record{}}
	return func(after int64) ([]link, error) {
		page, err := s.Chain(ctx, citizen, after, verifyPage)
		if err != nil {
			return nil, err
		}
		out := make([]link, len(page))
		for i, e := range page {
			v := e.V
			if v == 0 {
				v = 1
			}
			bad, basisID := idx.entryProblem(e), e.BasisID
			if bad == "" {
				basisID = ""
				if bad, err = recs.problem(ctx, e); err != nil {
					return nil, err
				}
			}
			if bad == "" {
				if bad, err = flags.itemsProblem(ctx, e); err != nil {
					return nil, err
				}
			}
			if bad == "" {
				if bad, err = flags.flagProblem(ctx, e); err != nil {
					return nil, err
				}
			}
			out[i] = link{owner: e.CitizenID, seq: e.Seq, id: e.ID, prev: e.Prev, hash: e.Hash, want: e.ComputeHash(), v: v,
				bad: bad, basisID: basisID}
		}
		return out, nil
	}
}

// consentRecords reads the consent records one citizen's releases name,
// once per record (a record is one citizen's, so the cache lives for one
// chain).
type consentRecords struct {
	s   AuditStore
	got map[string]*Record // nil: no such record of the citizen's
}

// problem says how a release under consent differs from the record it
// names ("" when it agrees, or for any other entry): the record must
// exist for the entry's citizen, client and purpose (and agency, for the
// broker, whose decision requires it: an ID token or userinfo release is
// logged with the client's current agency, which may have changed since
// the grant), have been granted by the entry's time and not withdrawn
// before it, within BasisClockSkew. Items are not compared: the record
// keeps only its latest grant's (verifyRecordTrail has checked that the
// record is what the consent trail last says). Records are never deleted, so this holds
// for entries of every hash form.
func (c *consentRecords) problem(ctx context.Context, e *Entry) (string, error) {
	if e.Outcome != OutcomeReleased || e.Basis != BasisConsent {
		return "", nil
	}
	if e.ConsentID == "" {
		return "it was released under consent but names no consent", nil
	}
	rec, ok := c.got[e.ConsentID]
	if !ok {
		r, err := c.s.GetRecord(ctx, e.CitizenID, e.ConsentID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return "", err
		}
		rec = r
		c.got[e.ConsentID] = r
	}
	switch {
	case rec == nil:
		return fmt.Sprintf("it claims consent %s, which the citizen never gave", e.ConsentID), nil
	case rec.ClientID != e.Actor.ClientID || rec.Purpose.Code != e.Purpose || (e.Channel == ChannelBroker && rec.Agency != e.Actor.Agency):
		return fmt.Sprintf("consent %s was given to client %s of agency %q for purpose %s, not to this entry's", rec.ID, rec.ClientID,
			rec.Agency, rec.Purpose.Code), nil
	case e.At.Before(rec.GrantedAt.Add(-BasisClockSkew)):
		return fmt.Sprintf("it was released at %s, before consent %s was granted (%s)", stamp(e.At), rec.ID, stamp(rec.GrantedAt)), nil
	case rec.WithdrawnAt != nil && e.At.After(rec.WithdrawnAt.Add(BasisClockSkew)):
		return fmt.Sprintf("it was released at %s, after consent %s was withdrawn (%s)", stamp(e.At), rec.ID, stamp(*rec.WithdrawnAt)), nil
	}
	return "", nil
}

// verifyChain walks one citizen's chain with its leaves beside it, and
// checks each release's legal basis against the trail (idx).
func verifyChain(ctx context.Context, s AuditStore, citizen string, r *Report, idx basisIndex, flags *recordIndex) (*Problem, error) {
	return verifyLinks(ctx, s, citizen, entryLinks(ctx, s, citizen, idx, flags), func() { r.Entries++ })
}

// verifyLinks walks one chain (read pages it by seq) with its committed
// leaves beside it.
func verifyLinks(ctx context.Context, s AuditStore, citizen string, read func(after int64) ([]link, error), count func()) (*Problem, error) {
	head, err := s.ChainHead(ctx, citizen)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	var (
		prev       *link
		leaves     []Leaf
		leafAfter  int64
		leavesDone bool
	)
	// nextLeaf returns the citizen's next leaf in seq order, or nil.
	nextLeaf := func() (*Leaf, error) {
		if len(leaves) == 0 && !leavesDone {
			page, err := s.CitizenLeaves(ctx, citizen, leafAfter, verifyPage)
			if err != nil {
				return nil, err
			}
			leaves, leavesDone = page, len(page) < verifyPage
			if len(page) > 0 {
				leafAfter = page[len(page)-1].Seq
			}
		}
		if len(leaves) == 0 {
			return nil, nil
		}
		return &leaves[0], nil
	}
	broken := func(e *link, what string) *Problem {
		return &Problem{CitizenID: citizen, Seq: e.seq, EntryID: e.id, What: what}
	}
	var (
		headSeen bool
		rereads  int
	)
	for {
		page, err := read(lastSeq(prev))
		if err != nil {
			return nil, err
		}
		for i := range page {
			e := &page[i]
			count()
			want := lastSeq(prev) + 1
			switch {
			case e.owner != citizen:
				return broken(e, "the entry belongs to another citizen's chain"), nil
			case e.seq != want:
				return broken(e, fmt.Sprintf("entry %d of the chain is missing", want)), nil
			case !bytes.Equal(e.want, e.hash):
				return broken(e, "its stored hash does not match its contents: the entry was changed"), nil
			case prev == nil && len(e.prev) != 0:
				return broken(e, "the first entry links to a previous one"), nil
			case prev != nil && !bytes.Equal(e.prev, prev.hash):
				return broken(e, fmt.Sprintf("it does not link to entry %d: entry %d was changed, or this one was rewritten", prev.seq, prev.seq)), nil
			case prev != nil && e.v < prev.v:
				// New entries are always sealed in the newest form: one in
				// an older form after a newer one was written by hand, in
				// the form that covers less (no basis id or version).
				return broken(e, fmt.Sprintf("its hash form (version %d) is older than the entry before it (version %d): it was forged", e.v, prev.v)), nil
			case e.bad != "":
				p := broken(e, e.bad)
				p.BasisID = e.basisID
				return p, nil
			}
			for {
				l, err := nextLeaf()
				if err != nil {
					return nil, err
				}
				if l == nil || l.Seq > e.seq {
					break
				}
				if l.Seq < e.seq {
					return &Problem{CitizenID: citizen, Seq: l.Seq, Leaf: &l.Index, What: "a checkpoint committed an entry the chain no longer has"}, nil
				}
				if !bytes.Equal(l.Hash, e.hash) {
					idx := l.Index
					return &Problem{CitizenID: citizen, Seq: e.seq, EntryID: e.id, Leaf: &idx,
						What: "the entry differs from what a checkpoint committed: the chain was rewritten"}, nil
				}
				leaves = leaves[1:]
			}
			if head != nil && e.seq == head.Seq {
				headSeen = true
				if !bytes.Equal(e.hash, head.Hash) {
					return broken(e, "the chain head names another hash for this entry"), nil
				}
			}
			prev = e
		}
		if len(page) == verifyPage {
			continue
		}
		// A leaf past the end may be an append and a checkpoint that came
		// after this page was read: read on before calling it a removal.
		l, err := nextLeaf()
		if err != nil {
			return nil, err
		}
		if l == nil || rereads >= 2 {
			break
		}
		rereads++
	}
	if head != nil && head.Seq > 0 && !headSeen {
		return &Problem{CitizenID: citizen, Seq: head.Seq, What: fmt.Sprintf("the chain head names entry %d but the chain ends at %d: entries were removed", head.Seq, lastSeq(prev))}, nil
	}
	if prev != nil && head == nil {
		// The head was read before the chain: the first entry and its head,
		// committed together, may have come in between. Read it again
		// before calling it missing; the head now names an entry at or
		// after the last one read.
		if head, err = s.ChainHead(ctx, citizen); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		switch {
		case head == nil:
			return broken(prev, "the chain has no head"), nil
		case head.Seq < prev.seq:
			return broken(prev, fmt.Sprintf("the chain head names entry %d but the chain goes on to %d", head.Seq, prev.seq)), nil
		case head.Seq == prev.seq && !bytes.Equal(head.Hash, prev.hash):
			return broken(prev, "the chain head names another hash for this entry"), nil
		}
	}
	l, err := nextLeaf()
	if err != nil {
		return nil, err
	}
	if l != nil {
		return &Problem{CitizenID: citizen, Seq: l.Seq, Leaf: &l.Index, What: fmt.Sprintf("a checkpoint committed entry %d but the chain ends at %d: entries were removed", l.Seq, lastSeq(prev))}, nil
	}
	return nil, nil
}

func lastSeq(e *link) int64 {
	if e == nil {
		return 0
	}
	return e.seq
}

// verifyTree recomputes the tree from the leaves, up to the last
// checkpoint, and checks every checkpoint's signature and root and every
// stored tree hash on the way.
// A leaf past the last checkpoint is a problem: no signature covers it,
// and every later checkpoint would collide with it.
func verifyTree(ctx context.Context, s AuditStore, v note.Verifier, r *Report) (*Problem, error) {
	last, err := s.LastCheckpoint(ctx)
	if errors.Is(err, ErrNotFound) {
		last = &Checkpoint{}
	} else if err != nil {
		return nil, err
	}
	var (
		f       frontier
		n       int64
		cps     []*Checkpoint
		cpAfter int64
		stored  []storedHash // the page's tree hashes, to compare with the stored ones
	)
	// checkNext checks the checkpoints of size n (the tree's size now).
	checkNext := func() (*Problem, error) {
		for {
			if len(cps) == 0 && cpAfter < last.Size {
				page, err := s.Checkpoints(ctx, cpAfter, verifyPage)
				if err != nil {
					return nil, err
				}
				if len(page) == 0 {
					return &Problem{Checkpoint: last.Size, What: "the checkpoints end before the last one"}, nil
				}
				cps, cpAfter = page, page[len(page)-1].Size
			}
			if len(cps) == 0 || cps[0].Size > n || cps[0].Size > last.Size {
				return nil, nil
			}
			cp := cps[0]
			cps = cps[1:]
			r.Checkpoints++
			if p := checkCheckpoint(cp, v); p != nil {
				return p, nil
			}
			root := f.root()
			if cp.Size != n || !bytes.Equal(root[:], cp.Root) {
				return &Problem{Checkpoint: cp.Size, What: "the leaves no longer hash to the checkpoint's root: committed leaves were changed"}, nil
			}
		}
	}
	for rereads := 0; ; rereads++ {
		r.TreeSize, r.LastCheckpointSize = last.Size, last.Size
		if last.Size > 0 {
			at := last.CreatedAt
			r.Root, r.LastCheckpointAt = base64.StdEncoding.EncodeToString(last.Root), &at
		}
		for n < last.Size {
			page, err := s.Leaves(ctx, n, verifyPage)
			if err != nil {
				return nil, err
			}
			if len(page) == 0 {
				return &Problem{Checkpoint: last.Size, What: fmt.Sprintf("the tree has %d leaves, fewer than the checkpoint signed", n)}, nil
			}
			for _, l := range page {
				if n >= last.Size {
					break
				}
				if l.Index != n {
					return &Problem{CitizenID: l.CitizenID, Seq: l.Seq, Leaf: &n, What: "the leaf is missing from the tree"}, nil
				}
				stored = f.push(n, tlog.RecordHash(leafData(l.CitizenID, l.Seq, l.Hash)), stored)
				n++
				r.Leaves++
				if p, err := checkNext(); err != nil || p != nil {
					if p != nil && p.Leaf == nil && p.CitizenID == "" {
						idx := l.Index
						p.Leaf = &idx
					}
					return p, err
				}
			}
			if p, err := checkStoredHashes(ctx, s, stored); err != nil || p != nil {
				return p, err
			}
			stored = stored[:0]
		}
		extra, err := s.Leaves(ctx, n, 1)
		if err != nil {
			return nil, err
		}
		if len(extra) == 0 {
			return nil, nil
		}
		// A checkpoint stores its leaves and itself in one transaction:
		// leaves past the one read first may be a checkpoint made since.
		// Read on to it; a few times at most, since checkpoints come once
		// an interval.
		newer, err := s.LastCheckpoint(ctx)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err == nil && newer.Size > last.Size {
			if rereads >= 3 {
				return nil, nil // still racing checkpointers: what was read is checked
			}
			last = newer
			continue
		}
		l := extra[0]
		return &Problem{CitizenID: l.CitizenID, Seq: l.Seq, Leaf: &l.Index,
			What: fmt.Sprintf("the tree has leaves no signed checkpoint covers, from leaf %d (the last checkpoint has size %d): a checkpoint was removed", l.Index, last.Size)}, nil
	}
}

// checkCheckpoint checks a checkpoint's signature and that its signed text
// says its size and root.
func checkCheckpoint(cp *Checkpoint, v note.Verifier) *Problem {
	n, err := note.Open([]byte(cp.Note), note.VerifierList(v))
	if err != nil {
		return &Problem{Checkpoint: cp.Size, What: "the checkpoint's signature does not verify: " + err.Error()}
	}
	size, root, err := parseCheckpointText(n.Text)
	if err != nil {
		return &Problem{Checkpoint: cp.Size, What: "the signed checkpoint is malformed: " + err.Error()}
	}
	if size != cp.Size || !bytes.Equal(root, cp.Root) {
		return &Problem{Checkpoint: cp.Size, What: "the stored size or root differs from what was signed"}
	}
	return nil
}

// frontier is the right edge of a Merkle tree being built leaf by leaf:
// the roots of its complete subtrees, largest first. It gives the root of
// the tree so far in O(log n) memory, where tlog.TreeHash would need every
// stored hash.
type frontier struct {
	hashes []tlog.Hash
	sizes  []int64
}

// push adds leaf n's hash h and appends to out the hashes the tree
// stores for it (tlog.StoredHashes): the leaf's, then each complete
// subtree it closes, level by level.
func (f *frontier) push(n int64, h tlog.Hash, out []storedHash) []storedHash {
	f.hashes, f.sizes = append(f.hashes, h), append(f.sizes, 1)
	out = append(out, storedHash{index: tlog.StoredHashIndex(0, n), leaf: n, hash: h})
	for level, k := 1, len(f.sizes); k >= 2 && f.sizes[k-1] == f.sizes[k-2]; level, k = level+1, len(f.sizes) {
		f.hashes[k-2] = tlog.NodeHash(f.hashes[k-2], f.hashes[k-1])
		f.sizes[k-2] *= 2
		f.hashes, f.sizes = f.hashes[:k-1], f.sizes[:k-1]
		out = append(out, storedHash{index: tlog.StoredHashIndex(level, n>>level), level: level, leaf: n, hash: f.hashes[k-2]})
	}
	return out
}

// storedHash is a tree hash as the leaves give it, at its stored index;
// leaf is the last leaf of its subtree.
type storedHash struct {
	index int64
	level int
	leaf  int64
	hash  tlog.Hash
}

// checkStoredHashes compares the stored tree hashes, which inclusion and
// consistency proofs are built from, with the ones the leaves give: a
// changed one would fail the proofs through it that citizens' apps check,
// while the leaves still hash to every signed root.
func checkStoredHashes(ctx context.Context, s AuditStore, want []storedHash) (*Problem, error) {
	const chunk = 500
	for len(want) > 0 {
		part := want[:min(chunk, len(want))]
		want = want[len(part):]
		idx := make([]int64, len(part))
		for i, w := range part {
			idx[i] = w.index
		}
		got, err := s.TreeHashes(ctx, idx)
		if errors.Is(err, ErrNotFound) {
			// Name the first one missing.
			for _, w := range part {
				if _, err := s.TreeHashes(ctx, []int64{w.index}); errors.Is(err, ErrNotFound) {
					return w.problem("is missing"), nil
				} else if err != nil {
					return nil, err
				}
			}
		}
		if err != nil {
			return nil, err
		}
		for i, w := range part {
			if !bytes.Equal(got[i], w.hash[:]) {
				return w.problem("differs from the hash its leaves give"), nil
			}
		}
	}
	return nil, nil
}

func (w storedHash) problem(what string) *Problem {
	first := w.leaf - (int64(1)<<w.level - 1)
	leaf := w.leaf
	return &Problem{Leaf: &leaf, What: fmt.Sprintf("stored tree hash %d (level %d, over leaves %d to %d) %s: inclusion proofs through it fail",
		w.index, w.level, first, w.leaf, what)}
}

// root is the tree's root hash (RFC 6962's MTH, as tlog.TreeHash).
func (f *frontier) root() tlog.Hash {
	if len(f.hashes) == 0 {
		return tlog.Hash{}
	}
	h := f.hashes[len(f.hashes)-1]
	for i := len(f.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.hashes[i], h)
	}
	return h
}
