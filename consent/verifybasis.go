package consent

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// BasisClockSkew is how far verify lets a release's time (At, read on
// the replica that served it) stray outside the version of the legal basis
// it names (whose event times were read on the host that changed the
// basis, often another replica or the CLI's). Clocks kept by NTP agree far
// better than this; a release forged a minute or more outside its basis
// is still reported. The same tolerance applies to a consent's grant and
// withdrawal times.
const BasisClockSkew = 5 * time.Second

// basisVersion is one version of a legal basis as the trail made it, and
// how long it stood: from the event that made it until the next amendment
// or the revocation (nil while it stands).
type basisVersion struct {
	state *BasisState
	seq   int64 // the trail event that made it
	from  time.Time
	until *time.Time
}

// basisHistory is one basis's versions, in order, as the trail tells it.
type basisHistory struct {
	agency, purpose string
	versions        []*basisVersion
	revokedAt       *time.Time
	revokedSeq      int64
}

// basisIndex is the trail read into each basis's versions, so that the
// bases' rows and the access log's releases can be checked against it.
type basisIndex map[string]*basisHistory

// add records a trail event that verifyTrail accepted.
func (x basisIndex) add(e *BasisEvent) {
	h := x[e.BasisID]
	if h == nil {
		h = &basisHistory{agency: e.Agency, purpose: e.Purpose}
		x[e.BasisID] = h
	}
	at := e.At
	if n := len(h.versions); n > 0 && h.versions[n-1].until == nil && (e.Action == BasisAmended || e.Action == BasisRevoked) {
		h.versions[n-1].until = &at
	}
	if e.Action == BasisRevoked {
		h.revokedAt, h.revokedSeq = &at, e.Seq
		return
	}
	h.versions = append(h.versions, &basisVersion{state: e.After, seq: e.Seq, from: at})
}

func sameMS(a, b time.Time) bool { return a.UnixMilli() == b.UnixMilli() }

// timesProblem says how a stored basis's times differ from its trail
// ("" when they agree): granted (created_at) at its first event, amended
// (updated_at) at the event that made its version, revoked at its
// revocation.
func (h *basisHistory) timesProblem(b *LegalBasis) string {
	if len(h.versions) == 0 {
		return ""
	}
	first, last := h.versions[0], h.versions[len(h.versions)-1]
	switch {
	case !sameMS(b.CreatedAt, first.from):
		return fmt.Sprintf("its granted time (%s) differs from its trail event %d (%s): it was edited by hand",
			stamp(b.CreatedAt), first.seq, stamp(first.from))
	case !sameMS(b.UpdatedAt, last.from):
		return fmt.Sprintf("its last change time (%s) differs from its trail event %d (%s): it was edited by hand",
			stamp(b.UpdatedAt), last.seq, stamp(last.from))
	case b.RevokedAt != nil && h.revokedAt != nil && !sameMS(*b.RevokedAt, *h.revokedAt):
		return fmt.Sprintf("its revocation time (%s) differs from its trail event %d (%s): it was edited by hand",
			stamp(*b.RevokedAt), h.revokedSeq, stamp(*h.revokedAt))
	}
	return ""
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// entryProblem says how a release's claim of a legal basis differs from
// the trail ("" when it agrees, or when the entry claims none): the basis
// and the version it names must have been made by the trail, for the
// entry's agency and purpose, with its basis and law; the entry's time
// must fall while that version stood (from the event that made it up to
// and including the millisecond of the next change: a release holds the
// basis until it is stored, so one stored in the same millisecond as the
// change came first), widened by BasisClockSkew at both ends since the two
// times come from different hosts' clocks; and every item released must
// be in that version. A
// forged reference in an entry whose hash chain is consistent is found
// here.
func (x basisIndex) entryProblem(e *Entry) string {
	if e.V < EntryVersion || e.Outcome != OutcomeReleased {
		return ""
	}
	if e.BasisID == "" {
		// Every release under a legal basis is decided on a registered
		// one (Service.Decide) and names it, except an operator's look-up
		// of the register (cmd/onedoor logOperatorLookup: public task,
		// the register's own law).
		if e.Basis.Legal() && e.Channel != ChannelOperator {
			if e.Channel == ChannelBroker {
				return "the broker released it under a legal basis but the entry names none"
			}
			return fmt.Sprintf("it was released on channel %s under a legal basis but the entry names none", e.Channel)
		}
		return ""
	}
	h := x[e.BasisID]
	if h == nil {
		return fmt.Sprintf("it claims legal basis %s, which the trail never granted", e.BasisID)
	}
	var v *basisVersion
	for _, c := range h.versions {
		if c.state != nil && c.state.Version == e.BasisVersion {
			v = c
		}
	}
	switch {
	case v == nil:
		return fmt.Sprintf("it claims version %d of legal basis %s, which the trail never made", e.BasisVersion, e.BasisID)
	case e.Actor.Agency != h.agency || e.Purpose != h.purpose:
		return fmt.Sprintf("legal basis %s is agency %s's for purpose %s, not this entry's", e.BasisID, h.agency, h.purpose)
	case e.Basis != v.state.Basis || e.Law != v.state.Law:
		return fmt.Sprintf("its basis or law differ from version %d of legal basis %s (trail event %d)", e.BasisVersion, e.BasisID, v.seq)
	case e.At.UnixMilli() < v.from.Add(-BasisClockSkew).UnixMilli() || (v.until != nil && e.At.UnixMilli() > v.until.Add(BasisClockSkew).UnixMilli()):
		until := "now"
		if v.until != nil {
			until = stamp(*v.until)
		}
		return fmt.Sprintf("it was released at %s, outside version %d of legal basis %s (from %s to %s)",
			stamp(e.At), e.BasisVersion, e.BasisID, stamp(v.from), until)
	}
	var extra []string
	for _, it := range e.Items {
		if !slices.Contains(v.state.Items, it) {
			extra = append(extra, it)
		}
	}
	if len(extra) > 0 {
		return fmt.Sprintf("it released %s, outside version %d of legal basis %s (%s)",
			strings.Join(extra, ", "), e.BasisVersion, e.BasisID, strings.Join(v.state.Items, ", "))
	}
	return ""
}
