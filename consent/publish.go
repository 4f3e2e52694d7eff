package consent

import (
	"context"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// Published chooses the checkpoint that is served and proved against:
// with witnesses configured, the latest one Quorum of them cosigned (a
// checkpoint the witnesses have not seen yet, or refused, proves nothing
// to an app that checks cosignatures); without, the latest.
type Published struct {
	Store     WitnessStore
	Witnesses []*Witness
	// Quorum is how many Witnesses must cosign; 0 means all.
	Quorum int
}

// quorumCandidates bounds the sizes Checkpoint checks the cosignatures
// of, from each source: a stored cosignature that does not verify
// (cosigners check before storing) costs one more, not a walk of the
// history.
const quorumCandidates = 3

func (p *Published) quorum() int {
	if p.Quorum <= 0 || p.Quorum > len(p.Witnesses) {
		return len(p.Witnesses)
	}
	return p.Quorum
}

// Checkpoint returns the published checkpoint and its note with the
// configured witnesses' valid cosignature lines; ErrNotFound when there is
// none yet.
func (p *Published) Checkpoint(ctx context.Context) (*Checkpoint, string, error) {
	if len(p.Witnesses) == 0 {
		return CosignedNote(ctx, p.Store)
	}
	// Witnesses cosign each checkpoint in turn, so the sizes they last
	// cosigned are the likely answer (a few indexed reads). When none of
	// them has a quorum (one witness ahead of the others, or one that never
	// cosigns), the store finds the largest sizes a quorum cosigned in one
	// query: reading every cosignature and each checkpoint in turn made
	// each unauthenticated request cost the whole history.
	latest, err := p.Store.LatestCosignatures(ctx)
	if err != nil {
		return nil, "", err
	}
	var sizes []int64
	for _, c := range latest {
		if p.witness(c) != nil && !slices.Contains(sizes, c.Size) {
			sizes = append(sizes, c.Size)
		}
	}
	slices.Sort(sizes)
	slices.Reverse(sizes)
	for i, size := range sizes {
		cs, err := p.Store.Cosignatures(ctx, size)
		if err != nil {
			return nil, "", err
		}
		if cp, n, ok, err := p.witnessed(ctx, size, cs); err != nil || ok {
			return cp, n, err
		}
		if i+1 == quorumCandidates {
			break
		}
	}
	keys := make([]WitnessKey, 0, len(p.Witnesses))
	for _, w := range p.Witnesses {
		keys = append(keys, WitnessKey{Name: w.Name, KeyHash: w.KeyHash})
	}
	found, err := p.Store.QuorumSizes(ctx, keys, p.quorum(), quorumCandidates)
	if err != nil {
		return nil, "", err
	}
	for _, size := range found {
		if slices.Contains(sizes, size) {
			continue // checked above
		}
		cs, err := p.Store.Cosignatures(ctx, size)
		if err != nil {
			return nil, "", err
		}
		if cp, n, ok, err := p.witnessed(ctx, size, cs); err != nil || ok {
			return cp, n, err
		}
	}
	return nil, "", fmt.Errorf("no checkpoint has a quorum of cosignatures yet: %w", ErrNotFound)
}

func (p *Published) witness(c *Cosignature) *Witness {
	for _, w := range p.Witnesses {
		if w.Name == c.Witness && w.KeyHash == c.KeyHash {
			return w
		}
	}
	return nil
}

// witnessed reports whether cs (the cosignatures of size) hold a quorum
// of valid cosignatures of the stored checkpoint of size, and returns it
// with their lines.
func (p *Published) witnessed(ctx context.Context, size int64, cs []*Cosignature) (*Checkpoint, string, bool, error) {
	if n := len(slices.DeleteFunc(slices.Clone(cs), func(c *Cosignature) bool { return p.witness(c) == nil })); n < p.quorum() {
		return nil, "", false, nil // too few to check: no checkpoint read
	}
	cp, err := p.Store.CheckpointAt(ctx, size)
	if err != nil {
		return nil, "", false, err
	}
	n, count := cp.Note, 0
	for _, c := range cs {
		if w := p.witness(c); w != nil && c.Size == cp.Size && string(c.Root) == string(cp.Root) && c.Verify(w) {
			n += c.Line()
			count++
		}
	}
	return cp, n, count >= p.quorum(), nil
}

// Inclusion proves that one of a citizen's committed chain heads is a
// leaf of the tree of the published checkpoint: the citizen's app checks
// the proof against the checkpoint's root (and the witnesses'
// cosignatures), keeps the checkpoint and the head, and next time asks for
// a consistency proof from it (GET /audit/v1/consistency) and checks that
// the head is still in its chain (docs/audit-transparency.md).
type Inclusion struct {
	// Checkpoint is the published checkpoint's note with the witnesses'
	// cosignature lines.
	Checkpoint string
	TreeSize   int64
	LeafIndex  int64
	Seq        int64
	// Hash is the hash of the citizen's entry Seq the leaf commits.
	Hash []byte
	// LeafData is the leaf's bytes: tlog.RecordHash(LeafData) is the leaf
	// hash; JSON {"v":1,"citizen":…,"seq":…,"hash":base64}.
	LeafData []byte
	Proof    tlog.RecordProof
}

// ProveInclusion returns the inclusion of citizenID's leaf in the
// published checkpoint: with seq 0 the latest committed head, else the
// leaf committing seq or the first after it. ErrNotFound when the
// checkpoint commits no such leaf yet.
func (p *Published) ProveInclusion(ctx context.Context, citizenID string, seq int64) (*Inclusion, error) {
	if seq < 0 {
		return nil, fmt.Errorf("seq must be positive: %w", ErrInvalid)
	}
	cp, n, err := p.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	var best *Leaf
	if seq > 0 {
		best, err = firstLeafFrom(ctx, p.Store, citizenID, seq, cp.Size)
	} else {
		best, err = latestLeafBelow(ctx, p.Store, citizenID, cp.Size)
	}
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, fmt.Errorf("no published checkpoint commits that part of the citizen's log yet: %w", ErrNotFound)
	}
	pr, err := tlog.ProveRecord(cp.Size, best.Index, HashReader(ctx, p.Store))
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of leaf %d: %w", best.Index, err)
	}
	return &Inclusion{Checkpoint: n, TreeSize: cp.Size, LeafIndex: best.Index, Seq: best.Seq, Hash: best.Hash,
		LeafData: leafData(citizenID, best.Seq, best.Hash), Proof: pr}, nil
}

// firstLeafFrom returns the citizen's first leaf with Seq >= seq and an
// index below size, or nil.
func firstLeafFrom(ctx context.Context, s WitnessStore, citizenID string, seq, size int64) (*Leaf, error) {
	after := seq - 1
	for {
		page, err := s.CitizenLeaves(ctx, citizenID, after, 100)
		if err != nil {
			return nil, err
		}
		for i := range page {
			if page[i].Index < size {
				return &page[i], nil
			}
		}
		if len(page) < 100 {
			return nil, nil
		}
		after = page[len(page)-1].Seq
	}
}

// latestLeafBelow returns the citizen's leaf of the highest Seq with an
// index below size, or nil.
func latestLeafBelow(ctx context.Context, s WitnessStore, citizenID string, size int64) (*Leaf, error) {
	if r, ok := s.(interface {
		LatestCitizenLeaf(ctx context.Context, citizenID string, below int64) (*Leaf, error)
	}); ok {
		return r.LatestCitizenLeaf(ctx, citizenID, size)
	}
	var (
		best  *Leaf
		after int64
	)
	for {
		page, err := s.CitizenLeaves(ctx, citizenID, after, 1000)
		if err != nil {
			return nil, err
		}
		for i := range page {
			if page[i].Index < size && (best == nil || page[i].Seq > best.Seq) {
				best = &page[i]
			}
		}
		if len(page) < 1000 {
			return best, nil
		}
		after = page[len(page)-1].Seq
	}
}

// ProveInclusion is (&Published{Store: s}).ProveInclusion of the latest
// head: the latest checkpoint, witnessed or not.
func ProveInclusion(ctx context.Context, s WitnessStore, citizenID string) (*Inclusion, error) {
	return (&Published{Store: s}).ProveInclusion(ctx, citizenID, 0)
}

// ProveConsistency returns the consistency proof from the tree of size
// from to that of size to (c2sp.org/tlog-checkpoint sizes); both must be
// at most the latest checkpoint's size.
func ProveConsistency(ctx context.Context, s WitnessStore, from, to int64) (tlog.TreeProof, error) {
	cp, err := s.LastCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	if from < 1 || from > to || to > cp.Size {
		return nil, fmt.Errorf("sizes must satisfy 1 <= from <= to <= %d (the latest checkpoint): %w", cp.Size, ErrInvalid)
	}
	return tlog.ProveTree(to, from, HashReader(ctx, s))
}
