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
	"github.com/gofiber/fiber/v2/middleware/limiter"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/problem"
)

// limiter is fiber's rate limiter keyed by the authenticated principal (the
// citizen, or the agency client), never by the peer address, which behind a
// load balancer is the balancer's. Counters live in process on the embedded
// default and in the shared ephemeral store (Redis) at scale.
func (s *Server) limiter(perMinute int, local string) fiber.Handler {
	cfg := limiter.Config{
		Max:        perMinute,
		Expiration: time.Minute,
		KeyGenerator: func(c *fiber.Ctx) string {
			who, _ := c.Locals(local).(string)
			return "api:rl:" + local + ":" + who
		},
		LimitReached: func(c *fiber.Ctx) error {
			return s.sendProblem(c, apiProblem{Problem: problem.Problem{Type: typeRateLimited, Title: tRateLimited.In(lang(c)),
				Status: http.StatusTooManyRequests, Detail: "Too many requests; retry after the time in Retry-After."}})
		},
	}
	if s.cfg.SharedLimits && s.cfg.Ephemeral != nil {
		cfg.Storage = &ephemeralStorage{eph: s.cfg.Ephemeral, timeout: s.cfg.RequestTimeout}
	}
	return limiter.New(cfg)
}

// ephemeralStorage is fiber.Storage over the IdP's ephemeral store, so
// every replica counts against one limit. fiber's limiter reads and writes
// without a cross-process lock, so concurrent replicas may under-count a
// little; the limit is a brake on abuse, not a quota.
type ephemeralStorage struct {
	eph     idp.Ephemeral
	timeout time.Duration
}

func (e *ephemeralStorage) Get(key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	v, err := e.eph.Get(ctx, key)
	if errors.Is(err, idp.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

func (e *ephemeralStorage) Set(key string, val []byte, exp time.Duration) error {
	if key == "" || len(val) == 0 {
		return nil
	}
	if exp <= 0 {
		exp = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	return e.eph.Set(ctx, key, val, exp)
}

func (e *ephemeralStorage) Delete(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	return e.eph.Delete(ctx, key)
}

func (e *ephemeralStorage) Reset() error { return nil }
func (e *ephemeralStorage) Close() error { return nil }

// idempotencyTTL is how long a key's response is kept (the contract says
// 24 hours).
const idempotencyTTL = 24 * time.Hour

// stored is a kept response for an Idempotency-Key.
type stored struct {
	Pending     bool              `json:"pending,omitempty"`
	Fingerprint string            `json:"fp"`
	Status      int               `json:"status,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        []byte            `json:"body,omitempty"`
}

// idempotent runs create at most once per Idempotency-Key of one principal
// (fiber's idempotency middleware keys on the header alone, so one client
// could replay another's response; it also cannot tell a reused key with
// another body). A retry with the same key and body replays the first 2xx
// response; another body answers 422; a retry while the first is running
// answers 409. Failed requests release the key so they can be retried.
func (s *Server) idempotent(c *fiber.Ctx, principal string, create func() error) error {
	key := c.Get("Idempotency-Key")
	if key == "" || s.cfg.Ephemeral == nil {
		return create()
	}
	if len(key) > 255 || strings.ContainsFunc(key, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return s.fail(c, invalidParam("Idempotency-Key", "The key must be 1 to 255 visible ASCII characters."))
	}
	fp := sha256.New()
	fp.Write([]byte(c.Method() + " " + c.Path() + "\n" + c.Get(fiber.HeaderContentType) + "\n"))
	fp.Write(c.Body())
	fingerprint := hex.EncodeToString(fp.Sum(nil))
	ek := sha256.Sum256([]byte(principal + "\x00" + key))
	ephKey := "api:idem:" + hex.EncodeToString(ek[:])

	ctx, cancel := s.ctx(c)
	defer cancel()
	pending, _ := json.Marshal(stored{Pending: true, Fingerprint: fingerprint})
	err := s.cfg.Ephemeral.Create(ctx, ephKey, pending, idempotencyTTL)
	if errors.Is(err, idp.ErrConflict) {
		raw, gerr := s.cfg.Ephemeral.Get(ctx, ephKey)
		if gerr != nil {
			return s.fail(c, errUnavailable(gerr))
		}
		var prev stored
		if json.Unmarshal(raw, &prev) != nil {
			return s.fail(c, errors.New("corrupt idempotency record"))
		}
		switch {
		case prev.Fingerprint != fingerprint:
			return s.fail(c, &badRequest{status: http.StatusUnprocessableEntity, typ: problem.TypeInvalid, title: tUnprocessable,
				detail: "This Idempotency-Key was used with another request.", errs: []fieldError{{Parameter: "Idempotency-Key", Message: "The key was already used with another request."}}})
		case prev.Pending:
			return s.fail(c, &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict,
				detail: "A request with this Idempotency-Key is still running; retry later."})
		}
		for k, v := range prev.Headers {
			c.Set(k, v)
		}
		c.Set("Idempotent-Replayed", "true")
		return c.Status(prev.Status).Send(prev.Body)
	}
	if err != nil {
		return s.fail(c, errUnavailable(err))
	}
	herr := create()
	status := c.Response().StatusCode()
	// A background context: the record must be settled even if the
	// request's deadline passed while creating.
	bg, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel2()
	if herr != nil || status < 200 || status > 299 {
		if derr := s.cfg.Ephemeral.Delete(bg, ephKey); derr != nil {
			s.cfg.Logger.Warn("idempotency key release", "err", derr)
		}
		return herr
	}
	rec := stored{Fingerprint: fingerprint, Status: status, Headers: map[string]string{}, Body: append([]byte(nil), c.Response().Body()...)}
	for _, h := range []string{fiber.HeaderContentType, fiber.HeaderLocation, fiber.HeaderETag} {
		if v := c.Response().Header.Peek(h); len(v) > 0 {
			rec.Headers[h] = string(v)
		}
	}
	raw, _ := json.Marshal(rec)
	if err := s.cfg.Ephemeral.Set(bg, ephKey, raw, idempotencyTTL); err != nil {
		s.cfg.Logger.Warn("idempotency key store", "err", err)
	}
	return nil
}
