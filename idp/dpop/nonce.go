package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Nonces are stateless server nonces (RFC 9449 section 8): a time bucket
// and its HMAC under a key every replica derives from the master key, so a
// nonce one replica handed out is good at any other, and nothing is stored.
// A nonce is accepted in its own bucket and the next, so it lives between
// one and two periods.
type Nonces struct {
	key    []byte
	period time.Duration
	now    func() time.Time
}

const nonceMAC = 16

func (n *Nonces) bucket(t time.Time) uint64 {
	return uint64(t.UnixNano() / int64(n.period)) //nolint:gosec // after 1970: never negative
}

func (n *Nonces) mac(b uint64) []byte {
	h := hmac.New(sha256.New, n.key)
	h.Write([]byte("onedoor dpop nonce v1"))
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], b)
	h.Write(buf[:])
	return h.Sum(nil)[:nonceMAC]
}

// Issue returns the nonce of the current bucket.
func (n *Nonces) Issue() string {
	b := n.bucket(n.now())
	out := binary.BigEndian.AppendUint64(nil, b)
	return base64.RawURLEncoding.EncodeToString(append(out, n.mac(b)...))
}

// Valid reports whether s is a nonce of the current or previous bucket.
func (n *Nonces) Valid(s string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 8+nonceMAC {
		return false
	}
	b := binary.BigEndian.Uint64(raw[:8])
	cur := n.bucket(n.now())
	if b != cur && b+1 != cur {
		return false
	}
	return hmac.Equal(raw[8:], n.mac(b))
}
