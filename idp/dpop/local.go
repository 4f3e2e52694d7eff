package dpop

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// The embedded default runs one process, so the jtis it spent can stay in
// its memory: a proof then costs no write at all. That is sound only under
// three conditions, each kept here or by the caller:
//
//   - One process verifies every proof of the platform. The caller holds a
//     lock that keeps a second server off the same data (onedoor serve
//     locks its data directory).
//   - A restart forgets the set, so a proof an earlier process accepted must
//     not be accepted again. Before accepting proofs up to a time, the
//     process saves a promise (its Horizon) that it accepts none issued
//     after it plus Skew; the next process asks every proof issued before
//     that for a server nonce of its own, which no proof made before it
//     started can carry. A crash and a clean stop are alike, and a clock
//     stepped back across the restart changes nothing.
//   - The wall clock may step back. Entries are dropped, and the lower end
//     of the iat window is kept, by the latest time the process has seen,
//     so an expired proof cannot become fresh again.

// Horizon stores an in-process verifier's promise across restarts.
type Horizon interface {
	// Load returns the saved promise; the zero time when none was saved.
	Load(ctx context.Context) (time.Time, error)
	// Save replaces it.
	Save(ctx context.Context, t time.Time) error
}

// EphemeralHorizon keeps the promise under Key in an ephemeral store,
// for Keep (a year: longer than any clock could have stepped back).
type EphemeralHorizon struct {
	Store idp.Ephemeral
	Key   string
	Keep  time.Duration
}

// Load implements Horizon.
func (h EphemeralHorizon) Load(ctx context.Context) (time.Time, error) {
	b, err := h.Store.Get(ctx, h.Key)
	if errors.Is(err, idp.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ns, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("dpop horizon %q is not a time: %w", h.Key, err)
	}
	return time.Unix(0, ns), nil
}

// Save implements Horizon.
func (h EphemeralHorizon) Save(ctx context.Context, t time.Time) error {
	keep := h.Keep
	if keep <= 0 {
		keep = 365 * 24 * time.Hour
	}
	return h.Store.Set(ctx, h.Key, []byte(strconv.FormatInt(t.UnixNano(), 10)), keep)
}

// Lease is how far ahead of the clock an in-process verifier's promise is
// saved; it is renewed when half of it is left.
const Lease = 10 * time.Second

// renewEvery is how often Run looks at the promise.
var renewEvery = Lease / 10

// LocalMaxJTIs is the default bound of the spent jtis kept in process
// (about 40 bytes each): past it proofs are refused as an outage until old
// ones expire. At one proof every 200 µs the set holds under a million.
const LocalMaxJTIs = 2 << 20

// errLocalFull and errLapsed are outages of the in-process set.
var (
	errLocalFull = fmt.Errorf("the DPoP proofs remembered are at the most this process keeps: %w", idp.ErrUnavailable)
	errLapsed    = fmt.Errorf("the DPoP horizon could not be saved in time: %w", idp.ErrUnavailable)
	// errUnvouchedFull: half the set holds proofs of token requests without
	// a client credential (a flood of them, most likely); such requests are
	// refused while the others go on.
	errUnvouchedFull = fmt.Errorf("the DPoP proofs of token requests without a client credential are at the most this process keeps: %w", idp.ErrUnavailable)
)

// localSpend is the set of spent jtis. Entries live in two generations:
// one inserted while hw was within period of the last turn, and the one
// before; a turn drops the older. An entry inserted when hw was h is kept
// until hw passes h+period, and period is MaxAge+Skew, the longest a proof
// accepted at h stays acceptable.
type localSpend struct {
	period time.Duration
	maxAge time.Duration
	max    int
	// since: proofs issued before since+Skew may have been accepted by an
	// earlier process (its saved promise).
	since time.Time

	// renewMu orders renewals (renew).
	renewMu sync.Mutex

	mu        sync.Mutex
	cur, prev map[[16]byte]struct{}
	// curUnvouched, prevUnvouched count the entries of each generation
	// spent unvouched (Check.Unvouched), which may be at most half of max.
	curUnvouched, prevUnvouched int
	turned                      time.Time // hw at the last turn
	hw                          time.Time // the latest time seen
	promise                     time.Time // saved: nothing issued after promise+Skew is accepted
}

// NewInProcess returns a verifier that keeps spent jtis in this process's
// memory (see the conditions above: the caller keeps every other process
// from verifying proofs of the same platform). It loads the earlier
// process's promise and saves its own before it accepts anything; Run
// must then keep the promise ahead of the clock. Its server nonces are
// keyed for this process alone.
func NewInProcess(ctx context.Context, cfg Config, h Horizon) (*Verifier, error) {
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("dpop nonce key: %w", err)
	}
	mac := hmac.New(sha256.New, cfg.NonceKey)
	mac.Write([]byte("onedoor dpop in-process nonce v1"))
	mac.Write(salt)
	cfg.NonceKey = mac.Sum(nil)
	v := New(cfg, nil)
	since, err := h.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("dpop horizon: %w", err)
	}
	now := v.cfg.Now()
	l := &localSpend{
		period: v.cfg.MaxAge + v.cfg.Skew,
		maxAge: v.cfg.MaxAge,
		max:    cmp.Or(cfg.MaxInProcess, LocalMaxJTIs),
		since:  since,
		cur:    map[[16]byte]struct{}{},
		prev:   map[[16]byte]struct{}{},
		turned: now,
		hw:     now,
	}
	v.local, v.horizon = l, h
	if err := v.renew(ctx); err != nil {
		return nil, fmt.Errorf("dpop horizon: %w", err)
	}
	return v, nil
}

// Run keeps an in-process verifier's promise saved ahead of the clock
// until ctx ends, reporting failures to onErr; while the promise lapses,
// proofs are refused as an outage. It returns at once for a verifier that
// spends jtis in a shared store.
func (v *Verifier) Run(ctx context.Context, onErr func(error)) {
	if v.local == nil {
		return
	}
	t := time.NewTicker(renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !v.local.due(v.cfg.Now()) {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, Lease/4)
			err := v.renew(sctx)
			cancel()
			if err != nil && ctx.Err() == nil && onErr != nil {
				onErr(fmt.Errorf("dpop horizon: %w", err))
			}
		}
	}
}

// renew saves a promise Lease ahead of the latest time seen, then lets the
// set accept proofs up to it. The saved promise never moves back: not below
// an earlier process's (a clock stepped back across a restart), and not
// below this process's own (renewals are taken one at a time, so a slower
// save cannot overwrite a later promise).
func (v *Verifier) renew(ctx context.Context) error {
	l := v.local
	l.renewMu.Lock()
	defer l.renewMu.Unlock()
	l.mu.Lock()
	if l.promise.Sub(l.advance(v.cfg.Now())) >= Lease/2 {
		l.mu.Unlock()
		return nil // renewed by the call this one waited for
	}
	p := l.hw.Add(Lease)
	if p.Before(l.since) {
		p = l.since
	}
	if p.Before(l.promise) {
		p = l.promise
	}
	l.mu.Unlock()
	if err := v.horizon.Save(ctx, p); err != nil {
		return err
	}
	l.mu.Lock()
	l.promise = p
	l.mu.Unlock()
	return nil
}

// due reports whether half the lease is spent.
func (l *localSpend) due(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.promise.Sub(l.advance(now)) < Lease/2
}

// advance moves hw to now when now is later and returns it (l.mu held).
func (l *localSpend) advance(now time.Time) time.Time {
	if now.After(l.hw) {
		l.hw = now
	}
	return l.hw
}

// needsNonce reports whether a proof issued at iat may have been accepted
// by an earlier process.
func (l *localSpend) needsNonce(iat time.Time, skew time.Duration) bool {
	return !l.since.IsZero() && iat.Before(l.since.Add(skew))
}

// spend records key, issued at iat: idp.ErrConflict when it is already
// there, a refusal when iat is older than the latest time seen allows, an
// outage when the set is full, when unvouched proofs (Check.Unvouched)
// already fill half of it and this is one, or when the promise has lapsed.
func (l *localSpend) spend(key [16]byte, iat, now time.Time, unvouched bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	hw := l.advance(now)
	if !hw.Before(l.promise) {
		return errLapsed
	}
	if iat.Before(hw.Add(-l.maxAge)) {
		// The clock allowed it (Verify checked), so the clock is behind the
		// latest time seen: a server fault, not the client's. Refused all
		// the same, since its jti may have been forgotten.
		return fmt.Errorf("the clock is %v behind the latest time this process saw, and the proof is older than that allows; a restart clears it: %w",
			hw.Sub(now).Round(time.Second), idp.ErrUnavailable)
	}
	if hw.Sub(l.turned) >= l.period {
		l.prev, l.cur, l.turned = l.cur, map[[16]byte]struct{}{}, hw
		l.prevUnvouched, l.curUnvouched = l.curUnvouched, 0
	}
	if _, ok := l.cur[key]; ok {
		return idp.ErrConflict
	}
	if _, ok := l.prev[key]; ok {
		return idp.ErrConflict
	}
	if len(l.cur)+len(l.prev) >= l.max {
		return errLocalFull
	}
	if unvouched {
		if l.curUnvouched+l.prevUnvouched >= l.max/2 {
			return errUnvouchedFull
		}
		l.curUnvouched++
	}
	l.cur[key] = struct{}{}
	return nil
}
