package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/onedoor/onedoor/internal/backoff"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/push/queue"
)

// Store is what the worker needs of mobileapi.WebhookStore.
type Store interface {
	// ClaimDeliveries takes up to limit pending deliveries that are due
	// (with their attempts so far) and hides them from other claimers for d.
	ClaimDeliveries(ctx context.Context, limit int, d time.Duration) ([]*mobileapi.Delivery, error)
	// RecordClaimedAttempt appends an attempt and sets the next state,
	// under the claim the delivery was claimed under: a lapsed claim's
	// late outcome changes nothing.
	RecordClaimedAttempt(ctx context.Context, deliveryID, claim string, a mobileapi.Attempt, state mobileapi.DeliveryState, next *time.Time) error
}

// Defaults of the Worker's settings.
const (
	DefaultMaxAttempts    = 12
	DefaultRequestTimeout = 10 * time.Second
	DefaultPollInterval   = time.Second
	DefaultConcurrency    = 8
	BackoffBase           = 10 * time.Second
	BackoffCap            = time.Hour // also the most Retry-After can ask for
)

// maxDrain bounds how much of a response body is read (to reuse the
// connection); the rest is dropped with the connection.
const maxDrain = 64 << 10

// Worker delivers due webhook deliveries until its context ends. Several
// workers, in one process or many, may share a store: each claims its own.
type Worker struct {
	Store  Store
	Signer Signer
	// HTTPClient sends the requests; nil means NewHTTPClient(AllowPrivate).
	// Redirects are never followed, whatever its CheckRedirect.
	HTTPClient *http.Client
	// AllowPrivate lets the default client connect to loopback, private
	// and other non-public addresses: for tests and the demo only.
	AllowPrivate bool
	Now          func() time.Time // default time.Now
	MaxAttempts  int              // default DefaultMaxAttempts
	// Backoff returns the delay before retry number n (n >= 1, after n
	// failed attempts); default FullJitter(BackoffBase, BackoffCap).
	Backoff        func(n int) time.Duration
	RequestTimeout time.Duration // default DefaultRequestTimeout
	PollInterval   time.Duration // default DefaultPollInterval
	Concurrency    int           // deliveries in flight at once; default DefaultConcurrency
	Logger         *slog.Logger  // default slog.Default()

	once   sync.Once
	wake   chan struct{}
	client *http.Client
}

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if w.Now == nil {
			w.Now = time.Now
		}
		if w.MaxAttempts <= 0 {
			w.MaxAttempts = DefaultMaxAttempts
		}
		if w.Backoff == nil {
			w.Backoff = FullJitter(BackoffBase, BackoffCap)
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
		if w.Logger == nil {
			w.Logger = slog.Default()
		}
		if w.HTTPClient == nil {
			w.client = NewHTTPClient(w.AllowPrivate)
		} else {
			c := *w.HTTPClient
			c.CheckRedirect = noRedirect
			w.client = &c
		}
	})
}

// Notify wakes the worker to claim at once, as after a transition queued a
// delivery; it never blocks.
func (w *Worker) Notify() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then waits for the deliveries in flight
// (each bounded by RequestTimeout) and returns nil. A delivery's request is
// not cut short by ctx: an attempt is recorded whole or not at all (then
// its claim lapses and it is retried).
func (w *Worker) Run(ctx context.Context) error {
	if w.Store == nil || w.Signer == nil {
		return errors.New("webhook worker needs a store and a signer")
	}
	w.init()
	claimFor := max(time.Minute, 3*w.RequestTimeout)
	slots := make(chan struct{}, w.Concurrency)
	freed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	poll := time.NewTicker(w.PollInterval)
	defer poll.Stop()
	failing := false // logs a store outage once, not every poll
	// claim says whether to ask the store; more, whether the last claim
	// filled every free slot and so may have left due deliveries behind.
	claim, more := true, false
	for {
		if free := w.Concurrency - len(slots); claim && free > 0 && ctx.Err() == nil {
			ds, err := w.Store.ClaimDeliveries(ctx, free, claimFor)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				w.Logger.Warn("webhook claim", "err", err.Error())
				failing = true
			case err == nil && failing:
				w.Logger.Info("webhook claim recovered")
				failing = false
			}
			for _, d := range ds {
				slots <- struct{}{}
				wg.Go(func() {
					defer func() {
						<-slots
						select {
						case freed <- struct{}{}:
						default:
						}
					}()
					w.deliver(context.WithoutCancel(ctx), d)
				})
			}
			if more = err == nil && len(ds) == free; more {
				continue // claim again, as soon as a slot is free
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
			claim = true
		case <-poll.C:
			claim = true
		case <-freed:
			claim = more
		}
	}
}

// deliver makes one attempt and records it.
func (w *Worker) deliver(ctx context.Context, d *mobileapi.Delivery) {
	log := w.Logger.With("delivery", d.ID, "webhook", d.WebhookID, "agency", d.AgencyCode)
	body, err := json.Marshal(NewEvent(d.Event))
	if err != nil {
		log.Error("webhook body", "err", err.Error())
		return
	}
	n := len(d.Attempts) + 1
	start := w.Now()
	a := mobileapi.Attempt{At: start.UTC()}

	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		// Registration validates URLs; this one can never succeed.
		a.Error = "endpoint URL is not an http(s) URL"
		w.record(ctx, log, d, a, mobileapi.DeliveryFailed, nil)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, w.RequestTimeout)
	sig, err := w.Signer.Sign(sctx, body, map[string]any{
		"typ":          SignatureType,
		"cty":          ContentType,
		ParamIssuedAt:  start.Unix(),
		ParamURL:       d.URL,
		ParamWebhookID: d.WebhookID,
	})
	cancel()
	if err != nil {
		// The platform's failure, not the endpoint's: no attempt is
		// counted, and the claim lapses into a retry.
		log.Error("webhook signature", "err", err.Error())
		return
	}
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, w.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		a.Error = "endpoint URL is not valid"
		w.record(ctx, log, d, a, mobileapi.DeliveryFailed, nil)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderEventID, d.Event.ID)
	req.Header.Set(HeaderSignature, sig)

	res, err := w.client.Do(req)
	var retryAfter time.Duration
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxDrain))
		res.Body.Close()
		a.StatusCode = res.StatusCode
		retryAfter = RetryAfter(res.Header.Get("Retry-After"), w.Now())
	} else {
		a.Error = describe(err, w.RequestTimeout)
	}
	a.Duration = time.Since(t0)

	if err == nil && res.StatusCode >= 200 && res.StatusCode < 300 {
		w.record(ctx, log, d, a, mobileapi.DeliverySucceeded, nil)
		return
	}
	// The queue's one retry policy: backoff with full jitter, or the
	// endpoint's Retry-After when longer; dead after MaxAttempts.
	policy := queue.Policy{MaxAttempts: w.MaxAttempts, Backoff: w.Backoff, Cap: BackoffCap}
	if next, dead := policy.Retry(n, d.CreatedAt, w.Now(), retryAfter); dead {
		log.Info("webhook delivery failed", "attempts", n, "status", a.StatusCode, "error", a.Error)
		w.record(ctx, log, d, a, mobileapi.DeliveryFailed, nil)
	} else {
		next = next.UTC()
		w.record(ctx, log, d, a, mobileapi.DeliveryPending, &next)
	}
}

func (w *Worker) record(ctx context.Context, log *slog.Logger, d *mobileapi.Delivery, a mobileapi.Attempt, state mobileapi.DeliveryState, next *time.Time) {
	ctx, cancel := context.WithTimeout(ctx, w.RequestTimeout)
	defer cancel()
	if err := w.Store.RecordClaimedAttempt(ctx, d.ID, d.Claim, a, state, next); err != nil {
		// The claim lapses and the event is delivered again (or, when it
		// lapsed already, another worker has it and records its own):
		// receivers de-duplicate by event id.
		log.Warn("webhook record attempt", "err", err.Error())
	}
}

// describe says why no response came, in words fit for the agency's
// delivery log: never the URL (it may carry a secret), nor anything the
// endpoint could inject beyond a short error string.
func describe(err error, timeout time.Duration) string {
	var (
		dnsErr   *net.DNSError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alertErr tls.AlertError
	)
	switch {
	case errors.Is(err, ErrNotPublic):
		return "refused: the endpoint's address is not public"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "no response within " + timeout.String()
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "DNS: no such host"
		}
		return "DNS lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without a response"
	case errors.As(err, &unknown), errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &verify):
		return "TLS: the endpoint's certificate is not valid"
	case errors.As(err, &record), errors.As(err, &alertErr):
		return "TLS handshake failed"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // url.Error's text repeats the URL
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// FullJitter is the shared retry schedule (internal/backoff).
var FullJitter = backoff.FullJitter

// RetryAfter parses a Retry-After value (delay in seconds or an HTTP date)
// into a delay from now, at most BackoffCap; 0 when absent or malformed.
func RetryAfter(v string, now time.Time) time.Duration {
	return queue.ParseRetryAfter(v, now, BackoffCap)
}
