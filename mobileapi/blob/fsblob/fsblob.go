// Package fsblob is a mobileapi.Blobs over a local directory (the server
// uses <data dir>/blobs): one file per key, written once.
//
// A Put streams into a temporary file under the root's .tmp directory,
// hashing and counting as it copies, fsyncs it and hard-links it into place:
// the link fails when the key exists, so concurrent writers of one key
// cannot both win and a finished blob is never replaced. A crash leaves at
// most a temporary file, never a partial file under a key; New removes
// temporary files older than an hour. Every path is resolved through an
// os.Root, so neither a key (which is validated strictly anyway) nor a
// symbolic link planted in the directory can reach outside the root.
//
// The directory must be on a file system with hard links (any local POSIX
// file system). Directories are created 0700 and files 0600: blobs are
// citizens' documents, readable by the server's user alone.
package fsblob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// Key length limits, well under file systems' limits on paths (4096) and
// file names (255).
const (
	MaxKeyLen     = 512
	MaxSegmentLen = 128
)

const (
	tmpDir = ".tmp" // unreachable by keys: no key segment starts with a dot
	// staleTmp is how old a temporary file must be for New to remove it: a
	// Put in flight in another process of the same directory is younger.
	staleTmp = time.Hour
	dirMode  = 0o700
	fileMode = 0o600
)

// Store is a mobileapi.Blobs over a directory. It is safe for concurrent use.
type Store struct {
	root *os.Root
}

var _ mobileapi.Blobs = (*Store)(nil)

// New opens (creating it 0700 if needed) the directory dir as a blob store
// and removes stale temporary files that crashed writers left behind.
func New(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil { //nolint:gosec // the operator names the directory
		return nil, fmt.Errorf("blob directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("blob directory: %w", err)
	}
	if err := root.MkdirAll(tmpDir, dirMode); err != nil {
		root.Close()
		return nil, fmt.Errorf("blob directory: %w", err)
	}
	s := &Store{root: root}
	s.removeStale(time.Now().Add(-staleTmp))
	return s, nil
}

// Close releases the directory.
func (s *Store) Close() error { return s.root.Close() }

// removeStale removes temporary files last written before cutoff. Failures
// are ignored: a leftover temporary file wastes space but is never read.
func (s *Store) removeStale(cutoff time.Time) {
	d, err := s.root.Open(tmpDir)
	if err != nil {
		return
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.ModTime().Before(cutoff) {
			_ = s.root.Remove(path.Join(tmpDir, e.Name()))
		}
	}
}

// ValidKey reports whether key may name a blob: 1 to MaxKeyLen characters
// of [a-z0-9_.-] in segments of at most MaxSegmentLen separated by single
// slashes, with no empty segment and none starting with a dot (so no "." or "..", and no way to
// reach the store's own .tmp directory). Invalid keys are idp.ErrInvalid.
func ValidKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("blob key: length must be 1 to %d: %w", MaxKeyLen, idp.ErrInvalid)
	}
	segStart, segLen := true, 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '/':
			if segStart {
				return fmt.Errorf("blob key: empty segment or leading slash: %w", idp.ErrInvalid)
			}
			segStart, segLen = true, 0
			continue
		case c == '.':
			if segStart {
				return fmt.Errorf("blob key: a segment starts with a dot: %w", idp.ErrInvalid)
			}
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return fmt.Errorf("blob key: only a-z, 0-9, '_', '-', '.' and '/' are allowed: %w", idp.ErrInvalid)
		}
		if segLen++; segLen > MaxSegmentLen {
			return fmt.Errorf("blob key: a segment is longer than %d: %w", MaxSegmentLen, idp.ErrInvalid)
		}
		segStart = false
	}
	if segStart {
		return fmt.Errorf("blob key: trailing slash: %w", idp.ErrInvalid)
	}
	return nil
}

// Put stores r under key. More than maxSize bytes (or maxSize < 1) is
// idp.ErrInvalid, an existing key idp.ErrConflict; on any error nothing is
// kept.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, maxSize int64) (mobileapi.BlobInfo, error) {
	if err := ValidKey(key); err != nil {
		return mobileapi.BlobInfo{}, err
	}
	if maxSize < 1 {
		return mobileapi.BlobInfo{}, fmt.Errorf("blob %s: max size must be positive: %w", key, idp.ErrInvalid)
	}
	// An existing key fails now rather than after the upload is read.
	if _, err := s.root.Lstat(filepath.FromSlash(key)); err == nil {
		return mobileapi.BlobInfo{}, fmt.Errorf("blob %s: %w", key, idp.ErrConflict)
	}
	tmp, f, err := s.createTemp()
	if err != nil {
		return mobileapi.BlobInfo{}, fmt.Errorf("blob %s: %w", key, outage(err))
	}
	defer func() { _ = s.root.Remove(tmp) }() // also after success: the key is a second link
	info, err := copyTo(ctx, f, r, maxSize)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return mobileapi.BlobInfo{}, fmt.Errorf("blob %s: %w", key, outage(err))
	}
	if err := s.link(tmp, key); err != nil {
		return mobileapi.BlobInfo{}, fmt.Errorf("blob %s: %w", key, outage(err))
	}
	return info, nil
}

// outage marks the file system errors an operator fixes without a release
// (a full or read-only disk, an I/O failure) as idp.ErrUnavailable, so
// clients get 503 with Retry-After rather than a server error.
func outage(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return errors.Join(err, idp.ErrUnavailable)
	}
	return err
}

// createTemp creates an empty temporary file (0600) under tmpDir.
func (s *Store) createTemp() (string, *os.File, error) {
	for range 10 {
		name := path.Join(tmpDir, rand.Text())
		f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return name, f, nil
	}
	return "", nil, errors.New("no unused temporary name")
}

// copyTo copies at most maxSize bytes of r to f, hashing them, and fails
// with ErrInvalid when r holds more.
func copyTo(ctx context.Context, f io.Writer, r io.Reader, maxSize int64) (mobileapi.BlobInfo, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, maxSize+1))
	if err != nil {
		return mobileapi.BlobInfo{}, err
	}
	if n > maxSize {
		return mobileapi.BlobInfo{}, fmt.Errorf("larger than %d bytes: %w", maxSize, idp.ErrInvalid)
	}
	return mobileapi.BlobInfo{Size: n, SHA256: hexSum(h)}, nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// ctxReader stops a copy when the context ends (a client gone, a timeout).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// link makes the finished temporary file visible under key, failing when
// the key exists, and makes the new directory entry durable.
func (s *Store) link(tmp, key string) error {
	name := filepath.FromSlash(key)
	dir := filepath.Dir(name)
	if err := s.root.MkdirAll(dir, dirMode); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			// A prefix of the key is itself a blob.
			return idp.ErrConflict
		}
		return err
	}
	if err := s.root.Link(tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTDIR) {
			return idp.ErrConflict
		}
		return err
	}
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open returns the blob's bytes; idp.ErrNotFound when key holds none.
func (s *Store) Open(_ context.Context, key string) (io.ReadCloser, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	f, err := s.root.Open(filepath.FromSlash(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("blob %s: %w", key, idp.ErrNotFound)
		}
		return nil, fmt.Errorf("blob %s: %w", key, err)
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", key, err)
		}
		// A directory: the key is only a prefix of others.
		return nil, fmt.Errorf("blob %s: %w", key, idp.ErrNotFound)
	}
	return f, nil
}

// Delete removes key; an absent key is not an error. Emptied directories
// are kept: removing them would race with a Put creating a sibling.
func (s *Store) Delete(_ context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	name := filepath.FromSlash(key)
	st, err := s.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil
	case err != nil:
		return fmt.Errorf("delete blob %s: %w", key, err)
	case st.IsDir():
		return nil // a prefix of other keys holds no blob
	}
	if err := s.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	return nil
}

var _ mobileapi.SweptBlobs = (*Store)(nil)

// ListBlobs calls fn with the key of every blob last written before cutoff
// (a blob's time is its temporary file's, written just before it was
// linked into place). Temporary files and names that are not keys are
// skipped.
func (s *Store) ListBlobs(ctx context.Context, cutoff time.Time, fn func(key string) error) error {
	return fs.WalkDir(s.root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while walking
				return nil
			}
			return fmt.Errorf("list blobs: %w", err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			if name == tmpDir {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || ValidKey(name) != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("list blobs: %w", err)
		}
		if !info.ModTime().Before(cutoff) {
			return nil
		}
		return fn(name)
	})
}
