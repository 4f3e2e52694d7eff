package fiberapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"

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
