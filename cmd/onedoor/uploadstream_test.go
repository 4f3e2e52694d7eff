package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Uploads are streamed into the blob store (mobileapi/fiberapi/upload.go):
// these tests hold the server to what that must not change, and to what a
// stream makes possible (a refusal before the body is sent, nothing kept
// of an upload cut short, bounded memory).

// in is a bound to t: a subtest's failures must end the subtest, not its
// parent.
func (a *apiClient) in(t testing.TB) *apiClient {
	c := *a
	c.t = t
	return &c
}

// request builds a's request with its credentials, as do sends it.
func (a *apiClient) request(t testing.TB, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case a.token != "" && a.pop != nil:
		req.Header.Set("Authorization", "DPoP "+a.token)
		htu, _, _ := strings.Cut(a.apiURL+path, "?")
		req.Header.Set("DPoP", a.pop.proof(t, method, htu, a.token))
	case a.token != "":
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	return req
}

// sendOn writes req on a new connection to addr (req.Write, in the
// background, so the answer can come while the body is still being sent)
// and reads the answer.
func sendOn(t testing.TB, addr string, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	go func() { _ = req.Write(conn) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// counting counts what the client read of a body (what it sent, give or
// take its buffers).
type counting struct {
	r io.Reader
	n atomic.Int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// blobFiles lists the regular files under the blob directory, temporary
// files included.
func blobFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func TestUploads_Streamed(t *testing.T) {
	f := newAttackFixture(t)
	dir := f.e.m.Config.blobDir()
	id := f.draft(t, f.cit)
	path := "/v1/applications/" + id + "/attachments"
	attachments := func(t testing.TB) int {
		return len(f.cit.in(t).must(http.StatusOK, http.MethodGet, "/v1/applications/"+id, nil).json(t)["attachments"].([]any))
	}
	isProblem := func(resp *http.Response, body []byte, want int) bool {
		return resp.StatusCode == want && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") && len(body) > 0
	}

	t.Run("an oversized chunked upload is refused once it passes the limit", func(t *testing.T) {
		body := &counting{r: newUploadBody(100 << 20)} // sent without a length
		req := f.cit.request(t, http.MethodPost, path, body)
		req.ContentLength = -1
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+uploadBoundary)
		resp, b := sendOn(t, f.e.m.APIAddr, req)
		if !isProblem(resp, b, http.StatusRequestEntityTooLarge) {
			t.Fatalf("100 MiB chunked upload: %d %s", resp.StatusCode, b)
		}
		if sent := body.n.Load(); sent > 40<<20 {
			t.Errorf("the client sent %d MiB before the 413: the body was read past the limit", sent>>20)
		}
		if files := blobFiles(t, dir); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
	})

	t.Run("an announced oversized body is refused before it is sent", func(t *testing.T) {
		body := &counting{r: newUploadBody(20 << 20)}
		req := f.cit.request(t, http.MethodPost, path, body)
		req.ContentLength = body.r.(*uploadBody).Len()
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+uploadBoundary)
		resp, b := sendOn(t, f.e.m.APIAddr, req)
		if !isProblem(resp, b, http.StatusRequestEntityTooLarge) {
			t.Fatalf("20 MiB upload: %d %s", resp.StatusCode, b)
		}
		if files := blobFiles(t, dir); len(files) != 0 {
			t.Errorf("a refused upload left %v", files)
		}
	})

	t.Run("a client gone mid-upload leaves nothing behind", func(t *testing.T) {
		full := newUploadBody(5 << 20)
		req := f.cit.request(t, http.MethodPost, path, io.LimitReader(full, 2<<20))
		req.ContentLength = full.Len() // announced, never sent in full
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+uploadBoundary)
		req.Header.Set("Idempotency-Key", "cut-short")
		conn, err := net.Dial("tcp", f.e.m.APIAddr)
		if err != nil {
			t.Fatal(err)
		}
		_ = req.Write(conn) // fails after 2 MiB: the body is short
		conn.Close()
		// The key is held while the cut upload runs (409) and released
		// when it fails: then the retry, the same request in full, is the
		// first to create.
		b, err := io.ReadAll(newUploadBody(5 << 20))
		if err != nil {
			t.Fatal(err)
		}
		ct := "multipart/form-data; boundary=" + uploadBoundary
		deadline := time.Now().Add(30 * time.Second)
		// A 409 comes before the 5 MiB are sent: each try goes on a raw
		// connection, which reads an early answer however the write ends.
		var (
			resp *http.Response
			body []byte
		)
		for {
			req := f.cit.request(t, http.MethodPost, path, bytes.NewReader(b))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Idempotency-Key", "cut-short")
			resp, body = sendOn(t, f.e.m.APIAddr, req)
			if resp.StatusCode != http.StatusConflict || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("retry after the cut upload: %d %s %v", resp.StatusCode, body, resp.Header)
		}
		if n := attachments(t); n != 1 {
			t.Errorf("%d attachments, want the retry's alone", n)
		}
		if files := blobFiles(t, dir); len(files) != 1 {
			t.Errorf("blob directory holds %v, want the retry's file alone", files)
		}
	})

	t.Run("Idempotency-Key on an upload", func(t *testing.T) {
		b, ct := multipartFile(t, "a.pdf", []byte("%PDF-1.4\n% the first\n"))
		cit := f.cit.in(t)
		first := cit.must(http.StatusCreated, http.MethodPost, path, b, "Content-Type", ct, "Idempotency-Key", "up-1").json(t)
		again := cit.must(http.StatusCreated, http.MethodPost, path, b, "Content-Type", ct, "Idempotency-Key", "up-1")
		if again.header.Get("Idempotent-Replayed") != "true" || again.json(t)["id"] != first["id"] || again.json(t)["sha256"] != first["sha256"] {
			t.Errorf("replay: %v %s, first %v", again.header, again.body, first)
		}
		other, ct2 := multipartFile(t, "a.pdf", []byte("%PDF-1.4\n% another\n"))
		if r := cit.do(http.MethodPost, path, other, "Content-Type", ct2, "Idempotency-Key", "up-1"); r.status != http.StatusUnprocessableEntity {
			t.Errorf("same key, another file: %d %s", r.status, r.body)
		}
		// Sent in chunks, the same body is the same request.
		req := f.cit.request(t, http.MethodPost, path, strings.NewReader(string(b)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Idempotency-Key", "up-1")
		if resp, body := sendOn(t, f.e.m.APIAddr, req); resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("chunked retry: %d %s", resp.StatusCode, body)
		}
		if n := attachments(t); n != 2 {
			t.Errorf("%d attachments, want 2 (the cut-short retry's and this one)", n)
		}
	})

	t.Run("a long document_code is a 413 problem", func(t *testing.T) {
		// Under the file's allowance, but a form field is a few KiB.
		b := "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.4\n\r\n" +
			"--B\r\nContent-Disposition: form-data; name=\"document_code\"\r\n\r\n" + strings.Repeat("c", 1<<20) + "\r\n--B--\r\n"
		before := attachments(t)
		// The answer comes before the body is sent, and the server then
		// closes: read it on a raw connection, where a write cut short
		// cannot hide it (net/http's client may report the reset instead).
		req := f.cit.request(t, http.MethodPost, path, strings.NewReader(b))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		if resp, body := sendOn(t, f.e.m.APIAddr, req); !isProblem(resp, body, http.StatusRequestEntityTooLarge) {
			t.Fatalf("a 1 MiB document_code: %d %s", resp.StatusCode, body)
		}
		if n := attachments(t); n != before {
			t.Errorf("%d attachments after the refusal, want %d", n, before)
		}
	})

	t.Run("JSON bodies are still bounded", func(t *testing.T) {
		big := `{"service_id":"` + strings.Repeat("x", 2<<20) + `"}`
		for name, length := range map[string]int64{"announced": int64(len(big)), "chunked": -1} {
			req := f.cit.request(t, http.MethodPost, "/v1/applications", strings.NewReader(big))
			req.ContentLength = length
			req.Header.Set("Content-Type", "application/json")
			if resp, b := sendOn(t, f.e.m.APIAddr, req); !isProblem(resp, b, http.StatusRequestEntityTooLarge) {
				t.Errorf("%s 2 MiB JSON body: %d %s", name, resp.StatusCode, b)
			}
		}
		// Without credentials an upload route is not an upload: a JSON
		// body's limit.
		req, _ := http.NewRequest(http.MethodPost, f.cit.base+path, strings.NewReader(big))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
		if resp, b := sendOn(t, f.e.m.APIAddr, req); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("2 MiB chunked body to an upload route without a token: %d %s", resp.StatusCode, b)
		}
		// A chunked body within the limit is read as before.
		req = f.cit.request(t, http.MethodPatch, "/v1/applications/"+id, strings.NewReader(`{"form":{"child_name":"Con"}}`))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/merge-patch+json")
		if resp, b := sendOn(t, f.e.m.APIAddr, req); resp.StatusCode != http.StatusOK {
			t.Errorf("chunked merge patch: %d %s", resp.StatusCode, b)
		}
	})
}

// TestUploads_ConcurrentMemoryBounded: 20 uploads of 10 MiB at once grow
// the heap by a few MiB, not by 20 bodies.
func TestUploads_ConcurrentMemoryBounded(t *testing.T) {
	f := newAttackFixture(t)
	app := f.submitted(t, f.cit)
	path := "/agency/v1/applications/" + app + "/documents"
	const conc, size = 20, 10 << 20
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, conc)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := newUploadBody(size)
			req := f.hanoi.request(t, http.MethodPost, path, body)
			req.ContentLength = body.Len()
			req.Header.Set("Content-Type", "multipart/form-data; boundary="+uploadBoundary)
			resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Sprintf("%d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	grew := int64(peak.Load()) - int64(base) //nolint:gosec // heap sizes are far below 2^63
	t.Logf("%d concurrent %d MiB uploads: heap in use peaked %d MiB above the start", conc, size>>20, grew>>20)
	if grew > 64<<20 {
		t.Errorf("%d concurrent %d MiB uploads grew the heap by %d MiB: bodies are held in memory", conc, size>>20, grew>>20)
	}
}
