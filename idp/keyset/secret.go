package keyset

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// MasterKeyEnv overrides the master key file, for deployments that inject
// secrets through the environment.
const MasterKeyEnv = "ONEDOOR_MASTER_KEY"

// MasterKeySize is the length of the master key and of every derived key.
const MasterKeySize = 32

// LoadMasterKey returns the master key from $ONEDOOR_MASTER_KEY when that is
// non-empty (base64, standard or URL alphabet), else from the file at path
// (base64 text, mode 0600). When the file is missing and create is true it
// writes a new random key there. Losing this key makes every sealed signing
// key unreadable, so back the file up.
func LoadMasterKey(path string, create bool) ([]byte, error) {
	if v := os.Getenv(MasterKeyEnv); v != "" {
		k, err := decodeKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", MasterKeyEnv, err)
		}
		return k, nil
	}
	if path == "" {
		return nil, errors.New("master key: no file configured and " + MasterKeyEnv + " unset")
	}
	k, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		return createKeyFile(path)
	}
	return k, err
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- the operator chooses the path
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the one read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key %s: not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key %s: mode %04o lets group or others read it; run chmod 600 %s",
			path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	k, err := decodeKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key %s: %w", path, err)
	}
	return k, nil
}

// createKeyFile writes the key to a temporary file and hard-links it into
// place, so a concurrent starter never reads a half-written file and the
// loser of a race adopts the winner's key instead of overwriting it.
func createKeyFile(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	k := make([]byte, MasterKeySize)
	rand.Read(k)
	tmp, err := os.CreateTemp(dir, ".master-key-*")
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod guards against a future change.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("master key: %w", err)
	}
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("master key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("master key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path)
		}
		return nil, fmt.Errorf("master key: %w", err)
	}
	return k, nil
}

// decodeKey accepts standard or URL-safe base64, padded or not. Errors never
// include the input: it is a secret.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		k, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(k) != MasterKeySize {
			return nil, fmt.Errorf("decoded key has %d bytes, want %d", len(k), MasterKeySize)
		}
		return k, nil
	}
	return nil, errors.New("not valid base64")
}

// DeriveKey derives a 32-byte key for one purpose from the master key with
// HKDF-SHA256, so a leak of one derived key exposes nothing else.
func DeriveKey(master []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, purpose, MasterKeySize)
	if err != nil {
		// Only an impossible output length makes hkdf.Key fail.
		panic("keyset: derive key: " + err.Error())
	}
	return k
}

// Sealer encrypts small secrets at rest with AES-256-GCM.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte key (typically from DeriveKey).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("sealer: key has %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad and returns nonce||ciphertext. Random
// 96-bit nonces are safe far beyond the number of secrets sealed here.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	ns := s.aead.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+s.aead.Overhead())
	rand.Read(out)
	return s.aead.Seal(out, out, plaintext, aad)
}

// Open decrypts what Seal returned for the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns+s.aead.Overhead() {
		return nil, errors.New("open sealed data: too short")
	}
	pt, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], aad)
	if err != nil {
		// The same error for a wrong key, wrong aad or tampering.
		return nil, errors.New("open sealed data: authentication failed (wrong key or tampered)")
	}
	return pt, nil
}

// KeyedHash is HMAC-SHA256. Client secrets and activation codes are random
// high-entropy values, so a fast keyed hash suffices and a slow password
// hash would only throttle the token endpoint.
func KeyedHash(key, data []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	return h.Sum(nil)
}

// EqualHash compares two hashes in constant time. Empty hashes never match,
// so a record without a hash cannot be matched by an empty input.
func EqualHash(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	return hmac.Equal(a, b)
}
