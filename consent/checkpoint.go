package consent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The audit checkpoint's key name and the first line of every checkpoint.
// Both are part of what is signed: never change them.
const (
	CheckpointKeyName = "onedoor-audit"
	CheckpointOrigin  = "onedoor audit log v1"
)

// CheckpointKeys returns the Ed25519 note signer and verifier of audit
// checkpoints derived from a 32-byte seed. cmd/onedoor derives the seed
// from the platform master key, so every replica signs with the same key
// and nothing new is stored.
func CheckpointKeys(seed []byte) (note.Signer, note.Verifier, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, nil, fmt.Errorf("consent: checkpoint key seed must be %d bytes: %w", ed25519.SeedSize, ErrInvalid)
	}
	vkey, err := CheckpointVerifierKey(seed)
	if err != nil {
		return nil, nil, err
	}
	// vkey is name+hash+key; the signer key is the same hash with the
	// algorithm byte and the seed.
	parts := strings.Split(vkey, "+")
	skey := "PRIVATE+KEY+" + CheckpointKeyName + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, err
	}
	return signer, verifier, nil
}

// CheckpointVerifierKey is the encoded public key of the checkpoints
// signed with the key of seed ("onedoor-audit+hash+key", as
// golang.org/x/mod/sumdb/note writes it): what an outside witness needs to
// check the checkpoints it keeps.
func CheckpointVerifierKey(seed []byte) (string, error) {
	if len(seed) != ed25519.SeedSize {
		return "", fmt.Errorf("consent: checkpoint key seed must be %d bytes: %w", ed25519.SeedSize, ErrInvalid)
	}
	return note.NewEd25519VerifierKey(CheckpointKeyName, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}

// leafData is what a leaf's record hash covers: the citizen, the seq and
// the hash of the head it commits. Its form never changes.
func leafData(citizenID string, seq int64, hash []byte) []byte {
	b, err := json.Marshal(struct {
		V       int    `json:"v"`
		Citizen string `json:"citizen"`
		Seq     int64  `json:"seq"`
		Hash    []byte `json:"hash"`
	}{1, citizenID, seq, hash})
	if err != nil {
		panic(fmt.Sprintf("consent: encoding a leaf: %v", err)) // a string, a number and bytes: cannot fail
	}
	return b
}

// checkpointText is the signed text: origin, tree size and root hash, as
// in the transparency-log checkpoints of C2SP.
func checkpointText(size int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", CheckpointOrigin, size, base64.StdEncoding.EncodeToString(root[:]))
}

func parseCheckpointText(text string) (int64, []byte, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[0] != CheckpointOrigin {
		return 0, nil, errors.New("not an audit checkpoint")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return 0, nil, errors.New("malformed tree size")
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return 0, nil, errors.New("malformed root hash")
	}
	return size, root, nil
}

// Checkpointer periodically commits the chain heads that moved to the
// audit tree and signs a checkpoint of it. Run it on every replica: the
// store lets one commit at a time, and the others find nothing to do.
type Checkpointer struct {
	Store  AuditStore
	Signer note.Signer
	// Verifier is Signer's public half: the last checkpoint must verify
	// with it before the tree is extended, so a checkpoint signed with
	// another key (an admin command run with the wrong master key) is
	// never built upon.
	Verifier note.Verifier
	// Batch bounds the heads one checkpoint commits (and so how long the
	// store's lock is held); 0 means 5000. One call commits one batch at
	// most: the next call (tick) takes the rest.
	Batch int
	Now   func() time.Time
}

func (c *Checkpointer) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Commit commits up to Batch heads that moved since the last checkpoint
// in one new checkpoint and returns it, or nil when none moved. It makes
// one checkpoint at most: under steady appends a loop until nothing moved
// would never end, and each replica's tick would sign a checkpoint per
// append.
func (c *Checkpointer) Commit(ctx context.Context) (*Checkpoint, error) {
	cp, _, err := c.commit(ctx)
	return cp, err
}

// commit is Commit that also says how many heads the checkpoint committed.
func (c *Checkpointer) commit(ctx context.Context) (*Checkpoint, int, error) {
	batch := c.Batch
	if batch <= 0 {
		batch = 5000
	}
	var heads int
	cp, err := c.Store.CommitHeads(ctx, batch, func(last *Checkpoint, hs []Head, read func([]int64) ([][]byte, error)) (*Commit, error) {
		heads = len(hs)
		return c.build(last, hs, read)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("audit checkpoint: %w", err)
	}
	if cp == nil {
		heads = 0
	}
	return cp, heads, nil
}

// Run commits one checkpoint every interval until ctx ends, reporting
// each checkpoint made to onCommit with the number of heads it committed,
// and failures to onErr (either may be nil).
func (c *Checkpointer) Run(ctx context.Context, interval time.Duration, onCommit func(cp *Checkpoint, heads int), onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cp, heads, err := c.commit(ctx)
			switch {
			case err != nil && ctx.Err() == nil && onErr != nil:
				onErr(err)
			case err == nil && cp != nil && onCommit != nil:
				onCommit(cp, heads)
			}
		}
	}
}

// ErrTreeMismatch means the stored audit tree no longer hashes to the last
// signed checkpoint: someone changed it, and no checkpoint is added on top.
var ErrTreeMismatch = errors.New("the stored audit tree does not match the last signed checkpoint")

// ErrCheckpointKey means the last checkpoint does not verify with the
// checkpointer's own key: it was signed by another key (most likely an
// admin command run with the wrong master key) or changed, and no
// checkpoint is added on top.
var ErrCheckpointKey = errors.New("the last checkpoint does not verify with this checkpoint key")

// ErrUncoveredLeaves means the tree holds leaves past the last signed
// checkpoint: the checkpoint that committed them was removed.
var ErrUncoveredLeaves = errors.New("the audit tree has leaves no signed checkpoint covers: a checkpoint was removed; run onedoor audit verify")

// checkLast checks the last checkpoint's signature, and that its signed
// text says its stored size and root, with the checkpointer's verifier.
func (c *Checkpointer) checkLast(last *Checkpoint) error {
	n, err := note.Open([]byte(last.Note), note.VerifierList(c.Verifier))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) && len(unverified.Note.UnverifiedSigs) > 0 {
			sig := unverified.Note.UnverifiedSigs[0]
			return fmt.Errorf("%w (size %d): it is signed by another key (%s+%08x): was a checkpoint made with the wrong master key?",
				ErrCheckpointKey, last.Size, sig.Name, sig.Hash)
		}
		return fmt.Errorf("%w (size %d): %v: the checkpoint was changed, or signed by another key (wrong master key?)", ErrCheckpointKey, last.Size, err)
	}
	size, root, err := parseCheckpointText(n.Text)
	if err != nil || size != last.Size || !bytes.Equal(root, last.Root) {
		return fmt.Errorf("%w (size %d): the stored size or root differs from what was signed", ErrTreeMismatch, last.Size)
	}
	return nil
}

// build extends the tree by one leaf per head and signs the new root. It
// first checks that the stored tree still hashes to the last signed root,
// so a checkpoint never vouches for a tree someone rewrote.
func (c *Checkpointer) build(last *Checkpoint, heads []Head, read func([]int64) ([][]byte, error)) (*Commit, error) {
	if c.Signer == nil || c.Verifier == nil {
		return nil, errors.New("no checkpoint signer and verifier configured")
	}
	if last != nil {
		if err := c.checkLast(last); err != nil {
			return nil, err
		}
	}
	var size int64
	if last != nil {
		size = last.Size
	}
	mem := map[int64]tlog.Hash{}
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		var need []int64
		var at []int
		for i, x := range indexes {
			if h, ok := mem[x]; ok {
				out[i] = h
				continue
			}
			need, at = append(need, x), append(at, i)
		}
		if len(need) == 0 {
			return out, nil
		}
		got, err := read(need)
		if err != nil {
			return nil, err
		}
		if len(got) != len(need) {
			return nil, errors.New("the store returned the wrong number of tree hashes")
		}
		for j, b := range got {
			if len(b) != tlog.HashSize {
				return nil, fmt.Errorf("stored tree hash %d is malformed", need[j])
			}
			copy(out[at[j]][:], b)
			mem[need[j]] = out[at[j]]
		}
		return out, nil
	})
	if last != nil {
		root, err := tlog.TreeHash(size, reader)
		if err != nil {
			return nil, fmt.Errorf("read the audit tree: %w", err)
		}
		if !bytes.Equal(root[:], last.Root) {
			return nil, fmt.Errorf("%w (size %d)", ErrTreeMismatch, size)
		}
	}
	cm := &Commit{}
	for i, h := range heads {
		n := size + int64(i)
		hashes, err := tlog.StoredHashes(n, leafData(h.CitizenID, h.Seq, h.Hash), reader)
		if err != nil {
			return nil, fmt.Errorf("hash leaf %d: %w", n, err)
		}
		base := tlog.StoredHashIndex(0, n)
		for j, hh := range hashes {
			mem[base+int64(j)] = hh
			cm.Hashes = append(cm.Hashes, TreeHash{Index: base + int64(j), Hash: bytes.Clone(hh[:])})
		}
		cm.Leaves = append(cm.Leaves, Leaf{Index: n, CitizenID: h.CitizenID, Seq: h.Seq, Hash: h.Hash})
	}
	newSize := size + int64(len(heads))
	root, err := tlog.TreeHash(newSize, reader)
	if err != nil {
		return nil, fmt.Errorf("hash the audit tree: %w", err)
	}
	signed, err := note.Sign(&note.Note{Text: checkpointText(newSize, root)}, c.Signer)
	if err != nil {
		return nil, fmt.Errorf("sign the checkpoint: %w", err)
	}
	cm.Checkpoint = Checkpoint{Size: newSize, Root: root[:], Note: string(signed), CreatedAt: c.now().UTC()}
	return cm, nil
}
