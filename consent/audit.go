package consent

import (
	"context"
	"time"
)

// Leaf is one chain head committed to the audit tree: leaf Index of a
// Merkle tree (golang.org/x/mod/sumdb/tlog) that grows with every
// checkpoint. Once committed, a citizen's entry at Seq must keep Hash: an
// operator who rewrites the chain, even recomputing every later hash,
// cannot make the old leaf match.
type Leaf struct {
	Index     int64
	CitizenID string
	Seq       int64
	Hash      []byte
}

// Checkpoint is the signed statement of the audit tree's size and root
// hash at one moment.
type Checkpoint struct {
	Size      int64
	Root      []byte
	Note      string // the signed note (golang.org/x/mod/sumdb/note)
	CreatedAt time.Time
}

// TreeHash is one stored hash of the audit tree, at its
// tlog.StoredHashIndex.
type TreeHash struct {
	Index int64
	Hash  []byte
}

// Commit is what one checkpoint adds to the tree: the leaves (indexes
// from the previous checkpoint's size, one per head given to the build
// function, in order), the tree hashes they create, and the checkpoint.
type Commit struct {
	Leaves     []Leaf
	Hashes     []TreeHash
	Checkpoint Checkpoint
}

// BuildFunc computes a Commit from the last checkpoint (nil for the first),
// the heads that moved since, and a reader of the stored tree hashes.
type BuildFunc func(last *Checkpoint, heads []Head, read func(indexes []int64) ([][]byte, error)) (*Commit, error)

// AuditStore is what checkpoints and verification need from the log's
// store.
type AuditStore interface {
	// CommitHeads, under a lock one replica holds at a time and in one
	// transaction, reads the last checkpoint and up to limit chain heads
	// that moved since they were last committed (by citizen), calls build
	// unless none moved, and stores its leaves, hashes and checkpoint. It
	// returns the new checkpoint, or nil when no head moved.
	CommitHeads(ctx context.Context, limit int, build BuildFunc) (*Checkpoint, error)
	// LastCheckpoint returns the newest checkpoint; ErrNotFound when none.
	LastCheckpoint(ctx context.Context) (*Checkpoint, error)
	// TreeHashes reads stored tree hashes (at tlog.StoredHashIndex) in
	// the order asked; ErrNotFound when one is missing.
	TreeHashes(ctx context.Context, indexes []int64) ([][]byte, error)
	// Checkpoints pages checkpoints with Size > after, smallest first.
	Checkpoints(ctx context.Context, after int64, limit int) ([]*Checkpoint, error)
	// Leaves pages the tree's leaves with Index >= from, in index order.
	Leaves(ctx context.Context, from int64, limit int) ([]Leaf, error)
	// CitizenLeaves pages one citizen's leaves with Seq > after, by Seq.
	CitizenLeaves(ctx context.Context, citizenID string, after int64, limit int) ([]Leaf, error)
	// Citizens pages the citizens that have entries, a chain head or
	// leaves, in byte order after after (never BasisTrailChain or
	// RecordTrailChain).
	Citizens(ctx context.Context, after string, limit int) ([]string, error)
	// Chain pages a citizen's entries with Seq > after, by Seq, as stored
	// (nothing checked).
	Chain(ctx context.Context, citizenID string, after int64, limit int) ([]*Entry, error)
	// ChainHead returns the citizen's stored chain head; ErrNotFound when
	// none.
	ChainHead(ctx context.Context, citizenID string) (*Head, error)
	// BasisTrail pages the legal bases' trail with Seq > after, by Seq, as
	// stored (nothing checked). Its head is ChainHead(BasisTrailChain).
	BasisTrail(ctx context.Context, after int64, limit int) ([]*BasisEvent, error)
	// AllLegalBases lists every legal basis, live or revoked, by id.
	AllLegalBases(ctx context.Context) ([]*LegalBasis, error)
	// GetRecord returns a consent record (RecordStore.GetRecord): verify
	// checks each release under consent against the record it names.
	GetRecord(ctx context.Context, citizenID, id string) (*Record, error)
	// RecordTrail pages the consent trail with Seq > after, by Seq, as
	// stored (nothing checked). Its head is ChainHead(RecordTrailChain).
	RecordTrail(ctx context.Context, after int64, limit int) ([]*RecordEvent, error)
	// Records pages every citizen's consent records by id, after after.
	Records(ctx context.Context, after string, limit int) ([]*Record, error)
	// GetEntry returns one access-log entry (LogStore.GetEntry): verify
	// rereads an entry whose flag the trail names.
	GetEntry(ctx context.Context, citizenID, id string) (*Entry, error)
}
