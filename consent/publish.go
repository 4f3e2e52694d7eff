package consent

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Inclusion proves that a citizen's latest committed chain head is a leaf
// of the tree of the latest checkpoint: the citizen's app checks the
// proof against the checkpoint's root (and the witnesses' cosignatures),
// keeps the checkpoint, and asks for a consistency proof from it next time
// (GET /audit/v1/consistency), so a rewrite of its history shows.
type Inclusion struct {
	// Checkpoint is the latest checkpoint's note with the witnesses'
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

// ProveInclusion returns the inclusion of citizenID's latest committed
// head in the latest checkpoint; ErrNotFound when no checkpoint commits
// one yet.
func ProveInclusion(ctx context.Context, s WitnessStore, citizenID string) (*Inclusion, error) {
	cp, n, err := CosignedNote(ctx, s)
	if err != nil {
		return nil, err
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
			if page[i].Index < cp.Size && (best == nil || page[i].Seq > best.Seq) {
				best = &page[i]
			}
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if best == nil {
		return nil, fmt.Errorf("no checkpoint commits the citizen's log yet: %w", ErrNotFound)
	}
	p, err := tlog.ProveRecord(cp.Size, best.Index, HashReader(ctx, s))
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of leaf %d: %w", best.Index, err)
	}
	return &Inclusion{Checkpoint: n, TreeSize: cp.Size, LeafIndex: best.Index, Seq: best.Seq, Hash: best.Hash,
		LeafData: leafData(citizenID, best.Seq, best.Hash), Proof: p}, nil
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
