package fiberapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/onedoor/onedoor/mobileapi"
)

// Request bodies are streamed (fiber's StreamRequestBody): fasthttp reads
// at most 8 KiB of a body before the handler runs, whatever its length. An
// upload's file then goes from the connection through a multipart reader
// into the blob store, hashed on the way, so a burst of uploads holds a few
// buffers each rather than whole bodies. Every other route gets its body
// read up front by boundBody, within the same limit as before streaming:
// with streaming on, fasthttp no longer refuses a longer body itself, and
// c.Body() would read any length into memory.

const (
	// jsonBodyLimit bounds the body of every route but the two uploads.
	jsonBodyLimit = maxJSONBody + 4<<10
	// uploadOverhead is what an upload body may hold besides the file's
	// bytes (boundaries, part headers, document_code), before the file and
	// after it, and so the most a part's headers can make the multipart
	// reader hold.
	uploadOverhead = 64 << 10
	// maxTextPart bounds each form field that is not a file: document_code
	// is read into memory, and codes are short.
	maxTextPart = 4 << 10
	// uploadReadTimeout is the time a client has to send a request, its
	// body included (the server's ReadTimeout): an upload is read while its
	// handler runs, so the handler allows for it.
	uploadReadTimeout = 30 * time.Second
)

// isUpload reports whether a request is for an upload route, from its
// header alone: a POST with credentials to a path ending in /attachments
// or /documents. The routes themselves check the rest.
//
// The path is taken as fiber routes it (before any query or fragment,
// case-insensitive, trailing slashes ignored): a request taken for an
// upload here but routed to a JSON handler would have c.Body() read its
// stream with no limit. No other POST route ends in a parameter, so only
// the upload routes can serve such a path.
func isUpload(h *fasthttp.RequestHeader) bool {
	p := h.RequestURI()
	if i := bytes.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = bytes.ToLower(bytes.TrimRight(p, "/"))
	return h.IsPost() && len(h.Peek(fiber.HeaderAuthorization)) > 0 &&
		(bytes.HasSuffix(p, []byte("/attachments")) || bytes.HasSuffix(p, []byte("/documents")))
}

// uploadBodyLimit bounds an upload's body on the wire: the file, its
// multipart framing, and what gzip adds to a file it cannot compress.
func (s *Server) uploadBodyLimit() int64 { return s.cfg.MaxUpload + 1<<20 }

// boundBody holds every request to its body limit. A body announced longer
// than the limit is refused at once. Outside the upload routes the body is
// read here, at most jsonBodyLimit bytes of it, so handlers keep using
// c.Body(); an upload's is left on the connection for its handler.
func (s *Server) boundBody(c *fiber.Ctx) error {
	h := &c.Request().Header
	limit := int64(jsonBodyLimit)
	upload := isUpload(h)
	if upload {
		limit = s.uploadBodyLimit()
	}
	if int64(h.ContentLength()) > limit {
		return s.fail(c, tooLarge("The request body is too large."))
	}
	if upload {
		return c.Next()
	}
	if c.Request().IsBodyStream() {
		b, err := io.ReadAll(io.LimitReader(c.Request().BodyStream(), limit+1))
		if err != nil {
			return s.fail(c, invalidBody("", "The request body could not be read."))
		}
		if int64(len(b)) > limit { // chunked: no length announced
			return s.fail(c, tooLarge("The request body is too large."))
		}
		c.Request().SetBodyRaw(b)
	}
	if enc := c.Request().Header.ContentEncoding(); len(enc) > 0 {
		// fiber's c.Body() would inflate the body with no limit (a gzip
		// bomb: 1 MiB on the wire, 1 GiB in memory); it is inflated here,
		// within the same limit, and handlers get the plain body.
		b, err := inflate(string(enc), c.Request().Body(), limit)
		if err != nil {
			return s.fail(c, err)
		}
		c.Request().SetBodyRaw(b)
		c.Request().Header.Del(fiber.HeaderContentEncoding)
	}
	return c.Next()
}

// inflate decodes a body sent with Content-Encoding enc, at most limit
// bytes of it: gzip, or identity; anything else is a 415 problem, a body
// that inflates past limit a 413.
func inflate(enc string, b []byte, limit int64) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "identity":
		return b, nil
	case "gzip", "x-gzip":
	default:
		return nil, &badRequest{status: http.StatusUnsupportedMediaType, typ: typeMediaType, title: tMediaType,
			detail: "Content-Encoding must be gzip or none."}
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, invalidBody("", "The request body is not valid gzip.")
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	switch {
	case int64(len(out)) > limit:
		return nil, tooLarge("The request body is too large once decompressed.")
	case err != nil:
		return nil, invalidBody("", "The request body is not valid gzip.")
	}
	return out, nil
}

// Errors of an upload's bytes, as opposed to the blob store's.
var (
	errBodyTooLarge = errors.New("request body too large")
	errFileTooLarge = errors.New("file too large")
)

// clientError is a fault of the upload's bytes: the body could not be
// read (the client went away, was too slow, sent less than it announced)
// or is not well-formed multipart.
type clientError struct{ err error }

func (e *clientError) Error() string { return "upload: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// body is an upload's body as it comes off the connection: counted,
// bounded, and, while sum is set, hashed for an Idempotency-Key.
type body struct {
	r        io.Reader
	n, max   int64
	declared int64 // Content-Length; -1 when chunked
	sum      hash.Hash
}

func (b *body) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, errBodyTooLarge
	}
	if room := b.max + 1 - b.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	if b.sum != nil {
		b.sum.Write(p[:n])
	}
	b.n += int64(n)
	switch {
	case b.n > b.max:
		return n, errBodyTooLarge
	case errors.Is(err, io.EOF) && b.declared >= 0 && b.n < b.declared:
		// fasthttp reports a peer that closed early as a plain EOF.
		return n, &clientError{io.ErrUnexpectedEOF}
	case err != nil && !errors.Is(err, io.EOF):
		return n, &clientError{err}
	}
	return n, err
}

// drain reads what is left of the body (hashing it).
func (b *body) drain() error {
	_, err := io.Copy(io.Discard, b)
	return err
}

const localBody = "onedoor.body"

// uploadBody returns the request's body stream, the same one on every
// call.
func (s *Server) uploadBody(c *fiber.Ctx) *body {
	if b, ok := c.Locals(localBody).(*body); ok {
		return b
	}
	r := c.Request().BodyStream()
	if r == nil {
		r = bytes.NewReader(c.Request().Body())
	}
	b := &body{r: r, max: s.uploadBodyLimit(), declared: max(int64(c.Request().Header.ContentLength()), -1)}
	c.Locals(localBody, b)
	return b
}

// budget fails with errBodyTooLarge once more than left bytes are read.
type budget struct {
	r    io.Reader
	left int64
}

func (b *budget) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

// fileReader reads a file part, failing with errFileTooLarge past max
// bytes and marking every other failure as the client's.
type fileReader struct {
	r      io.Reader
	n, max int64
}

func (f *fileReader) Read(p []byte) (int, error) {
	if int64(len(p)) > f.max+1-f.n {
		p = p[:f.max+1-f.n]
	}
	n, err := f.r.Read(p)
	if f.n += int64(n); f.n > f.max {
		return n, &clientError{errFileTooLarge}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		var ce *clientError
		if !errors.As(err, &ce) {
			err = &clientError{err}
		}
	}
	return n, err
}

// received is a file read from a multipart body and stored.
type received struct {
	name, contentType, documentCode string
	info                            mobileapi.BlobInfo
}

// receiveMultipart reads a multipart/form-data body holding exactly one
// file in field "file" (and optionally one "document_code") and stores the
// file under key as it arrives. Each other field is at most maxTextPart
// bytes, and all but the file at most uploadOverhead. The content type is sniffed from the first
// bytes and must be one of allowedTypes; the file must hold 1 to maxFile
// bytes. Every refusal is a *badRequest (a 4xx problem), and leaves nothing
// stored; other errors are the blob store's.
func receiveMultipart(ctx context.Context, r io.Reader, boundary string, maxFile int64, blobs mobileapi.Blobs, key string) (*received, error) {
	lim := &budget{r: r, left: uploadOverhead}
	mr := multipart.NewReader(lim, boundary)
	var (
		got    *received
		codes  []string
		stored bool
	)
	fail := func(err error) (*received, error) {
		if stored {
			// Delete with its own deadline: ctx may be what ended.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = blobs.Delete(dctx, key)
		}
		if lim.left < 0 {
			// The multipart reader may have reported the budget's error
			// as a syntax error.
			err = errBodyTooLarge
		}
		return nil, uploadError(err, maxFile)
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(&clientError{err})
		}
		switch {
		case p.FormName() == "file" && p.FileName() != "":
			if got != nil {
				return fail(unprocessable([]fieldError{{Pointer: "/file", Message: "Exactly one file is required in field file."}}))
			}
			f := &fileReader{r: p, max: maxFile}
			typ, content, err := sniff(f)
			if err != nil {
				return fail(err)
			}
			if f.n == 0 {
				return fail(unprocessable([]fieldError{{Pointer: "/file", Message: "The file is empty."}}))
			}
			if !slices.Contains(allowedTypes, typ) {
				return fail(&badRequest{status: http.StatusUnsupportedMediaType, typ: typeMediaType, title: tMediaType,
					detail: "Files must be PDF, JPEG or PNG."})
			}
			// The file may use the rest of the overhead allowance too.
			lim.left += maxFile
			info, err := blobs.Put(ctx, key, content, maxFile)
			if err != nil {
				return fail(err)
			}
			stored = true
			// What the file left of its allowance is not for other parts:
			// the body stays within uploadOverhead besides the file.
			lim.left -= maxFile - f.n
			got = &received{name: p.FileName(), contentType: typ, info: info}
		case p.FileName() == "":
			v, err := io.ReadAll(io.LimitReader(p, maxTextPart+1))
			if err != nil {
				return fail(&clientError{err})
			}
			if len(v) > maxTextPart {
				return fail(tooLarge(fmt.Sprintf("A form field other than file is at most %d bytes.", maxTextPart)))
			}
			if p.FormName() == "document_code" {
				codes = append(codes, string(v))
			} // other fields are ignored, as a form's would be
		default: // and so are files in other fields
			if _, err := io.Copy(io.Discard, p); err != nil {
				return fail(&clientError{err})
			}
		}
	}
	if got == nil {
		return fail(unprocessable([]fieldError{{Pointer: "/file", Message: "Exactly one file is required in field file."}}))
	}
	if len(codes) == 1 {
		got.documentCode = codes[0]
	}
	return got, nil
}

// uploadError turns a failure to receive an upload into its problem: the
// client's faults are 4xx, the blob store's stay what they are (a full disk
// is 503).
func uploadError(err error, maxFile int64) error {
	var br *badRequest
	var ce *clientError
	switch {
	case errors.As(err, &br):
		return br
	case errors.Is(err, errFileTooLarge):
		return tooLarge(fmt.Sprintf("A file is at most %d bytes.", maxFile))
	case errors.Is(err, errBodyTooLarge):
		return tooLarge("The request body is too large.")
	case errors.As(err, &ce):
		return invalidBody("", "Malformed multipart body.")
	}
	return err
}

// sniff detects the content type from the first bytes.
func sniff(r io.Reader) (string, io.Reader, error) {
	head := make([]byte, 512)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", nil, err
	}
	head = head[:n]
	typ, _, _ := strings.Cut(http.DetectContentType(head), ";")
	return typ, io.MultiReader(bytes.NewReader(head), r), nil
}

// receiveFile reads the multipart body of an upload request, checks its
// file's type and size and stores it under key(id) as it arrives; the whole
// body is read by the time it returns. Nothing is kept on failure.
func (s *Server) receiveFile(c *fiber.Ctx, prefix string, key func(id string) string) (*upload, error) {
	ct := c.Get(fiber.HeaderContentType)
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), fiber.MIMEMultipartForm) {
		return nil, unsupportedMedia(fiber.MIMEMultipartForm)
	}
	_, params, err := mime.ParseMediaType(ct)
	if err != nil || params["boundary"] == "" {
		return nil, invalidBody("", "Malformed multipart body.")
	}
	raw := s.uploadBody(c)
	var r io.Reader = raw
	switch ce := strings.ToLower(strings.TrimSpace(c.Get(fiber.HeaderContentEncoding))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, uploadError(&clientError{err}, s.cfg.MaxUpload)
		}
		r = zr // its errors reach receiveMultipart's readers, which mark them as the client's
	default:
		return nil, &badRequest{status: http.StatusUnsupportedMediaType, typ: typeMediaType, title: tMediaType,
			detail: "Content-Encoding must be gzip or none."}
	}
	id := mobileapi.NewID(prefix)
	// The file arrives while it is stored: allow the time the client has to
	// send it, not only a store's request timeout.
	ctx, cancel := context.WithTimeout(c.UserContext(), uploadReadTimeout+s.cfg.RequestTimeout)
	defer cancel()
	got, err := receiveMultipart(ctx, r, params["boundary"], s.cfg.MaxUpload, s.cfg.Blobs, key(id))
	if err != nil {
		if raw.n > raw.max {
			return nil, uploadError(errBodyTooLarge, s.cfg.MaxUpload)
		}
		return nil, err
	}
	// Whatever follows the closing boundary is read too: the retry of an
	// Idempotency-Key is recognised by the whole body.
	if err := raw.drain(); err != nil {
		s.dropBlob(key(id))
		return nil, uploadError(err, s.cfg.MaxUpload)
	}
	return &upload{documentCode: got.documentCode, file: mobileapi.File{ID: id, Name: cleanName(got.name, got.contentType), ContentType: got.contentType,
		Size: got.info.Size, SHA256: got.info.SHA256, DocumentCode: got.documentCode, BlobKey: key(id)}}, nil
}
