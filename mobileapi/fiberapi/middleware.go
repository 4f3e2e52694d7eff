package fiberapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/problem"
)

// limiter limits requests per authenticated principal (the citizen, or the
// agency client), never per peer address, which behind a load balancer is
// the balancer's. On one replica it is fiber's limiter in memory. At scale
// the count is shared through the ephemeral store (Redis) with one atomic
// INCR per request and a short deadline: fiber's limiter holds one lock per
// process across two round trips to its storage, which serialised every
// request of a replica behind a slow Redis. A store outage never turns into
// a refusal: the limit fails open.
func (s *Server) limiter(perMinute int, local string) fiber.Handler {
	if !s.cfg.SharedLimits || s.cfg.Ephemeral == nil {
		return limiter.New(limiter.Config{
			Max:        perMinute,
			Expiration: time.Minute,
			KeyGenerator: func(c *fiber.Ctx) string {
				who, _ := c.Locals(local).(string)
				return local + ":" + who
			},
			LimitReached: s.rateLimited,
		})
	}
	return func(c *fiber.Ctx) error {
		who, _ := c.Locals(local).(string)
		now := s.cfg.Now()
		window := now.Truncate(time.Minute)
		key := "api:rl:" + local + ":" + who + ":" + strconv.FormatInt(window.Unix(), 10)
		ctx, cancel := context.WithTimeout(c.UserContext(), limiterDeadline)
		n, err := s.cfg.Ephemeral.Incr(ctx, key, time.Minute+time.Second)
		cancel()
		if err != nil || n <= int64(perMinute) {
			return c.Next()
		}
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(window.Add(time.Minute).Sub(now).Seconds())+1))
		return s.rateLimited(c)
	}
}

// limiterDeadline bounds the shared counter's round trip; past it the
// request goes on uncounted.
const limiterDeadline = 100 * time.Millisecond

func (s *Server) rateLimited(c *fiber.Ctx) error {
	return s.sendProblem(c, apiProblem{Problem: problem.Problem{Type: typeRateLimited, Title: tRateLimited.In(lang(c)),
		Status: http.StatusTooManyRequests, Detail: "Too many requests; retry after the time in Retry-After."}})
}

// idempotencyTTL is how long a key's response is kept (the contract says
// 24 hours).
const idempotencyTTL = 24 * time.Hour

// pendingLease bounds how long a request in progress holds its key: a
// process killed mid-request must not block the client's retries for a
// day.
func (s *Server) pendingLease() time.Duration { return 2*s.cfg.RequestTimeout + 5*time.Second }

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
	err := s.cfg.Ephemeral.Create(ctx, ephKey, pending, s.pendingLease())
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
	// A background context: the record must be settled even if the
	// request's deadline passed while creating.
	bg, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel2()
	settled := false
	defer func() {
		if !settled { // a panic in create: free the key for a retry
			_ = s.cfg.Ephemeral.Delete(bg, ephKey)
		}
	}()
	herr := create()
	status := c.Response().StatusCode()
	settled = true
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

// accessLog writes one line per request at info: method, route pattern (no
// identifiers from the path), status, duration, request id and who called
// (citizen or the agency client). Never tokens, bodies or personal data.
// Probes log at debug.
func (s *Server) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.errorHandler(c, err); herr != nil {
			return herr
		}
	}
	level := slog.LevelInfo
	if p := c.Path(); p == "/healthz" || p == "/readyz" {
		level = slog.LevelDebug
	}
	if !s.cfg.Logger.Enabled(c.UserContext(), level) {
		return nil
	}
	attrs := []slog.Attr{
		slog.String("method", c.Method()),
		slog.String("route", c.Route().Path),
		slog.Int("status", c.Response().StatusCode()),
		slog.Duration("duration", time.Since(start)),
		slog.String("request_id", requestID(c)),
	}
	if cl, ok := c.Locals(localAgencyClient).(string); ok {
		attrs = append(attrs, slog.String("client_id", cl))
	} else if _, ok := c.Locals(localCitizen).(string); ok {
		attrs = append(attrs, slog.String("caller", "citizen"))
	}
	s.cfg.Logger.LogAttrs(c.UserContext(), level, "api request", attrs...)
	return nil
}

// requestID is the id requestid gave the request (echoed in X-Request-ID).
func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals("requestid").(string)
	return id
}
