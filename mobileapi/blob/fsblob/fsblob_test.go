package fsblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

const key = "applications/app_01/attachments/att_01"

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func read(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantAbsent(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, err := s.Open(context.Background(), key); !errors.Is(err, idp.ErrNotFound) {
		t.Fatalf("Open(%q) = %v, want ErrNotFound", key, err)
	}
}

// tmpFiles lists what the store's temporary directory holds.
func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, tmpDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestPutOpenDelete(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	body := []byte("%PDF-1.7 fake scan of a fake birth certificate")
	info, err := s.Put(ctx, key, bytes.NewReader(body), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(body)) || info.SHA256 != sum(body) {
		t.Fatalf("info = %+v, want size %d sha %s", info, len(body), sum(body))
	}
	if got := read(t, s, key); !bytes.Equal(got, body) {
		t.Fatalf("read %q", got)
	}
	if tmp := tmpFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}

	// Permissions: the server's user alone.
	st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
	for d := path.Dir(key); d != "."; d = path.Dir(d) {
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(d)))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o700 {
			t.Errorf("directory %s mode %v, want 0700", d, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("root: %v %v, want 0700", st.Mode(), err)
	}

	// Write once.
	if _, err := s.Put(ctx, key, strings.NewReader("other"), 1<<20); !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("second Put = %v, want ErrConflict", err)
	}
	if got := read(t, s, key); !bytes.Equal(got, body) {
		t.Fatalf("overwritten: %q", got)
	}

	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, s, key)
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}
	if err := s.Delete(ctx, "never/stored"); err != nil {
		t.Fatalf("Delete of a key never stored = %v", err)
	}
	// A deleted key may be written again.
	if _, err := s.Put(ctx, key, strings.NewReader("again"), 10); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyBlob(t *testing.T) {
	s, _ := newStore(t)
	info, err := s.Put(context.Background(), "empty", strings.NewReader(""), 1)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 0 || info.SHA256 != sum(nil) {
		t.Fatalf("info = %+v", info)
	}
	if got := read(t, s, "empty"); len(got) != 0 {
		t.Fatalf("read %q", got)
	}
}

func TestOpenAbsent(t *testing.T) {
	s, _ := newStore(t)
	wantAbsent(t, s, "nothing/here")
	if _, err := s.Put(context.Background(), "a/b", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, s, "a")     // a directory, not a blob
	wantAbsent(t, s, "a/b/c") // below a blob
	if err := s.Delete(context.Background(), "a"); err != nil {
		t.Fatalf("Delete of a prefix = %v", err)
	}
	if got := read(t, s, "a/b"); string(got) != "x" {
		t.Fatalf("a/b = %q after deleting its prefix", got)
	}
}

func TestPrefixConflicts(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "a/b", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a/b/c", strings.NewReader("y"), 1); !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("Put below a blob = %v, want ErrConflict", err)
	}
	if _, err := s.Put(ctx, "a", strings.NewReader("y"), 1); !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("Put at a directory = %v, want ErrConflict", err)
	}
}

func TestSizeLimit(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	const limit = 64 << 10
	at := bytes.Repeat([]byte{'a'}, limit)
	info, err := s.Put(ctx, "at/limit", bytes.NewReader(at), limit)
	if err != nil {
		t.Fatalf("exactly at the limit: %v", err)
	}
	if info.Size != limit || info.SHA256 != sum(at) {
		t.Fatalf("info = %+v", info)
	}

	over := append(at, 'b')
	if _, err := s.Put(ctx, "over/limit", bytes.NewReader(over), limit); !errors.Is(err, idp.ErrInvalid) {
		t.Fatalf("one byte over: %v, want ErrInvalid", err)
	}
	wantAbsent(t, s, "over/limit")
	// A reader far larger than the limit is not read to its end.
	endless := &countingReader{r: zeros{}}
	if _, err := s.Put(ctx, "over/endless", endless, limit); !errors.Is(err, idp.ErrInvalid) {
		t.Fatalf("endless: %v, want ErrInvalid", err)
	}
	if endless.n > 2*limit {
		t.Fatalf("read %d bytes of an endless reader with limit %d", endless.n, limit)
	}
	if tmp := tmpFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	for _, m := range []int64{0, -1} {
		if _, err := s.Put(ctx, "bad/max", strings.NewReader(""), m); !errors.Is(err, idp.ErrInvalid) {
			t.Fatalf("maxSize %d: %v, want ErrInvalid", m, err)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// failingReader returns some bytes, then an error.
type failingReader struct{ sent bool }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.sent {
		return 0, errors.New("connection reset by the client")
	}
	f.sent = true
	return copy(p, "partial upload"), nil
}

func TestFailedReadKeepsNothing(t *testing.T) {
	s, dir := newStore(t)
	if _, err := s.Put(context.Background(), key, &failingReader{}, 1<<20); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	wantAbsent(t, s, key)
	if tmp := tmpFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, key, strings.NewReader("x"), 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context = %v", err)
	}
	wantAbsent(t, s, key)
}

func TestConcurrentPutOneWins(t *testing.T) {
	s, _ := newStore(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			body := strings.Repeat(fmt.Sprintf("writer %02d;", i), 1000)
			_, errs[i] = s.Put(context.Background(), key, strings.NewReader(body), 1<<20)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won", winner, i)
			}
			winner = i
		case !errors.Is(err, idp.ErrConflict):
			t.Fatalf("writer %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	want := strings.Repeat(fmt.Sprintf("writer %02d;", winner), 1000)
	if got := read(t, s, key); string(got) != want {
		t.Fatalf("blob is not the winner's whole body (%d bytes)", len(got))
	}
}

var badKeys = []string{
	"",
	"/etc/passwd",
	"../outside",
	"a/../../outside",
	"a/..",
	"..",
	".",
	"./a",
	"a/./b",
	"a//b",
	"a/",
	"/",
	".tmp/x",
	"a/.hidden",
	"A/b",
	"a\\..\\b",
	"a/b c",
	"a/b\x00",
	"a/b\n",
	"caf\u00e9",
	"a/%2e%2e/b",
	"~/x",
	"a:b",
	strings.Repeat("a", MaxKeyLen+1),
	strings.Repeat("a", MaxSegmentLen+1),
	"a/" + strings.Repeat("b", MaxSegmentLen+1) + "/c",
}

func TestBadKeys(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	for _, k := range badKeys {
		if err := ValidKey(k); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("ValidKey(%q) = %v, want ErrInvalid", k, err)
		}
		if _, err := s.Put(ctx, k, strings.NewReader("x"), 10); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("Put(%q) = %v, want ErrInvalid", k, err)
		}
		if _, err := s.Open(ctx, k); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("Delete(%q) = %v, want ErrInvalid", k, err)
		}
	}
	// Nothing was written beside the root.
	es, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("the root's parent holds %d entries, want only the root", len(es))
	}
	for _, k := range []string{"a", "a-b_c.d/e.f", "applications/app_x/documents/doc_y", strings.Repeat(strings.Repeat("a", MaxSegmentLen-1)+"/", MaxKeyLen/MaxSegmentLen)[:MaxKeyLen-1] + "z", strings.Repeat("a", MaxSegmentLen), "0/1/2"} {
		if err := ValidKey(k); err != nil {
			t.Errorf("ValidKey(%q) = %v, want nil", k, err)
		}
	}
}

// A symbolic link planted in the directory cannot lead a Put or Open
// outside it.
func TestSymlinkCannotEscape(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "evil/secret"); err == nil {
		t.Fatal("Open followed a symbolic link outside the root")
	}
	if _, err := s.Put(ctx, "evil/new", strings.NewReader("x"), 10); err == nil {
		t.Fatal("Put followed a symbolic link outside the root")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file was written outside the root: %v", err)
	}
}

// The crash test runs Put in a child process, kills it mid-upload and
// checks that the key shows nothing and that New clears the leftover.
func TestCrashLeavesNoPartialBlob(t *testing.T) {
	if dir := os.Getenv("FSBLOB_CRASH_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "blobs")
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLeavesNoPartialBlob$") //nolint:gosec // the test binary itself
	cmd.Env = append(os.Environ(), "FSBLOB_CRASH_DIR="+dir, "FSBLOB_CRASH_READY="+ready)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("child never started writing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantAbsent(t, s, key)
	tmp := tmpFiles(t, dir)
	if len(tmp) != 1 {
		t.Fatalf("want the killed writer's one temporary file, got %v", tmp)
	}
	// Once stale, the leftover is removed when the store is opened.
	old := time.Now().Add(-2 * staleTmp)
	if err := os.Chtimes(filepath.Join(dir, tmpDir, tmp[0]), old, old); err != nil {
		t.Fatal(err)
	}
	s2, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if tmp := tmpFiles(t, dir); len(tmp) != 0 {
		t.Fatalf("stale temporary files kept: %v", tmp)
	}
	if _, err := s2.Put(context.Background(), key, strings.NewReader("complete"), 100); err != nil {
		t.Fatalf("Put after the crash: %v", err)
	}
}

// crashChild uploads 1 MiB, announces it, then blocks until killed.
func crashChild(dir string) {
	s, err := New(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	r := io.MultiReader(io.LimitReader(zeros{}, 1<<20), &announce{path: os.Getenv("FSBLOB_CRASH_READY")})
	_, _ = s.Put(context.Background(), key, r, 10<<20)
	os.Exit(3) // unreachable: announce blocks
}

type announce struct{ path string }

func (a *announce) Read([]byte) (int, error) {
	_ = os.WriteFile(a.path, nil, 0o600)
	select {} // block until killed
}

// FuzzValidKey checks that every key ValidKey accepts is a clean, local,
// slash-separated path of the allowed characters, and that the store keeps
// it inside the root.
func FuzzValidKey(f *testing.F) {
	for _, k := range badKeys {
		f.Add(k)
	}
	for _, k := range []string{"a", "a/b", "applications/app_0/attachments/att_1", "a.b/c-d_e", "a./b..c", "x/.y", "x/y."} {
		f.Add(k)
	}
	root := f.TempDir()
	s, err := New(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, k string) {
		err := ValidKey(k)
		if err != nil {
			if !errors.Is(err, idp.ErrInvalid) {
				t.Fatalf("ValidKey(%q) = %v, want ErrInvalid", k, err)
			}
			return
		}
		if !filepath.IsLocal(k) || path.Clean(k) != k || path.IsAbs(k) {
			t.Fatalf("accepted %q, which is not a clean local path", k)
		}
		for _, seg := range strings.Split(k, "/") {
			if seg == "" || seg[0] == '.' {
				t.Fatalf("accepted %q with segment %q", k, seg)
			}
		}
		for _, c := range k {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("_-./", c)) {
				t.Fatalf("accepted %q with %q", k, c)
			}
		}
		full := filepath.Join(root, filepath.FromSlash(k))
		if rel, err := filepath.Rel(root, full); err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("%q resolves outside the root: %s", k, full)
		}
		if _, err := s.Open(context.Background(), k); err != nil && !errors.Is(err, idp.ErrNotFound) {
			t.Fatalf("Open(%q) = %v", k, err)
		}
	})
}

func TestOutage(t *testing.T) {
	for _, err := range []error{syscall.ENOSPC, syscall.EROFS, syscall.EIO, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}} {
		if !errors.Is(outage(err), idp.ErrUnavailable) {
			t.Errorf("outage(%v) is not ErrUnavailable", err)
		}
	}
	if errors.Is(outage(syscall.EACCES), idp.ErrUnavailable) {
		t.Error("a permission error is a configuration error, not an outage")
	}
}

// ListBlobs names every stored key older than the cutoff, and nothing
// else: not temporary files, not younger blobs, not stray names.
func TestListBlobs(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	old := time.Now().Add(-2 * time.Hour)
	for _, k := range []string{"applications/a/attachments/x", "applications/a/documents/y", "young"} {
		if _, err := s.Put(ctx, k, strings.NewReader("bytes"), 100); err != nil {
			t.Fatal(err)
		}
		if k != "young" {
			if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(k)), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, stray := range []string{filepath.Join(tmpDir, "partial"), "Not A Key"} {
		if err := os.WriteFile(filepath.Join(dir, stray), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, stray), old, old); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := s.ListBlobs(ctx, time.Now().Add(-time.Hour), func(k string) error { got = append(got, k); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"applications/a/attachments/x", "applications/a/documents/y"}; !slices.Equal(got, want) {
		t.Errorf("ListBlobs = %v, want %v", got, want)
	}
}
