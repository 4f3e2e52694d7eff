package consent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// recordLast is a consent record as its last trail event left it, and
// the items of each of its versions while it stood.
type recordLast struct {
	ev       *RecordEvent
	seen     bool // its stored row was checked
	state    *RecordState
	versions []*recordVersion
}

// recordVersion is one version of a consent record: its items, from the
// event that made it until the next re-grant or the withdrawal (0 while it
// stands), in Unix milliseconds. An adopted version's earlier history is
// unknown.
type recordVersion struct {
	items       []string
	from, until int64
	adopted     bool
}

// recordIndex is the consent trail read into each record's last state and
// each flag, against which the stored records and flags are checked. It
// keeps the last state of every record in memory (about what a record
// row holds), for one run of Verify.
type recordIndex struct {
	s       AuditStore
	records map[string]*recordLast
	flags   map[string]*RecordEvent // by entry id
	matched map[string]bool         // flags found on their entries
	last    *RecordEvent
	others  bool // an event other than an adoption was seen
}

func newRecordIndex(s AuditStore) *recordIndex {
	return &recordIndex{s: s, records: map[string]*recordLast{}, flags: map[string]*RecordEvent{}, matched: map[string]bool{}}
}

func trailProblem(e *RecordEvent, what string) *Problem {
	return &Problem{CitizenID: RecordTrailChain, Seq: e.Seq, EntryID: e.ID, ConsentID: e.ConsentID, What: what}
}

// extend reads the trail's events past the last one applied, checks that
// each links to the one before (verifyLinks checks the stored head and the
// committed leaves), and applies them. Verify calls it first, and again
// when a record or flag seems to have no event: the event may have been
// appended since the trail was read.
func (x *recordIndex) extend(ctx context.Context) (*Problem, error) {
	for {
		var after int64
		if x.last != nil {
			after = x.last.Seq
		}
		page, err := x.s.RecordTrail(ctx, after, verifyPage)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			switch {
			case e.Seq != after+1:
				return trailProblem(e, fmt.Sprintf("event %d of the consent trail is missing", after+1)), nil
			case !bytes.Equal(e.ComputeHash(), e.Hash):
				return trailProblem(e, "its stored hash does not match its contents: the event was changed"), nil
			case x.last == nil && len(e.Prev) != 0:
				return trailProblem(e, "the first event links to a previous one"), nil
			case x.last != nil && !bytes.Equal(e.Prev, x.last.Hash):
				return trailProblem(e, fmt.Sprintf("it does not link to event %d", after)), nil
			}
			if what := x.apply(e); what != "" {
				return trailProblem(e, what), nil
			}
			x.last, after = e, e.Seq
		}
		if len(page) < verifyPage {
			return nil, nil
		}
	}
}

// apply checks that e follows from what the trail said before it and
// records it; it says what is wrong, or "".
func (x *recordIndex) apply(e *RecordEvent) string {
	if e.Action == RecordAdopted || e.Action == FlagAdopted {
		if x.others {
			return "an adoption after the trail began: it was added by hand"
		}
	} else {
		x.others = true
	}
	if e.CitizenID == "" {
		return "it names no citizen"
	}
	switch e.Action {
	case EntryFlagged, FlagAdopted:
		if e.EntryID == "" || e.ConsentID != "" || e.State != nil {
			return "a flag event must name an entry and no consent"
		}
		if x.flags[e.EntryID] != nil {
			return fmt.Sprintf("entry %s was flagged twice", e.EntryID)
		}
		x.flags[e.EntryID] = e
		return ""
	case RecordGranted, RecordRegranted, RecordWithdrawn, RecordAdopted:
	default:
		return fmt.Sprintf("unknown action %q", e.Action)
	}
	if e.ConsentID == "" || e.EntryID != "" || e.State == nil {
		return "a consent event must name a consent and its state"
	}
	cur := x.records[e.ConsentID]
	st := e.State
	switch e.Action {
	case RecordGranted, RecordAdopted:
		if cur != nil {
			return fmt.Sprintf("consent %s was granted twice", e.ConsentID)
		}
		if e.Action == RecordGranted && (st.Version != 1 || st.WithdrawnAt != 0) {
			return "a grant must start a live record at version 1"
		}
	case RecordRegranted, RecordWithdrawn:
		switch {
		case cur == nil:
			return fmt.Sprintf("it changes consent %s, which the trail never granted", e.ConsentID)
		case cur.state.WithdrawnAt != 0:
			return fmt.Sprintf("it changes consent %s after its withdrawal (event %d)", e.ConsentID, cur.ev.Seq)
		case cur.ev.CitizenID != e.CitizenID || cur.state.ClientID != st.ClientID || cur.state.Purpose.Code != st.Purpose.Code:
			return fmt.Sprintf("it names another citizen, client or purpose than consent %s's grant", e.ConsentID)
		}
		if e.Action == RecordRegranted && (st.Version != cur.state.Version+1 || st.WithdrawnAt != 0 || st.GrantedAt != cur.state.GrantedAt) {
			return "a re-grant must keep the record live and its grant time, and add one to its version"
		}
		if e.Action == RecordWithdrawn {
			before := *st
			before.WithdrawnAt = 0
			if st.WithdrawnAt == 0 || len(cur.state.Diff(&before)) > 0 {
				return fmt.Sprintf("a withdrawal must change nothing of consent %s but its withdrawal time", e.ConsentID)
			}
		}
	}
	var versions []*recordVersion
	if cur != nil {
		versions = cur.versions
		if n := len(versions); n > 0 && versions[n-1].until == 0 {
			versions[n-1].until = e.At.UnixMilli()
		}
	}
	if e.Action != RecordWithdrawn {
		versions = append(versions, &recordVersion{items: st.Items, from: e.At.UnixMilli(), adopted: e.Action == RecordAdopted})
	}
	x.records[e.ConsentID] = &recordLast{ev: e, state: st, versions: versions}
	return ""
}

// itemsProblem says which items a release under consent names that no
// version of the consent standing at its time (within BasisClockSkew)
// covered ("" when one did): a release of items widened by hand and the
// record restored afterwards is found. Releases before an adopted
// version, whose earlier versions the trail does not know, are not
// checked.
func (x *recordIndex) itemsProblem(ctx context.Context, e *Entry) (string, error) {
	if e.Outcome != OutcomeReleased || e.Basis != BasisConsent || e.ConsentID == "" {
		return "", nil
	}
	for retry := 0; ; retry++ {
		what := x.versionsProblem(e)
		if what == "" || retry == 1 {
			return what, nil
		}
		// A re-grant newer than the trail read: read on.
		if p, err := x.extend(ctx); err != nil || p != nil {
			if p != nil {
				return "the consent trail is broken: " + p.Error(), nil
			}
			return "", err
		}
	}
}

func (x *recordIndex) versionsProblem(e *Entry) string {
	l := x.records[e.ConsentID]
	if l == nil || len(l.versions) == 0 {
		return "" // verifyRecordTrail reports a record without events
	}
	at, skew := e.At.UnixMilli(), BasisClockSkew.Milliseconds()
	if first := l.versions[0]; first.adopted && at < first.from {
		return ""
	}
	var near *recordVersion
	for _, v := range l.versions {
		if at < v.from-skew || (v.until != 0 && at > v.until+skew) {
			continue
		}
		if covers(v.items, e.Items) {
			return ""
		}
		near = v
	}
	if near == nil {
		return "" // outside every version: problem reports the time
	}
	var extra []string
	for _, it := range e.Items {
		if !slices.Contains(near.items, it) {
			extra = append(extra, it)
		}
	}
	return fmt.Sprintf("it released %s, which consent %s did not cover at %s (it covered %s)", strings.Join(extra, ", "), e.ConsentID,
		stamp(e.At), strings.Join(near.items, ", "))
}

// verifyRecordTrail checks the consent trail: its hash chain and committed
// leaves like a citizen's chain, that each event follows from the ones
// before, and that every stored consent record is what its last event
// says (a record granted, widened, un-withdrawn or inserted by hand is
// found), and that every record the trail names is still stored.
func verifyRecordTrail(ctx context.Context, s AuditStore, r *Report, x *recordIndex) (*Problem, error) {
	read := func(after int64) ([]link, error) {
		page, err := s.RecordTrail(ctx, after, verifyPage)
		if err != nil {
			return nil, err
		}
		out := make([]link, len(page))
		for i, e := range page {
			out[i] = link{owner: RecordTrailChain, seq: e.Seq, id: e.ID, prev: e.Prev, hash: e.Hash, want: e.ComputeHash()}
		}
		return out, nil
	}
	if p, err := verifyLinks(ctx, s, RecordTrailChain, read, func() { r.RecordEvents++ }); err != nil || p != nil {
		return p, err
	}
	if p, err := x.extend(ctx); err != nil || p != nil {
		return p, err
	}
	after := ""
	for {
		page, err := s.Records(ctx, after, verifyPage)
		if err != nil {
			return nil, err
		}
		for _, rec := range page {
			r.Records++
			if p, err := x.checkRecord(ctx, rec); err != nil || p != nil {
				return p, err
			}
		}
		if len(page) < verifyPage {
			break
		}
		after = page[len(page)-1].ID
	}
	for id, l := range x.records {
		if l.seen {
			continue
		}
		// Granted after its place in the records was read, or deleted.
		rec, err := s.GetRecord(ctx, "", id)
		if errors.Is(err, ErrNotFound) {
			return &Problem{CitizenID: RecordTrailChain, Seq: l.ev.Seq, EntryID: l.ev.ID, ConsentID: id,
				What: fmt.Sprintf("the trail names consent %s, which is no longer stored: it was deleted by hand", id)}, nil
		}
		if err != nil {
			return nil, err
		}
		if p, err := x.checkRecord(ctx, rec); err != nil || p != nil {
			return p, err
		}
	}
	return nil, nil
}

// recordProblem says how a stored record differs from its last event.
func (x *recordIndex) recordProblem(rec *Record) string {
	l := x.records[rec.ID]
	if l == nil {
		return fmt.Sprintf("consent %s has no event in the consent trail: it was inserted by hand", rec.ID)
	}
	if rec.CitizenID != l.ev.CitizenID {
		return fmt.Sprintf("consent %s belongs to citizen %s in the consent trail (event %d): it was moved by hand", rec.ID, l.ev.CitizenID, l.ev.Seq)
	}
	if rec.Basis != BasisConsent {
		return fmt.Sprintf("consent %s's basis was changed by hand", rec.ID)
	}
	if d := RecordStateOf(rec).Diff(l.state); len(d) > 0 {
		return fmt.Sprintf("consent %s differs from its last event in the consent trail (event %d, %s) in its %s: it was edited by hand",
			rec.ID, l.ev.Seq, l.ev.Action, strings.Join(d, ", "))
	}
	return ""
}

// checkRecord checks a stored record against the trail; when it differs,
// it reads the trail's newer events and the record again (a grant or
// withdrawal since) before calling it a problem.
func (x *recordIndex) checkRecord(ctx context.Context, rec *Record) (*Problem, error) {
	for retry := 0; ; retry++ {
		what := x.recordProblem(rec)
		if what == "" {
			x.records[rec.ID].seen = true
			return nil, nil
		}
		if retry == 2 {
			return &Problem{CitizenID: rec.CitizenID, ConsentID: rec.ID, What: what}, nil
		}
		if p, err := x.extend(ctx); err != nil || p != nil {
			return p, err
		}
		again, err := x.s.GetRecord(ctx, "", rec.ID)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile: report what was read
		}
		if err != nil {
			return nil, err
		}
		rec = again
	}
}

// flagProblem says how an entry's flag differs from the trail ("" when it
// agrees): a flag must have its event, at its time, with its note; an
// event's entry must still be flagged.
func (x *recordIndex) flagProblem(ctx context.Context, e *Entry) (string, error) {
	ev := x.flags[e.ID]
	if ev == nil && e.FlaggedAt != nil {
		// Perhaps flagged since the trail was read.
		if p, err := x.extend(ctx); err != nil || p != nil {
			if p != nil {
				return "the consent trail is broken: " + p.Error(), nil
			}
			return "", err
		}
		ev = x.flags[e.ID]
	}
	if ev != nil && e.FlaggedAt == nil {
		// Perhaps the entry was read before its flag committed and the
		// trail after: read it again (a flag is never taken back).
		again, err := x.s.GetEntry(ctx, e.CitizenID, e.ID)
		switch {
		case err == nil:
			e = again
		case !errors.Is(err, ErrNotFound):
			return "", err
		}
	}
	switch {
	case ev == nil && e.FlaggedAt == nil:
		return "", nil
	case ev == nil:
		return "its flag has no event in the consent trail: it was flagged by hand", nil
	case e.FlaggedAt == nil:
		return fmt.Sprintf("the citizen flagged it (consent trail event %d) but the flag was erased", ev.Seq), nil
	}
	x.matched[e.ID] = true
	switch {
	case ev.CitizenID != e.CitizenID:
		return fmt.Sprintf("its flag event (consent trail event %d) is another citizen's", ev.Seq), nil
	case !sameMS(*e.FlaggedAt, ev.At):
		return fmt.Sprintf("its flag time (%s) differs from its consent trail event %d (%s): it was edited by hand",
			stamp(*e.FlaggedAt), ev.Seq, stamp(ev.At)), nil
	case !bytes.Equal(Sum(e.FlagNote), ev.Note):
		return fmt.Sprintf("its flag note differs from its consent trail event %d: it was edited by hand", ev.Seq), nil
	}
	return "", nil
}

// unmatchedFlags checks the flags the chains did not show (their entries
// read before the flag, or erased with the entry's chain unchanged).
func (x *recordIndex) unmatchedFlags(ctx context.Context) (*Problem, error) {
	for id, ev := range x.flags {
		if x.matched[id] {
			continue
		}
		e, err := x.s.GetEntry(ctx, ev.CitizenID, id)
		if errors.Is(err, ErrNotFound) {
			return &Problem{CitizenID: ev.CitizenID, EntryID: id,
				What: fmt.Sprintf("the citizen flagged it (consent trail event %d) but the entry is gone", ev.Seq)}, nil
		}
		if err != nil {
			return nil, err
		}
		what, err := x.flagProblem(ctx, e)
		if err != nil {
			return nil, err
		}
		if what != "" {
			return &Problem{CitizenID: e.CitizenID, Seq: e.Seq, EntryID: id, What: what}, nil
		}
	}
	return nil, nil
}
