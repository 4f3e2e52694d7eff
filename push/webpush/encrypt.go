package webpush

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// The aes128gcm content coding (RFC 8188) as RFC 8291 profiles it: one
// record, the sender's ephemeral public key as the key id.
const (
	saltLen    = 16
	keyLen     = 65 // an uncompressed P-256 point
	headerLen  = saltLen + 4 + 1 + keyLen
	tagLen     = 16
	recordSize = 4096
	// maxBody is the payload every push service must accept (RFC 8030,
	// section 7.2); services may refuse more with 413.
	maxBody = 4096

	// MaxPayloadSize is the largest plaintext Send can carry: a 4096-byte
	// body less the header, the GCM tag and the padding delimiter.
	MaxPayloadSize = maxBody - headerLen - tagLen - 1
)

// padBlock rounds plaintext lengths up, so the push service, which sees
// only ciphertext, learns the length of the title and body to within
// this many bytes.
const padBlock = 128

var errPayloadTooLarge = errors.New("payload too large")

// encrypt seals plaintext for the user agent's key uaPublic and
// authentication secret auth (RFC 8291 section 3.4), with the sender's
// one-time key asPrivate and salt, padding the record to a multiple of pad
// bytes (no padding when pad is 0). It returns the whole request body.
func encrypt(plaintext []byte, uaPublic *ecdh.PublicKey, auth []byte, asPrivate *ecdh.PrivateKey, salt []byte, pad int) ([]byte, error) {
	if len(plaintext) > MaxPayloadSize {
		return nil, errPayloadTooLarge
	}
	if len(salt) != saltLen {
		return nil, fmt.Errorf("salt of %d bytes", len(salt))
	}
	secret, err := asPrivate.ECDH(uaPublic)
	if err != nil {
		return nil, fmt.Errorf("ecdh: %w", err)
	}
	asPublic := asPrivate.PublicKey().Bytes()
	uaBytes := uaPublic.Bytes()

	// IKM = HKDF(auth, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
	info := make([]byte, 0, 14+2*keyLen)
	info = append(info, "WebPush: info\x00"...)
	info = append(info, uaBytes...)
	info = append(info, asPublic...)
	ikm, err := hkdf.Key(sha256.New, secret, auth, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}

	// The record is the plaintext, the last-record delimiter 0x02 and zero
	// padding; the body is the header and the sealed record.
	n := len(plaintext) + 1
	if pad > 0 {
		n = min((n+pad-1)/pad*pad, MaxPayloadSize+1)
	}
	body := make([]byte, headerLen, headerLen+n+tagLen)
	copy(body, salt)
	binary.BigEndian.PutUint32(body[saltLen:], recordSize)
	body[saltLen+4] = keyLen
	copy(body[saltLen+5:], asPublic)
	record := body[headerLen : headerLen+n]
	copy(record, plaintext)
	record[len(plaintext)] = 0x02
	clear(record[len(plaintext)+1:])
	return aead.Seal(body[:headerLen], nonce, record, nil), nil
}
