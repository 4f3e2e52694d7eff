// Package fiberapi serves the mobile API over gofiber/fiber on its own
// listener. It is the only package that imports fiber (depguard): handlers
// copy what they need out of the request before calling anything, and no
// *fiber.Ctx or fiber-owned string outlives its handler.
package fiberapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/etag"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/problem"
	"github.com/onedoor/onedoor/mobileapi"
)

// Verifier checks the IdP's access tokens in process.
type Verifier interface {
	VerifyFor(ctx context.Context, token string, e accesstoken.Expect) (*accesstoken.Claims, error)
}

// Citizens is the citizen registry, the one copy of the data.
type Citizens interface {
	GetCitizen(ctx context.Context, id string) (*idp.Citizen, error)
}

// Config configures the server.
type Config struct {
	// APIURL is the API's audience: only tokens minted for it are accepted.
	APIURL   string
	Verifier Verifier
	Citizens Citizens
	// Ready reports whether the server should receive traffic (nil: ready).
	Ready          func(ctx context.Context) error
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// Server is the mobile API.
type Server struct {
	app *fiber.App
	cfg Config
}

// Limits on what a client may send.
const (
	maxBody = 1 << 20
)

// New returns the server with its routes.
func New(cfg Config) *Server {
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg}
	s.app = fiber.New(fiber.Config{
		AppName:               "onedoor-mobileapi",
		BodyLimit:             maxBody,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           90 * time.Second,
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
	})
	s.app.Use(recover.New(), requestid.New(), etag.New())
	s.app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusNoContent) })
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/v1/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(mobileapi.OpenAPI)
	})
	s.docsRoutes()
	v1 := s.app.Group("/v1", s.citizen)
	v1.Get("/me", s.me)
	return s
}

// Serve serves the API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }

// Test runs one request through the app without a listener.
func (s *Server) Test(req *http.Request) (*http.Response, error) { return s.app.Test(req, -1) }

// ctx is the request's context with the request timeout: a hung store
// turns into a 503 instead of a hung client.
func (s *Server) ctx(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
}

func (s *Server) readyz(c *fiber.Ctx) error {
	if s.cfg.Ready == nil {
		return c.SendStatus(http.StatusNoContent)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		// Not logged: a probe polls this, and the stores' own failures are
		// logged where requests meet them.
		p := problem.From(errUnavailable(err))
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(p.RetryAfter/time.Second)))
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(p.Status).JSON(p, "application/problem+json")
	}
	return c.SendStatus(http.StatusNoContent)
}

func errUnavailable(err error) error {
	if errors.Is(err, idp.ErrUnavailable) {
		return err
	}
	return errors.Join(err, idp.ErrUnavailable)
}

// localCitizen is the key of the verified citizen id in the request locals.
const localCitizen = "onedoor.citizen"

// citizen admits only the eID app's citizen tokens minted for this API:
// an agency's token for the same citizen (even one minted for the API) is
// refused, so an agency never reads here what its registration does not
// allow it to receive.
func (s *Server) citizen(c *fiber.Ctx) error {
	if c.Path() == "/v1/openapi.json" {
		return c.Next()
	}
	h := c.Get(fiber.HeaderAuthorization)
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return s.unauthorized(c, "", "An access token is required.")
	}
	token := strings.Clone(strings.TrimSpace(h[len(scheme):])) // the header bytes are fiber's, reused after the handler
	ctx, cancel := s.ctx(c)
	defer cancel()
	claims, err := s.cfg.Verifier.VerifyFor(ctx, token, accesstoken.Expect{Audience: s.cfg.APIURL, Kind: accesstoken.KindCitizen})
	switch {
	case errors.Is(err, accesstoken.ErrInvalid):
		return s.unauthorized(c, "invalid_token", "The access token is not valid for this API.")
	case err != nil:
		return s.problem(c, problem.From(errUnavailable(err)))
	case claims.ClientID != idp.EIDAppClientID:
		return s.unauthorized(c, "invalid_token", "Citizen routes take the eID app's tokens only.")
	case len(claims.Audience) != 1:
		// A token for several services could be replayed here by any of them.
		return s.unauthorized(c, "invalid_token", "The access token must be minted for this API alone.")
	}
	c.Locals(localCitizen, strings.Clone(claims.Subject))
	return c.Next()
}

func (s *Server) unauthorized(c *fiber.Ctx, code, detail string) error {
	h := `Bearer realm="onedoor-api"`
	if code != "" {
		h += `, error="` + code + `"`
	}
	c.Set(fiber.HeaderWWWAuthenticate, h)
	return s.problem(c, problem.Problem{Type: "urn:onedoor:problem:unauthorized", Title: "Unauthorized", Status: http.StatusUnauthorized, Detail: detail})
}

// me is the signed-in citizen, from the registry.
type me struct {
	ID          string  `json:"id"`
	PersonalID  string  `json:"personal_id"`
	Name        string  `json:"name"`
	FamilyName  string  `json:"family_name"`
	GivenName   string  `json:"given_name"`
	Birthdate   string  `json:"birthdate"`
	Gender      string  `json:"gender"`
	Address     string  `json:"address"`
	PhoneNumber *string `json:"phone_number"`
}

func (s *Server) me(c *fiber.Ctx) error {
	id, _ := c.Locals(localCitizen).(string)
	ctx, cancel := s.ctx(c)
	defer cancel()
	cit, err := s.cfg.Citizens.GetCitizen(ctx, id)
	if errors.Is(err, idp.ErrNotFound) {
		return s.unauthorized(c, "invalid_token", "The access token's citizen does not exist.")
	}
	if err != nil {
		return s.problem(c, problem.From(err))
	}
	out := me{ID: cit.ID, PersonalID: cit.PersonalID, Name: cit.Name(), FamilyName: cit.FamilyName,
		GivenName: cit.GivenName, Birthdate: cit.Birthdate, Gender: cit.Gender, Address: cit.Address}
	if cit.PhoneNumber != "" {
		out.PhoneNumber = &cit.PhoneNumber
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(out)
}

// problem writes an RFC 9457 problem. Internal causes are logged, never sent.
func (s *Server) problem(c *fiber.Ctx, p problem.Problem) error {
	if p.Status >= 500 {
		s.cfg.Logger.Warn("api problem", "path", c.Path(), "status", p.Status, "title", p.Title)
	}
	if p.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(p.RetryAfter/time.Second)))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(p.Status).JSON(p, "application/problem+json")
}

// errorHandler turns fiber's own errors (no route, wrong method, body too
// large) and anything unexpected into problems.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return s.problem(c, problem.Problem{Type: "about:blank", Title: http.StatusText(fe.Code), Status: fe.Code})
	}
	s.cfg.Logger.Error("api handler", "path", c.Path(), "err", err.Error())
	return s.problem(c, problem.From(err))
}
