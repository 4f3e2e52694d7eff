package sso

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/internal/backoff"
)

// BackchannelLogoutEvent is the event a logout token carries (OIDC
// Back-Channel Logout 1.0 section 2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenType is the logout token's JOSE typ (section 2.4).
const LogoutTokenType = "logout+jwt" //nolint:gosec // a JOSE type name, not a credential

// Defaults of the Worker's settings.
const (
	DefaultMaxAttempts    = 8
	DefaultRequestTimeout = 5 * time.Second
	DefaultPollInterval   = 2 * time.Second
	DefaultConcurrency    = 4
	DefaultTokenLifetime  = 2 * time.Minute
	BackoffBase           = 5 * time.Second
	BackoffCap            = 30 * time.Minute
)

// Keys resolves the active signing key of an algorithm (keyset.Manager).
type Keys interface {
	SigningKey(ctx context.Context, alg string) (*keyset.Key, error)
}

// Worker delivers the IdP's durable queue (idp.DeliveryStore) until its
// context ends: back-channel logout tokens and CIBA pings. Replicas share
// the queue: each claims its own rows under a lease. A failed attempt is
// retried after exponential backoff with full jitter, or the receiver's
// Retry-After when longer, until MaxAttempts or the delivery's expiry.
type Worker struct {
	Store  idp.DeliveryStore
	Keys   Keys
	Issuer string
	// HTTPClient sends the logout tokens; nil means a client with
	// RequestTimeout. Redirects are never followed whatever it says: the
	// token goes to the URI the operator registered and nowhere else.
	HTTPClient     *http.Client
	MaxAttempts    int                       // then the delivery is dead; default DefaultMaxAttempts
	Backoff        func(n int) time.Duration // delay after n failed attempts; default full jitter
	RequestTimeout time.Duration
	PollInterval   time.Duration
	Concurrency    int
	TokenLifetime  time.Duration
	Now            func() time.Time
	Logger         *slog.Logger

	once sync.Once
	// wake has one channel per kind's claim loop (kinds).
	wake   map[string]chan struct{}
	client *http.Client
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(map[string]chan struct{}, len(kinds))
		for _, k := range kinds {
			w.wake[k] = make(chan struct{}, 1)
		}
		if w.MaxAttempts <= 0 {
			w.MaxAttempts = DefaultMaxAttempts
		}
		if w.Backoff == nil {
			w.Backoff = backoff.FullJitter(BackoffBase, BackoffCap)
		}
		if w.RequestTimeout <= 0 {
			w.RequestTimeout = DefaultRequestTimeout
		}
		if w.PollInterval <= 0 {
			w.PollInterval = DefaultPollInterval
		}
		if w.Concurrency <= 0 {
			w.Concurrency = DefaultConcurrency
		}
		if w.TokenLifetime <= 0 {
			w.TokenLifetime = DefaultTokenLifetime
		}
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.Logger == nil {
			w.Logger = slog.Default()
		}
		c := &http.Client{}
		if w.HTTPClient != nil {
			cp := *w.HTTPClient
			c = &cp
		}
		if c.Timeout == 0 || c.Timeout > w.RequestTimeout {
			c.Timeout = w.RequestTimeout
		}
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		w.client = c
	})
}

// Notify wakes the worker to claim at once; it never blocks.
func (w *Worker) Notify() {
	w.init()
	for _, c := range w.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// kinds are the delivery kinds, each claimed by its own loop with its own
// Concurrency slots: a ping endpoint an agency registered that hangs (slow,
// or a tarpit) must not hold back back-channel logouts, which are security
// events (a citizen signed out, a device was revoked).
var kinds = []string{idp.DeliveryBackchannelLogout, idp.DeliveryCIBAPing}

// Run delivers until ctx ends, then waits for the attempts in flight.
func (w *Worker) Run(ctx context.Context) error {
	if w.Store == nil || w.Keys == nil || w.Issuer == "" {
		return errors.New("delivery worker needs a store, keys and the issuer")
	}
	w.init()
	var wg sync.WaitGroup
	for _, k := range kinds {
		wg.Go(func() { w.run(ctx, k) })
	}
	wg.Wait()
	return nil
}

// run claims and delivers one kind until ctx ends, then waits for its
// attempts in flight.
func (w *Worker) run(ctx context.Context, kind string) {
	lease := max(time.Minute, 3*w.RequestTimeout)
	poll := time.NewTicker(w.PollInterval)
	defer poll.Stop()
	failing := false
	for {
		ds, err := w.Store.ClaimDeliveries(ctx, kind, w.Concurrency, lease)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			w.Logger.Warn("delivery claim", "kind", kind, "err", err.Error())
			failing = true
		case err == nil && failing:
			w.Logger.Info("delivery claim recovered", "kind", kind)
			failing = false
		}
		var wg sync.WaitGroup
		for _, d := range ds {
			// An attempt is not cut short by shutdown: it is recorded
			// whole, or its lease lapses and it is retried.
			wg.Go(func() { w.Deliver(context.WithoutCancel(ctx), d) })
		}
		wg.Wait()
		if err == nil && len(ds) == w.Concurrency {
			continue // there may be more due
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake[kind]:
		case <-poll.C:
		}
	}
}

// Deliver makes one attempt at a claimed delivery and records it.
func (w *Worker) Deliver(ctx context.Context, d *idp.Delivery) {
	w.init()
	log := w.Logger.With("delivery", d.ID, "kind", d.Kind, "client_id", d.ClientID)
	n := d.Attempts + 1
	now := w.Now()
	a := idp.DeliveryAttempt{At: now.UTC()}
	if d.ExpiresAt != nil && !now.Before(*d.ExpiresAt) {
		// A ping after its request expired would only send the client
		// to an expired_token.
		// No attempt now: the last one's outcome stays on record.
		a.State, a.StatusCode, a.Error = idp.DeliveryDead, d.LastStatus, "expired before it was delivered"
		if d.LastError != "" {
			a.Error += "; last " + d.LastError
		}
		w.record(ctx, log, d, a)
		return
	}
	if d.URI == "" || idp.ValidBackchannelLogoutURI(d.URI) != nil {
		// Deleted client, or one that no longer registers a URI (or, for
		// a ping, is no longer in ping mode): nothing will ever accept it.
		a.State, a.Error = idp.DeliveryDead, "the client has no valid URI for this delivery"
		w.record(ctx, log, d, a)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, w.RequestTimeout)
	defer cancel()
	req, err := w.request(rctx, d)
	if errors.Is(err, errUnknownKind) {
		a.State, a.Error = idp.DeliveryDead, "unknown delivery kind"
		w.record(ctx, log, d, a)
		return
	}
	if err != nil {
		// Ours, not the client's: no attempt counted; the lease lapses.
		log.Error("delivery request", "err", err.Error())
		return
	}
	res, err := w.client.Do(req) // #nosec G704 -- the operator-registered URI, redirects refused
	var retryAfter time.Duration
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		a.StatusCode = res.StatusCode
		retryAfter = backoff.RetryAfter(res.Header.Get("Retry-After"), w.Now(), BackoffCap)
	} else {
		a.Error = describe(err)
	}
	if a.Error == "" && err == nil {
		a.Error = "status " + strconv.Itoa(a.StatusCode)
	}
	next := w.Now().Add(max(w.Backoff(n), retryAfter)).UTC()
	switch {
	case err == nil && delivered(d.Kind, res.StatusCode):
		a.State, a.Error = idp.DeliveryDelivered, ""
	case n >= w.MaxAttempts:
		a.State = idp.DeliveryDead
		log.Warn("delivery undeliverable", "attempts", n, "status", a.StatusCode, "error", a.Error)
	case d.ExpiresAt != nil && !next.Before(*d.ExpiresAt):
		a.State, a.Error = idp.DeliveryDead, "expired before it was delivered; last "+a.Error
		log.Warn("delivery undeliverable before it expired", "attempts", n, "status", a.StatusCode)
	default:
		a.State, a.Next = idp.DeliveryPending, &next
	}
	w.record(ctx, log, d, a)
}

var errUnknownKind = errors.New("unknown delivery kind")

// request builds the HTTP request of a delivery of its kind.
func (w *Worker) request(ctx context.Context, d *idp.Delivery) (*http.Request, error) {
	switch d.Kind {
	case idp.DeliveryBackchannelLogout, "":
		tok, err := LogoutToken(ctx, w.Keys, w.Issuer, d, w.Now(), w.TokenLifetime)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URI, strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cache-Control", "no-store")
		return req, nil
	case idp.DeliveryCIBAPing:
		// CIBA Core 1.0 section 10.2: the auth_req_id, with the bearer
		// token the client sent in its request.
		body, err := json.Marshal(map[string]string{"auth_req_id": d.Payload})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URI, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+d.Secret)
		return req, nil
	}
	return nil, errUnknownKind
}

// delivered says whether a status acknowledges a delivery: 200 or 204 for a
// logout (Back-Channel Logout 1.0 section 2.8), any 2xx for a ping (CIBA
// Core 1.0 section 10.2 expects 204).
func delivered(kind string, status int) bool {
	if kind == idp.DeliveryCIBAPing {
		return status >= 200 && status < 300
	}
	return status == http.StatusOK || status == http.StatusNoContent
}

func (w *Worker) record(ctx context.Context, log *slog.Logger, d *idp.Delivery, a idp.DeliveryAttempt) {
	ctx, cancel := context.WithTimeout(ctx, w.RequestTimeout)
	defer cancel()
	if err := w.Store.RecordDelivery(ctx, d.ID, d.LeaseID, a); err != nil {
		log.Warn("delivery record", "err", err.Error())
		return
	}
	log.Info("delivery attempt", "state", a.State, "status", a.StatusCode)
}

// describe says why no response came, without the URL (url.Error repeats
// it) or anything long.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "no response in time"
		}
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "")
}

// LogoutToken signs the logout token for d with the algorithm the client
// registered for its ID tokens (OIDC Back-Channel Logout 1.0 section 2.4):
// iss, aud, iat, exp, jti, sub, sid and the back-channel logout event; never
// a nonce.
func LogoutToken(ctx context.Context, keys Keys, issuer string, d *idp.Delivery, now time.Time, lifetime time.Duration) (string, error) {
	alg := d.IDTokenAlg
	if alg != "RS256" {
		alg = "ES256"
	}
	k, err := keys.SigningKey(ctx, alg)
	if err != nil {
		return "", fmt.Errorf("logout token: %w", err)
	}
	var method jwt.SigningMethod
	var priv any
	switch p := k.Private.(type) {
	case *ecdsa.PrivateKey:
		method, priv = jwt.SigningMethodES256, p
	case *rsa.PrivateKey:
		method, priv = jwt.SigningMethodRS256, p
	default:
		return "", fmt.Errorf("logout token: key %s has an unsupported type", k.ID)
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	t := jwt.NewWithClaims(method, jwt.MapClaims{
		"iss":    issuer,
		"aud":    d.ClientID,
		"iat":    now.Unix(),
		"exp":    now.Add(lifetime).Unix(),
		"jti":    base64.RawURLEncoding.EncodeToString(jti),
		"sub":    d.Subject,
		"sid":    d.SID,
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	})
	t.Header["typ"] = LogoutTokenType
	t.Header["kid"] = k.ID
	return t.SignedString(priv)
}
