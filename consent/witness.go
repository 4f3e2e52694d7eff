package consent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The operator holds the checkpoint key, so a checkpoint alone cannot stop
// the operator from rewriting history and signing again. Witnesses
// (c2sp.org/tlog-witness) close that gap: each keeps the last checkpoint it
// cosigned and cosigns a new one only with a consistency proof from it, so
// a rewritten log cannot gather cosignatures again, and the cosignatures
// already given name the old roots.

// algCosignatureV1 is the signed-note key type of c2sp.org/tlog-cosignature.
const algCosignatureV1 = 4

// Witness is one outside cosigner of the audit checkpoints.
type Witness struct {
	Name    string
	KeyHash uint32
	Key     ed25519.PublicKey
	// URL is the witness's prefix: add-checkpoint is POSTed to
	// URL+"/add-checkpoint".
	URL string
}

// ParseWitnessKey parses a cosignature/v1 verifier key,
// "name+hash+base64(0x04||key)" (c2sp.org/signed-note).
func ParseWitnessKey(vkey string) (*Witness, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hexHash, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validKeyName(name) || len(hexHash) != 8 {
		return nil, fmt.Errorf("consent: witness key must be name+hash+key: %w", ErrInvalid)
	}
	h, err := strconv.ParseUint(hexHash, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("consent: witness key hash: %w", ErrInvalid)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != algCosignatureV1 {
		return nil, fmt.Errorf("consent: witness key must be a cosignature/v1 (Ed25519) key: %w", ErrInvalid)
	}
	if uint32(h) != witnessKeyHash(name, key) {
		return nil, fmt.Errorf("consent: witness key hash does not match its name and key: %w", ErrInvalid)
	}
	return &Witness{Name: name, KeyHash: uint32(h), Key: ed25519.PublicKey(key[1:])}, nil
}

// NewWitness is the witness name with Ed25519 key, at url.
func NewWitness(name string, key ed25519.PublicKey, url string) (*Witness, error) {
	if !validKeyName(name) || len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("consent: a witness needs a name without spaces or '+' and an Ed25519 key: %w", ErrInvalid)
	}
	w := &Witness{Name: name, Key: key, KeyHash: witnessKeyHash(name, append([]byte{algCosignatureV1}, key...))}
	return ParseWitness(w.String() + "@" + url)
}

// ParseWitness parses "vkey@URL": a witness's verifier key and where it
// listens (https, or http on loopback for tests).
func ParseWitness(spec string) (*Witness, error) {
	// The key's last part is base64, which has no '@'.
	plus := strings.LastIndex(spec, "+")
	at := strings.Index(spec[max(plus, 0):], "@")
	if plus < 0 || at < 0 {
		return nil, fmt.Errorf("consent: a witness is vkey@url: %w", ErrInvalid)
	}
	w, err := ParseWitnessKey(spec[:plus+at])
	if err != nil {
		return nil, err
	}
	u := strings.TrimSuffix(spec[plus+at+1:], "/")
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") || strings.ContainsAny(u, "@?# ") {
		return nil, fmt.Errorf("consent: witness %s: URL must be http(s) without userinfo, query or fragment: %w", w.Name, ErrInvalid)
	}
	w.URL = u
	return w, nil
}

// String is the witness's verifier key.
func (w *Witness) String() string {
	return fmt.Sprintf("%s+%08x+%s", w.Name, w.KeyHash, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, w.Key...)))
}

func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

func witnessKeyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// cosignedMessage is what a cosignature/v1 signs.
func cosignedMessage(t uint64, text string) []byte {
	return fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", t, text)
}

// Cosignature is one witness's timestamped cosignature of the checkpoint
// of Size and Root.
type Cosignature struct {
	Witness string
	KeyHash uint32
	Size    int64
	Root    []byte
	// SignedAt is the witness's timestamp (whole seconds).
	SignedAt time.Time
	// Signature is the note signature's bytes after the key hash: the
	// big-endian timestamp and the Ed25519 signature.
	Signature []byte
}

// Verify checks c with w's key.
func (c *Cosignature) Verify(w *Witness) bool {
	if c.Witness != w.Name || c.KeyHash != w.KeyHash || len(c.Signature) != 8+ed25519.SignatureSize || len(c.Root) != tlog.HashSize {
		return false
	}
	t := binary.BigEndian.Uint64(c.Signature)
	if t > 1<<62 || c.SignedAt.Unix() != int64(t) {
		return false
	}
	return ed25519.Verify(w.Key, cosignedMessage(t, checkpointText(c.Size, tlog.Hash(c.Root))), c.Signature[8:])
}

// Line is the cosignature as a signed-note signature line, to append to
// the checkpoint's note.
func (c *Cosignature) Line() string {
	b := binary.BigEndian.AppendUint32(nil, c.KeyHash)
	return "— " + c.Witness + " " + base64.StdEncoding.EncodeToString(append(b, c.Signature...)) + "\n"
}

// maxCosignResponse bounds a witness's answer: a few signature lines.
const maxCosignResponse = 16 << 10

// ParseCosignature finds w's valid cosignature of the checkpoint (size,
// root) in an add-checkpoint response body: signature lines ("— name
// base64"), each ending in a newline. Lines of other keys are skipped (a
// witness may sign with several); a malformed body or no valid line of w
// is an error.
func ParseCosignature(body []byte, w *Witness, size int64, root []byte) (*Cosignature, error) {
	if len(body) == 0 || len(body) > maxCosignResponse || body[len(body)-1] != '\n' || !utf8.Valid(body) {
		return nil, errors.New("the witness's response is not signature lines")
	}
	for line := range strings.Lines(string(body)) {
		rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "— ")
		name, b64, ok2 := strings.Cut(rest, " ")
		if !ok || !ok2 || !validKeyName(name) {
			return nil, errors.New("the witness's response has a malformed signature line")
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) < 5 || base64.StdEncoding.EncodeToString(sig) != b64 {
			return nil, errors.New("the witness's response has a malformed signature")
		}
		if name != w.Name || binary.BigEndian.Uint32(sig) != w.KeyHash {
			continue
		}
		c := &Cosignature{Witness: name, KeyHash: w.KeyHash, Size: size, Root: bytes.Clone(root), Signature: sig[4:]}
		if len(c.Signature) == 8+ed25519.SignatureSize {
			c.SignedAt = time.Unix(int64(binary.BigEndian.Uint64(c.Signature)&(1<<63-1)), 0).UTC()
		}
		if !c.Verify(w) {
			return nil, errors.New("the witness's cosignature does not verify with its key")
		}
		return c, nil
	}
	return nil, errors.New("the witness's response has no cosignature by its key")
}

// AddCheckpointBody is the body of a c2sp.org/tlog-witness add-checkpoint
// request: the size the witness is believed to have, the consistency proof
// from it, a blank line and the signed checkpoint.
func AddCheckpointBody(oldSize int64, proof tlog.TreeProof, signedNote string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.WriteString(signedNote)
	return b.Bytes()
}

// ParseAddCheckpoint parses an add-checkpoint request body (what a witness
// reads): the old size, the proof and the note.
func ParseAddCheckpoint(body []byte) (oldSize int64, proof tlog.TreeProof, signedNote []byte, err error) {
	head, n, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return 0, nil, nil, errors.New("no blank line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	s, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return 0, nil, nil, errors.New("no old size")
	}
	oldSize, err = strconv.ParseInt(s, 10, 64)
	if err != nil || oldSize < 0 || s != strconv.FormatInt(oldSize, 10) {
		return 0, nil, nil, errors.New("malformed old size")
	}
	if len(lines) > 64 {
		return 0, nil, nil, errors.New("proof too long")
	}
	for _, l := range lines[1:] {
		h, err := tlog.ParseHash(l)
		// Canonical base64 only: one hash, one spelling.
		if err != nil || base64.StdEncoding.EncodeToString(h[:]) != l {
			return 0, nil, nil, errors.New("malformed proof hash")
		}
		proof = append(proof, h)
	}
	return oldSize, proof, n, nil
}

// OpenCheckpoint verifies a signed audit checkpoint with v and returns its
// size and root.
func OpenCheckpoint(signed []byte, v note.Verifier) (int64, tlog.Hash, error) {
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	size, root, err := parseCheckpointText(n.Text)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	return size, tlog.Hash(root), nil
}

// WitnessStore is what cosigning and publishing need beyond AuditStore.
type WitnessStore interface {
	AuditStore
	// CheckpointAt returns the checkpoint of exactly size; ErrNotFound
	// when none.
	CheckpointAt(ctx context.Context, size int64) (*Checkpoint, error)
	// AddCosignature stores a cosignature; storing the same (witness, key
	// hash, size) again keeps the first.
	AddCosignature(ctx context.Context, c *Cosignature) error
	// Cosignatures lists the cosignatures of the checkpoint of size
	// (every size when size < 0), by size then witness.
	Cosignatures(ctx context.Context, size int64) ([]*Cosignature, error)
	// LatestCosignatures returns each witness key's cosignature of the
	// largest size.
	LatestCosignatures(ctx context.Context) ([]*Cosignature, error)
	// QuorumSizes returns, largest first and at most limit, the sizes of
	// the stored checkpoints that at least quorum of keys cosigned with
	// the checkpoint's root (signatures unchecked): one query, however
	// many checkpoints there are.
	QuorumSizes(ctx context.Context, keys []WitnessKey, quorum, limit int) ([]int64, error)
}

// WitnessKey names one witness key (Cosignature.Witness and KeyHash).
type WitnessKey struct {
	Name    string
	KeyHash uint32
}

// HashReader reads the stored tree of s (for proofs of checkpointed sizes).
func HashReader(ctx context.Context, s WitnessStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		got, err := s.TreeHashes(ctx, indexes)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(indexes))
		for i, b := range got {
			if len(b) != tlog.HashSize {
				return nil, fmt.Errorf("stored tree hash %d is malformed", indexes[i])
			}
			out[i] = tlog.Hash(b)
		}
		return out, nil
	})
}

// Witnessed is one witness's latest valid cosignature, as Verify reports it.
type Witnessed struct {
	Witness  string    `json:"witness"`
	Size     int64     `json:"size"`
	SignedAt time.Time `json:"signed_at"`
}

// VerifyWitnesses checks every stored cosignature of the configured
// witnesses: its signature, and that the checkpoint of its size is stored
// with the root it cosigned (Verify has checked that root against the
// leaves). A rewrite of history below a witnessed size changes that root,
// and the operator cannot make the witness sign the new one. It sets
// r.Witnessed, r.WitnessedSize (the largest size quorum witnesses
// cosigned) and r.Broken on the first problem. Cosignatures of keys not
// configured are ignored (a retired witness).
func VerifyWitnesses(ctx context.Context, s WitnessStore, ws []*Witness, quorum int, r *Report) error {
	byID := map[string]*Witness{}
	for _, w := range ws {
		byID[w.Name+"\x00"+strconv.FormatUint(uint64(w.KeyHash), 16)] = w
	}
	all, err := s.Cosignatures(ctx, -1)
	if err != nil {
		return err
	}
	latest := map[string]*Cosignature{}
	sizes := map[int64]int{}
	for _, c := range all {
		id := c.Witness + "\x00" + strconv.FormatUint(uint64(c.KeyHash), 16)
		w := byID[id]
		if w == nil {
			continue
		}
		if !c.Verify(w) {
			r.Broken = &Problem{Checkpoint: c.Size, What: fmt.Sprintf("witness %s's cosignature does not verify with its key: the stored cosignature or the root it names was changed", w.Name)}
			return nil
		}
		cp, err := s.CheckpointAt(ctx, c.Size)
		if errors.Is(err, ErrNotFound) {
			r.Broken = &Problem{Checkpoint: c.Size, What: fmt.Sprintf("witness %s cosigned a checkpoint of this size that is no longer stored: history was rewritten", w.Name)}
			return nil
		}
		if err != nil {
			return err
		}
		if !bytes.Equal(cp.Root, c.Root) {
			r.Broken = &Problem{Checkpoint: c.Size, What: fmt.Sprintf("the checkpoint's root differs from the one witness %s cosigned: history below a witnessed size was rewritten", w.Name)}
			return nil
		}
		if l := latest[id]; l == nil || c.Size > l.Size {
			latest[id] = c
		}
		sizes[c.Size]++
	}
	r.Witnessed = []Witnessed{}
	for _, w := range ws {
		if c := latest[w.Name+"\x00"+strconv.FormatUint(uint64(w.KeyHash), 16)]; c != nil {
			r.Witnessed = append(r.Witnessed, Witnessed{Witness: w.Name, Size: c.Size, SignedAt: c.SignedAt})
		}
	}
	// A size counts as witnessed by quorum when quorum witnesses cosigned
	// it or a larger size (a witness that cosigned size n vouched for
	// every smaller tree consistent with it).
	if quorum < 1 {
		quorum = 1
	}
	var best int64
	for _, a := range r.Witnessed {
		n := 0
		for _, b := range r.Witnessed {
			if b.Size >= a.Size {
				n++
			}
		}
		if n >= quorum && a.Size > best {
			best = a.Size
		}
	}
	r.WitnessedSize = best
	return nil
}
