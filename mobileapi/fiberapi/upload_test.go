package fiberapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/onedoor/onedoor/mobileapi/blob/fsblob"
)

const testKey = "applications/app_x/attachments/att_x"

// part is one multipart part, written by hand so tests can send what
// mime/multipart's writer would not.
func part(headers, content string) string {
	return "--B\r\n" + headers + "\r\n\r\n" + content + "\r\n"
}

func fileHdr(name string) string {
	return `Content-Disposition: form-data; name="file"; filename="` + name + `"`
}

const endB = "--B--\r\n"

// storedFiles lists every regular file under dir (blobs and temporary
// files alike).
func storedFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func newBlobs(t testing.TB) (*fsblob.Store, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := fsblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dir
}

func statusOf(err error) int {
	var br *badRequest
	if errors.As(err, &br) {
		return br.status
	}
	return 0
}

// truncated is a body that fails like a connection closed mid-upload.
type truncated struct{ r io.Reader }

func (t truncated) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, &clientError{io.ErrUnexpectedEOF}
	}
	return n, err
}

func TestReceiveMultipart(t *testing.T) {
	pdf := "%PDF-1.4\n" + strings.Repeat("x", 1000)
	const maxFile = 4 << 10
	for _, tc := range []struct {
		name   string
		body   io.Reader
		status int    // 0: stored
		code   string // the document_code kept
	}{
		{"one PDF", strings.NewReader(part(fileHdr("a.pdf"), pdf) + endB), 0, ""},
		{"document code after the file", strings.NewReader(part(fileHdr("a.pdf"), pdf) + part(`Content-Disposition: form-data; name="document_code"`, "birth_certificate") + endB), 0, "birth_certificate"},
		{"two document codes are none", strings.NewReader(part(`Content-Disposition: form-data; name="document_code"`, "a") + part(`Content-Disposition: form-data; name="document_code"`, "b") + part(fileHdr("a.pdf"), pdf) + endB), 0, ""},
		{"other fields are ignored", strings.NewReader(part(`Content-Disposition: form-data; name="x"`, "y") + part(fileHdr("a.pdf"), pdf) + endB), 0, ""},
		{"preamble and epilogue", strings.NewReader("preamble\r\n" + part(fileHdr("a.pdf"), pdf) + endB + "epilogue"), 0, ""},
		{"largest file", strings.NewReader(part(fileHdr("a.pdf"), "%PDF-1.4\n"+strings.Repeat("x", maxFile-9)) + endB), 0, ""},
		{"file one byte too large", strings.NewReader(part(fileHdr("a.pdf"), "%PDF-1.4\n"+strings.Repeat("x", maxFile-8)) + endB), http.StatusRequestEntityTooLarge, ""},
		{"file far too large", io.MultiReader(strings.NewReader("--B\r\n"+fileHdr("a.pdf")+"\r\n\r\n%PDF-1.4\n"), &repeat{b: 'x', n: 100 << 20}), http.StatusRequestEntityTooLarge, ""},
		{"two files", strings.NewReader(part(fileHdr("a.pdf"), pdf) + part(fileHdr("b.pdf"), pdf) + endB), http.StatusUnprocessableEntity, ""},
		{"no file", strings.NewReader(part(`Content-Disposition: form-data; name="document_code"`, "a") + endB), http.StatusUnprocessableEntity, ""},
		{"a file field without a file name is no file", strings.NewReader(part(`Content-Disposition: form-data; name="file"`, pdf) + endB), http.StatusUnprocessableEntity, ""},
		{"empty file", strings.NewReader(part(fileHdr("a.pdf"), "") + endB), http.StatusUnprocessableEntity, ""},
		{"HTML", strings.NewReader(part(fileHdr("a.pdf"), "<html><script>alert(1)</script></html>") + endB), http.StatusUnsupportedMediaType, ""},
		{"no closing boundary", strings.NewReader(part(fileHdr("a.pdf"), pdf)), http.StatusBadRequest, ""},
		{"cut in the file", strings.NewReader("--B\r\n" + fileHdr("a.pdf") + "\r\n\r\n" + pdf), http.StatusBadRequest, ""},
		{"client gone in the file", truncated{strings.NewReader("--B\r\n" + fileHdr("a.pdf") + "\r\n\r\n" + pdf)}, http.StatusBadRequest, ""},
		{"client gone after the file", truncated{strings.NewReader(part(fileHdr("a.pdf"), pdf) + "--B")}, http.StatusBadRequest, ""},
		{"malformed part header", strings.NewReader("--B\r\nno colon here\r\n\r\nzz\r\n" + endB), http.StatusBadRequest, ""},
		{"not multipart", strings.NewReader(`{"a":1}`), http.StatusUnprocessableEntity, ""},
		{"empty body", strings.NewReader(""), http.StatusUnprocessableEntity, ""},
		{"huge part header", strings.NewReader("--B\r\nX-Pad: " + strings.Repeat("a", 200<<10) + "\r\n" + fileHdr("a.pdf") + "\r\n\r\n" + pdf + "\r\n" + endB), http.StatusRequestEntityTooLarge, ""},
		{"many fields", strings.NewReader(strings.Repeat(part(`Content-Disposition: form-data; name="x"`, "y"), 5000) + part(fileHdr("a.pdf"), pdf) + endB), http.StatusRequestEntityTooLarge, ""},
		{"document code at its limit", strings.NewReader(part(fileHdr("a.pdf"), pdf) + part(`Content-Disposition: form-data; name="document_code"`, strings.Repeat("c", maxTextPart)) + endB), 0, strings.Repeat("c", maxTextPart)},
		{"document code one byte too long", strings.NewReader(part(fileHdr("a.pdf"), pdf) + part(`Content-Disposition: form-data; name="document_code"`, strings.Repeat("c", maxTextPart+1)) + endB), http.StatusRequestEntityTooLarge, ""},
		{"document code too long before the file", strings.NewReader(part(`Content-Disposition: form-data; name="document_code"`, strings.Repeat("c", maxTextPart+1)) + part(fileHdr("a.pdf"), pdf) + endB), http.StatusRequestEntityTooLarge, ""},
		{"an ignored field too long", strings.NewReader(part(`Content-Disposition: form-data; name="x"`, strings.Repeat("y", maxTextPart+1)) + part(fileHdr("a.pdf"), pdf) + endB), http.StatusRequestEntityTooLarge, ""},
		{"a huge field after the file", io.MultiReader(strings.NewReader(part(fileHdr("a.pdf"), pdf)+"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n"), &repeat{b: 'y', n: 100 << 20}), http.StatusRequestEntityTooLarge, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs, dir := newBlobs(t)
			got, err := receiveMultipart(context.Background(), tc.body, "B", maxFile, blobs, testKey)
			if tc.status != 0 {
				if statusOf(err) != tc.status {
					t.Fatalf("got %v (status %d), want %d", err, statusOf(err), tc.status)
				}
				if files := storedFiles(t, dir); len(files) != 0 {
					t.Errorf("a refused upload left %v", files)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := blobs.Open(context.Background(), testKey)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			sum := sha256.Sum256(b)
			if got.info.SHA256 != hex.EncodeToString(sum[:]) || got.info.Size != int64(len(b)) || got.contentType != "application/pdf" || got.name != "a.pdf" || got.documentCode != tc.code {
				t.Errorf("got %+v for %d bytes stored", got, len(b))
			}
			if files := storedFiles(t, dir); len(files) != 1 {
				t.Errorf("stored %v, want the one blob", files)
			}
		})
	}
}

// TestReceiveMultipart_FieldsBesideALargeAllowance: a small file under a
// large allowance leaves most of it unread, and that is not for the other
// fields. A document_code after the file used to be read whole into
// memory, up to the allowance; now each field is held to maxTextPart and
// all of them to uploadOverhead, wherever they are.
func TestReceiveMultipart_FieldsBesideALargeAllowance(t *testing.T) {
	const maxFile = 8 << 20
	pdf := part(fileHdr("a.pdf"), "%PDF-1.4\n"+strings.Repeat("x", 1000))
	code := func(v string) string { return part(`Content-Disposition: form-data; name="document_code"`, v) }
	field := part(`Content-Disposition: form-data; name="x"`, strings.Repeat("y", maxTextPart))
	for _, tc := range []struct {
		name   string
		body   io.Reader
		status int
	}{
		{"a short code after the file", strings.NewReader(pdf + code("birth_certificate") + endB), 0},
		{"fields up to the overhead after the file", strings.NewReader(pdf + strings.Repeat(field, uploadOverhead/len(field)-1) + endB), 0},
		{"a code of 1 MiB after the file", strings.NewReader(pdf + code(strings.Repeat("c", 1<<20)) + endB), http.StatusRequestEntityTooLarge},
		{"a code of 100 MiB after the file", io.MultiReader(strings.NewReader(pdf+"--B\r\nContent-Disposition: form-data; name=\"document_code\"\r\n\r\n"), &repeat{b: 'c', n: 100 << 20}), http.StatusRequestEntityTooLarge},
		{"fields past the overhead after the file", strings.NewReader(pdf + strings.Repeat(field, uploadOverhead/len(field)+1) + endB), http.StatusRequestEntityTooLarge},
		{"fields past the overhead around the file", strings.NewReader(strings.Repeat(field, uploadOverhead/len(field)/2+1) + pdf + strings.Repeat(field, uploadOverhead/len(field)/2+1) + endB), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs, dir := newBlobs(t)
			got, err := receiveMultipart(context.Background(), tc.body, "B", maxFile, blobs, testKey)
			if tc.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if got.info.Size != 1009 {
					t.Errorf("stored %d bytes, want 1009", got.info.Size)
				}
				return
			}
			if statusOf(err) != tc.status {
				t.Fatalf("got %v (status %d), want %d", err, statusOf(err), tc.status)
			}
			if files := storedFiles(t, dir); len(files) != 0 {
				t.Errorf("a refused upload left %v", files)
			}
		})
	}
}

// repeat is n bytes of b, generated as read.
type repeat struct {
	b byte
	n int64
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n)]
	for i := range p {
		p[i] = r.b
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// TestBody: the body stream is bounded, notices a peer that sent less
// than it announced, and hashes what passes.
func TestBody(t *testing.T) {
	read := func(b *body) error { _, err := io.Copy(io.Discard, b); return err }
	if err := read(&body{r: strings.NewReader("12345"), max: 5, declared: 5}); err != nil {
		t.Errorf("a body at its limit: %v", err)
	}
	if err := read(&body{r: strings.NewReader("123456"), max: 5, declared: -1}); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("a chunked body over its limit: %v", err)
	}
	var ce *clientError
	if err := read(&body{r: strings.NewReader("123"), max: 5, declared: 5}); !errors.As(err, &ce) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a body shorter than announced: %v", err)
	}
	h := sha256.New()
	h.Write([]byte("head"))
	b := &body{r: strings.NewReader("abc"), max: 5, declared: 3, sum: h}
	if err := read(b); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("headabc"))
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("the hash is not of the head and the whole body")
	}
}

// FuzzReceiveMultipart: whatever the body, the answer is a stored file
// that matches its digest, or a 4xx problem with nothing left in the store
// (no blob, no temporary file); never a panic or another error.
func FuzzReceiveMultipart(f *testing.F) {
	pdf := "%PDF-1.4\n%%EOF\n"
	for _, s := range []string{
		part(fileHdr("a.pdf"), pdf) + endB,
		part(fileHdr("a.pdf"), pdf) + part(`Content-Disposition: form-data; name="document_code"`, "x") + endB,
		part(fileHdr("a.pdf"), pdf) + part(fileHdr("b.pdf"), pdf) + endB,
		part(fileHdr("a.png"), "\x89PNG\r\n\x1a\n") + endB,
		part(fileHdr("a.pdf"), pdf),
		"--B\r\nno colon\r\n\r\nzz\r\n" + endB,
		"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%PDF=2D1.4=\r\n\r\n" + endB,
		"--B\r\nContent-Disposition: form-data; name=file; filename*=UTF-8''%E2%82%AC.pdf\r\n\r\n" + pdf + "\r\n" + endB,
		"",
		"--B--",
	} {
		f.Add([]byte(s))
	}
	blobs, dir := newBlobs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		const maxFile = 256
		got, err := receiveMultipart(context.Background(), bytes.NewReader(b), "B", maxFile, blobs, testKey)
		defer func() { _ = blobs.Delete(context.Background(), testKey) }()
		if err != nil {
			if st := statusOf(err); st < 400 || st > 499 {
				t.Fatalf("%v: status %d, want a 4xx problem", err, st)
			}
			if files := storedFiles(t, dir); len(files) != 0 {
				t.Fatalf("a refused upload left %v", files)
			}
			return
		}
		r, err := blobs.Open(context.Background(), testKey)
		if err != nil {
			t.Fatalf("accepted but not stored: %v", err)
		}
		content, _ := io.ReadAll(r)
		r.Close()
		sum := sha256.Sum256(content)
		if got.info.SHA256 != hex.EncodeToString(sum[:]) || got.info.Size != int64(len(content)) || len(content) == 0 || len(content) > maxFile {
			t.Fatalf("stored %d bytes as %+v", len(content), got.info)
		}
		if !strings.Contains(fmt.Sprint(allowedTypes), got.contentType) {
			t.Fatalf("stored type %q", got.contentType)
		}
	})
}

// TestReceiveMultipart_StoreFails: the blob store's own failure (here a
// closed store) is not reported as the client's.
func TestReceiveMultipart_StoreFails(t *testing.T) {
	blobs, _ := newBlobs(t)
	blobs.Close()
	_, err := receiveMultipart(context.Background(), strings.NewReader(part(fileHdr("a.pdf"), "%PDF-1.4\n")+endB), "B", 1024, blobs, testKey)
	if err == nil || statusOf(err) != 0 {
		t.Errorf("a store failure: %v (status %d), want the store's error", err, statusOf(err))
	}
}

// TestIsUpload: a request is taken for an upload only when fiber routes
// it to an upload route; a fragment or query naming one must not lift a
// JSON route's body limit (c.Body() would read the stream unbounded).
func TestIsUpload(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"/v1/applications/app_1/attachments", true},
		{"/v1/applications/app_1/attachments?x=1", true},
		{"/v1/applications/app_1/Attachments/", true},
		{"/agency/v1/applications/app_1/documents", true},
		{"/v1/applications#/attachments", false},
		{"/v1/applications?/attachments", false},
		{"/v1/applications/app_1/submit#x/documents", false},
		{"/v1/devices", false},
	} {
		var h fasthttp.RequestHeader
		h.SetMethod(http.MethodPost)
		h.SetRequestURI(tc.uri)
		h.Set(fiber.HeaderAuthorization, "DPoP x")
		if got := isUpload(&h); got != tc.want {
			t.Errorf("isUpload(%q) = %v, want %v", tc.uri, got, tc.want)
		}
	}
	var h fasthttp.RequestHeader
	h.SetMethod(http.MethodPost)
	h.SetRequestURI("/v1/applications/app_1/attachments")
	if isUpload(&h) {
		t.Error("a request without credentials is taken for an upload")
	}
}

// TestInflate: a JSON body sent gzip-encoded is inflated within the body
// limit; a gzip bomb is a 413, not a gigabyte in memory.
func TestInflate(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	body := []byte(`{"service_id":"svc_1"}`)
	got, err := inflate("gzip", gz(body), 1<<10)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("gzip JSON: %q, %v", got, err)
	}
	bomb := gz(bytes.Repeat([]byte(" "), 8<<20))
	if _, err := inflate("gzip", bomb, 1<<20); statusOf(err) != http.StatusRequestEntityTooLarge {
		t.Errorf("a gzip bomb (%d bytes on the wire): %v, want 413", len(bomb), err)
	}
	if _, err := inflate("gzip", []byte("not gzip"), 1<<10); statusOf(err) != http.StatusBadRequest {
		t.Errorf("a body that is not gzip: %v, want 400", err)
	}
	for _, enc := range []string{"br", "deflate", "gzip, gzip", "zstd"} {
		if _, err := inflate(enc, gz(body), 1<<10); statusOf(err) != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Encoding %q: %v, want 415", enc, err)
		}
	}
	if got, err := inflate("identity", body, 1<<10); err != nil || !bytes.Equal(got, body) {
		t.Errorf("identity: %q, %v", got, err)
	}
}
