package consent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrWitnessRefused means a witness refused the checkpoint for what it is
// (a bad signature, an unknown log, or a consistency proof that fails from
// the size it holds): after a rewrite of history, no retry helps.
var ErrWitnessRefused = errors.New("the witness refused the checkpoint")

// Kinds of refusal (each also ErrWitnessRefused), to tell an operator
// what to fix.
var (
	// ErrWitnessUnknownLog: the witness answered 403 or 404, it does not
	// know the log's key or origin: a configuration to fix on either side.
	ErrWitnessUnknownLog = errors.New("the witness does not know this log (its key or origin): check the witness's configuration")
	// ErrWitnessFork: the witness answered 422, the consistency proof
	// from the size it holds failed: the log was rewritten below it.
	ErrWitnessFork = errors.New("the consistency proof from the size the witness holds failed: a fork of the log")
	// ErrWitnessBadRequest: the witness answered 400 (a malformed request).
	ErrWitnessBadRequest = errors.New("the witness rejected the request as malformed")
)

// Cosigner sends each new checkpoint to the witnesses (c2sp.org/tlog-witness
// add-checkpoint) and stores their cosignatures. Run it on every replica:
// a witness that already cosigned a size answers with a conflict, and the
// store keeps one cosignature per witness and size.
type Cosigner struct {
	Store     WitnessStore
	Witnesses []*Witness
	// Client makes the requests; nil means a client with a 10 s timeout
	// that follows no redirects.
	Client *http.Client
	Now    func() time.Time
	// OnRecover, when set, is called when a witness that failed cosigns
	// again, with the number of failures in a row it had.
	OnRecover func(w *Witness, failures int)

	mu      sync.Mutex
	backoff map[string]*retryState
	kick    chan struct{}
}

func (c *Cosigner) kicks() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kick == nil {
		c.kick = make(chan struct{}, 1)
	}
	return c.kick
}

// Nudge makes Run cosign now, after a new checkpoint, rather than at its
// next tick.
func (c *Cosigner) Nudge() {
	select {
	case c.kicks() <- struct{}{}:
	default:
	}
}

type retryState struct {
	next     time.Time
	delay    time.Duration
	failures int
}

// Failures is how many times in a row w failed on this replica (0 after
// a success).
func (c *Cosigner) Failures(w *Witness) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.backoff[witnessID(w)]; r != nil {
		return r.failures
	}
	return 0
}

func witnessID(w *Witness) string { return w.Name + "+" + strconv.FormatUint(uint64(w.KeyHash), 16) }

func (c *Cosigner) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cosigner) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Cosign asks every witness not in backoff that has not cosigned the last
// checkpoint to cosign it, and returns the witnesses' errors joined. A
// witness that fails waits before its next try (1 s doubling to 10 min).
func (c *Cosigner) Cosign(ctx context.Context) error {
	last, err := c.Store.LastCheckpoint(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cosign: %w", err)
	}
	latest, err := c.Store.LatestCosignatures(ctx)
	if err != nil {
		return fmt.Errorf("cosign: %w", err)
	}
	have := map[string]int64{}
	for _, cs := range latest {
		have[cs.Witness+"+"+strconv.FormatUint(uint64(cs.KeyHash), 16)] = cs.Size
	}
	// In parallel: one slow witness (up to the client's timeout) does not
	// hold back the others' cosignatures.
	errs := make([]error, len(c.Witnesses))
	var wg sync.WaitGroup
	for i, w := range c.Witnesses {
		id := witnessID(w)
		old := have[id]
		if old >= last.Size || !c.due(id) {
			continue
		}
		wg.Go(func() {
			if err := c.cosignOne(ctx, w, last, old); err != nil {
				c.failed(id)
				errs[i] = fmt.Errorf("witness %s: %w", w.Name, err)
				return
			}
			c.succeeded(w)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cosigner) due(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.backoff[id]
	return r == nil || !c.now().Before(r.next)
}

func (c *Cosigner) failed(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.backoff == nil {
		c.backoff = map[string]*retryState{}
	}
	r := c.backoff[id]
	if r == nil {
		r = &retryState{delay: time.Second}
		c.backoff[id] = r
	} else {
		r.delay = min(2*r.delay, 10*time.Minute)
	}
	r.failures++
	r.next = c.now().Add(r.delay)
}

func (c *Cosigner) succeeded(w *Witness) {
	c.mu.Lock()
	r := c.backoff[witnessID(w)]
	delete(c.backoff, witnessID(w))
	c.mu.Unlock()
	if r != nil && c.OnRecover != nil {
		c.OnRecover(w, r.failures)
	}
}

// cosignOne sends cp to w from old, the size w is believed to hold. A 409
// names the size w holds: the request is made again from it (a few
// times: another replica may be moving the witness on meanwhile).
func (c *Cosigner) cosignOne(ctx context.Context, w *Witness, cp *Checkpoint, old int64) error {
	for range 3 {
		if old > cp.Size {
			// The witness holds a larger tree than the checkpoint this
			// replica read: another replica's newer checkpoint is progress,
			// not a refusal, when it is stored.
			ahead, err := c.Store.CheckpointAt(ctx, old)
			if err == nil && ahead.Size == old {
				return nil
			}
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			return fmt.Errorf("%w: it holds size %d, past the last checkpoint's %d, and no checkpoint of that size is stored", ErrWitnessRefused, old, cp.Size)
		}
		var proof tlog.TreeProof
		if old > 0 && old < cp.Size {
			p, err := tlog.ProveTree(cp.Size, old, HashReader(ctx, c.Store))
			if err != nil {
				return fmt.Errorf("consistency proof from %d: %w", old, err)
			}
			proof = p
		}
		status, body, err := c.post(ctx, w, AddCheckpointBody(old, proof, cp.Note))
		if err != nil {
			return err
		}
		switch status {
		case http.StatusOK:
			cs, err := ParseCosignature(body, w, cp.Size, cp.Root)
			if err != nil {
				return err
			}
			return c.Store.AddCosignature(ctx, cs)
		case http.StatusConflict:
			n, err := strconv.ParseInt(strings.TrimSuffix(string(body), "\n"), 10, 64)
			if err != nil || n < 0 || len(body) > 24 {
				return errors.New("the witness answered 409 without a size")
			}
			if n == old {
				return errors.New("the witness answered 409 naming the size sent")
			}
			// From the size it holds; when that is cp.Size already
			// (another replica's request, or a cosignature lost before it
			// was stored), a witness cosigns the same checkpoint again.
			old = n
			continue
		case http.StatusForbidden, http.StatusNotFound:
			return fmt.Errorf("%w: %w: HTTP %d: %s", ErrWitnessRefused, ErrWitnessUnknownLog, status, printable(body))
		case http.StatusUnprocessableEntity:
			return fmt.Errorf("%w: %w: HTTP %d: %s", ErrWitnessRefused, ErrWitnessFork, status, printable(body))
		case http.StatusBadRequest:
			return fmt.Errorf("%w: %w: HTTP %d: %s", ErrWitnessRefused, ErrWitnessBadRequest, status, printable(body))
		default:
			return fmt.Errorf("HTTP %d: %s", status, printable(body))
		}
	}
	return errors.New("the witness kept answering 409")
}

func (c *Cosigner) post(ctx context.Context, w *Witness, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCosignResponse+1))
	if err != nil {
		return 0, nil, err
	}
	if len(b) > maxCosignResponse {
		return 0, nil, errors.New("the witness's response is too large")
	}
	return resp.StatusCode, b, nil
}

// printable shortens a witness's error body for an error message.
func printable(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, string(b[:min(len(b), 200)]))
	return strings.TrimSpace(s)
}

// Run cosigns every interval (the retries of witnesses in backoff) and on
// each Nudge until ctx ends, reporting failures to onErr.
func (c *Cosigner) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	kick := c.kicks()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		if err := c.Cosign(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	}
}

// CosignedNote is the last checkpoint's note with the stored witnesses'
// cosignature lines appended (c2sp.org/tlog-cosignature), as served.
func CosignedNote(ctx context.Context, s WitnessStore) (*Checkpoint, string, error) {
	cp, err := s.LastCheckpoint(ctx)
	if err != nil {
		return nil, "", err
	}
	cs, err := s.Cosignatures(ctx, cp.Size)
	if err != nil {
		return nil, "", err
	}
	n := cp.Note
	for _, c := range cs {
		if bytes.Equal(c.Root, cp.Root) {
			n += c.Line()
		}
	}
	return cp, n, nil
}
