package fiberapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/problem"
)

// idempotencyTTL is how long a key's record is kept (the contract says 24
// hours).
const idempotencyTTL = 24 * time.Hour

// pendingLease bounds how long a request in progress holds its key: a
// process killed mid-request must not block the client's retries for a
// day.
// An upload's includes the time its body may take to arrive.
func (s *Server) pendingLease(upload bool) time.Duration {
	d := 2*s.cfg.RequestTimeout + 5*time.Second
	if upload {
		d += uploadReadTimeout
	}
	return d
}

// pendingUpload prefixes the fingerprint of an upload's record while it
// runs: its body's digest is known only once it has been read.
const pendingUpload = "upload:"

// idemRecord is what the ephemeral store keeps for an Idempotency-Key: the
// request's hash, and once the creation succeeded its status and a
// reference to what it created. Never the response: a draft's body holds
// the citizen's pre-filled personal data, which must not sit in Redis for
// a day beside the store that is its one copy.
type idemRecord struct {
	Pending     bool   `json:"pending,omitempty"`
	Fingerprint string `json:"fp"`
	Status      int    `json:"status,omitempty"`
	// Ref names the created resource for the route's replay (an id, or
	// "application id/file id").
	Ref string `json:"ref,omitempty"`
	// Headers and Body are what records written by earlier releases kept
	// (the whole response); such records are replayed as they are until
	// they expire, at most a day after the upgrade.
	Headers map[string]string `json:"headers,omitempty"`
	Body    []byte            `json:"body,omitempty"`
}

// errReplayGone is what a replay function returns when the resource the key
// created no longer exists.
var errReplayGone = errors.New("the created resource no longer exists")

// idempotent runs create at most once per Idempotency-Key of one principal
// (fiber's idempotency middleware keys on the header alone, so one client
// could replay another's response; it also cannot tell a reused key with
// another body). create writes the response and returns the reference of
// what it created. A retry with the same key and body is answered by
// replay(ref), which reads the resource again and writes it as create did,
// with Idempotent-Replayed: true; when the resource is gone (a deleted
// draft, a deleted webhook) the retry answers 409 and nothing is created
// again, since the first request did succeed. Another body answers 422; a
// retry while the first is running answers 409. Failed requests release the
// key so they can be retried.
func (s *Server) idempotent(c *fiber.Ctx, principal string, replay func(ctx context.Context, ref string) error, create func() (string, error)) error {
	key := c.Get("Idempotency-Key")
	if key == "" || s.cfg.Ephemeral == nil {
		_, err := create()
		return err
	}
	if len(key) > 255 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return s.fail(c, invalidParam("Idempotency-Key", "The key must be 1 to 255 visible ASCII characters."))
	}
	fp := sha256.New()
	// If-Match is part of the request: the same decision on another
	// version of the application is another request, not a retry.
	head := []byte(c.Method() + " " + c.Path() + "\n" + c.Get(fiber.HeaderContentType) + "\n" + c.Get(fiber.HeaderIfMatch) + "\n")
	fp.Write(head)
	// An upload's body is hashed as it streams past (the same digest as
	// of the whole body), so it is known once create has read it all.
	// While it runs its record has the digest of the request line and
	// headers alone: a retry of it waits (409), another request is refused
	// (422).
	stream := isUpload(&c.Request().Header)
	var fingerprint string
	if stream {
		sum := sha256.Sum256(head)
		fingerprint = pendingUpload + hex.EncodeToString(sum[:])
		s.uploadBody(c).sum = fp
	} else {
		fp.Write(c.Body())
		fingerprint = hex.EncodeToString(fp.Sum(nil))
	}
	ephKey := idempotencyKey(principal, key)

	ctx, cancel := s.ctx(c)
	defer cancel()
	pending, _ := json.Marshal(idemRecord{Pending: true, Fingerprint: fingerprint})
	err := s.cfg.Ephemeral.Create(ctx, ephKey, pending, s.pendingLease(stream))
	if errors.Is(err, idp.ErrConflict) {
		raw, gerr := s.cfg.Ephemeral.Get(ctx, ephKey)
		if gerr != nil {
			return s.fail(c, errUnavailable(gerr))
		}
		var prev idemRecord
		if json.Unmarshal(raw, &prev) != nil {
			return s.fail(c, errors.New("corrupt idempotency record"))
		}
		if stream && !prev.Pending {
			// Read the retry's body to compare it with the first's.
			if err := s.uploadBody(c).drain(); err != nil {
				return s.fail(c, uploadError(err, s.cfg.MaxUpload))
			}
			fingerprint = hex.EncodeToString(fp.Sum(nil))
			cancel()
			ctx, cancel = s.ctx(c) // reading it took time
			defer cancel()
		}
		switch {
		case prev.Fingerprint != fingerprint:
			return s.fail(c, &badRequest{status: http.StatusUnprocessableEntity, typ: problem.TypeInvalid, title: tUnprocessable,
				detail: "This Idempotency-Key was used with another request.", errs: []fieldError{{Parameter: "Idempotency-Key", Message: "The key was already used with another request."}}})
		case prev.Pending:
			return s.fail(c, &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict,
				detail: "A request with this Idempotency-Key is still running; retry later."})
		}
		c.Set("Idempotent-Replayed", "true")
		if prev.Ref == "" && prev.Body != nil {
			for k, v := range prev.Headers {
				c.Set(k, v)
			}
			return c.Status(prev.Status).Send(prev.Body)
		}
		// The first answer's status is set before replay, so a replay can
		// write what goes with it (a 201's Location), and again after, in
		// case replay's writing reset it.
		c.Status(prev.Status)
		err := replay(ctx, prev.Ref)
		if errors.Is(err, errReplayGone) || (errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable)) {
			return s.fail(c, &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict,
				detail: "The request with this Idempotency-Key succeeded, but what it created no longer exists; use a new key to create it again."})
		}
		if err != nil {
			return s.fail(c, err)
		}
		c.Status(prev.Status)
		return nil
	}
	if err != nil {
		return s.fail(c, errUnavailable(err))
	}
	// A background context, made when needed: the record must be settled
	// even if the request's deadline passed while creating (an upload may
	// take longer than a request timeout to arrive).
	settle := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	}
	settled := false
	defer func() {
		if !settled { // a panic in create: free the key for a retry
			bg, cancel := settle()
			defer cancel()
			_ = s.cfg.Ephemeral.Delete(bg, ephKey)
		}
	}()
	ref, herr := create()
	status := c.Response().StatusCode()
	settled = true
	if stream && herr == nil && ref != "" {
		// create read the body to its end; anything left is read now.
		if err := s.uploadBody(c).drain(); err != nil {
			ref = ""
		}
		fingerprint = hex.EncodeToString(fp.Sum(nil))
	}
	bg, cancel2 := settle()
	defer cancel2()
	if herr != nil || status < 200 || status > 299 || ref == "" {
		if derr := s.cfg.Ephemeral.Delete(bg, ephKey); derr != nil {
			s.cfg.Logger.Warn("idempotency key release", "err", derr)
		}
		return herr
	}
	raw, _ := json.Marshal(idemRecord{Fingerprint: fingerprint, Status: status, Ref: ref})
	if err := s.cfg.Ephemeral.Set(bg, ephKey, raw, idempotencyTTL); err != nil {
		s.cfg.Logger.Warn("idempotency key store", "err", err)
	}
	return nil
}

// idempotencyKey is the ephemeral key of a principal's Idempotency-Key:
// hashed, so neither the principal nor the client's key is stored in the
// clear.
func idempotencyKey(principal, key string) string {
	ek := sha256.Sum256([]byte(principal + "\x00" + key))
	return "api:idem:" + hex.EncodeToString(ek[:])
}

// splitRef splits a reference "parent/child" of a created file.
func splitRef(ref string) (parent, child string, err error) {
	parent, child, ok := strings.Cut(ref, "/")
	if !ok || parent == "" || child == "" {
		return "", "", errReplayGone
	}
	return parent, child, nil
}
