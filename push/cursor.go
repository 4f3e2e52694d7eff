package push

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Cursor is a live stream's position: the last outbox message and the
// last broadcast it has passed. Both are global sequences, so they leave
// the server only sealed (see CursorSealer): an id a citizen sees says
// nothing of how many messages others get.
type Cursor struct {
	Msg, Brd int64
}

// After returns c moved past e (never backwards: events of two
// dispatchers may arrive out of order).
func (c Cursor) After(e Event) Cursor {
	if e.BroadcastSeq != 0 {
		c.Brd = max(c.Brd, e.BroadcastSeq)
	} else {
		c.Msg = max(c.Msg, e.Seq)
	}
	return c
}

// ErrBadCursor is an id the server did not seal for this citizen (forged,
// garbled, another citizen's, or sealed with a retired key).
var ErrBadCursor = errors.New("push: not a live stream id of this citizen")

// cursorPrefix versions the sealed form.
const cursorPrefix = "c1."

// maxPosition bounds a position: far beyond any sequence, and within int64.
const maxPosition = 1 << 62

// MaxCursorLen bounds what Open reads.
const MaxCursorLen = 200

// CursorSealer seals cursors with XChaCha20-Poly1305 under a key every
// replica shares, bound to the citizen: a cursor works only for the
// citizen it was given to, and a random nonce makes two ids of one
// position unlinkable.
type CursorSealer struct{ key []byte }

// NewCursorSealer returns a sealer for a 32-byte key.
func NewCursorSealer(key []byte) (*CursorSealer, error) {
	if len(key) != chacha20poly1305.KeySize {
		return nil, fmt.Errorf("push: cursor key of %d bytes, want %d", len(key), chacha20poly1305.KeySize)
	}
	return &CursorSealer{key: key}, nil
}

// Seal returns c as an opaque id for the citizen.
func (s *CursorSealer) Seal(citizenID string, c Cursor) string {
	aead, _ := chacha20poly1305.NewX(s.key) // the size was checked
	pt := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(min(max(c.Msg, 0), maxPosition))), uint64(min(max(c.Brd, 0), maxPosition)))
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(pt)+aead.Overhead())
	_, _ = rand.Read(out) // crypto/rand.Read never fails (Go 1.24+)
	out = aead.Seal(out, out, pt, []byte(citizenID))
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(out)
}

// Open returns the cursor of id, sealed for the citizen. A decimal id is
// a legacy one (an outbox position, from before ids were sealed): its
// message position is returned with legacy set and Brd 0, and the caller
// starts the broadcasts from now. Anything else unsealable is
// ErrBadCursor.
func (s *CursorSealer) Open(citizenID, id string) (c Cursor, legacy bool, err error) {
	if len(id) > MaxCursorLen {
		return Cursor{}, false, ErrBadCursor
	}
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && id[0] != '+' {
		if n < 0 || n > maxPosition {
			return Cursor{}, false, ErrBadCursor
		}
		return Cursor{Msg: n}, true, nil
	}
	b64, ok := strings.CutPrefix(id, cursorPrefix)
	if !ok {
		return Cursor{}, false, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(b64)
	aead, _ := chacha20poly1305.NewX(s.key)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return Cursor{}, false, ErrBadCursor
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(citizenID))
	if err != nil {
		return Cursor{}, false, ErrBadCursor
	}
	msg, n := binary.Uvarint(pt)
	if n <= 0 || msg > maxPosition {
		return Cursor{}, false, ErrBadCursor
	}
	brd, m := binary.Uvarint(pt[n:])
	if m <= 0 || n+m != len(pt) || brd > maxPosition {
		return Cursor{}, false, ErrBadCursor
	}
	return Cursor{Msg: int64(msg), Brd: int64(brd)}, false, nil
}
