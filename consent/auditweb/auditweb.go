// Package auditweb publishes the access log's tree for outsiders over
// net/http, read-only and without a token: the latest checkpoint with the
// witnesses' cosignatures, consistency proofs between two sizes, and the
// keys to check them with. Citizens' inclusion proofs are on the mobile
// API (they are personal).
package auditweb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/onedoor/onedoor/consent"
)

// Routes, under the IdP's origin.
const (
	PathCheckpoint  = "/audit/v1/checkpoint"
	PathConsistency = "/audit/v1/consistency"
	PathKeys        = "/audit/v1/keys"
)

// Handler serves the routes.
type Handler struct {
	Store consent.WitnessStore
	// LogKey is the checkpoints' verifier key; Witnesses and Quorum are
	// the configured witnesses.
	LogKey    string
	Witnesses []*consent.Witness
	Quorum    int
	// Timeout bounds each request's store calls; 0 means 10 s.
	Timeout time.Duration
	// Prefix is the issuer's base path the routes are under ("" at the
	// root).
	Prefix string
}

// Mount adds the routes to m.
func (h *Handler) Mount(m *http.ServeMux) {
	m.HandleFunc("GET "+h.Prefix+PathCheckpoint, h.checkpoint)
	m.HandleFunc("GET "+h.Prefix+PathConsistency, h.consistency)
	m.HandleFunc("GET "+h.Prefix+PathKeys, h.keys)
}

func (h *Handler) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	d := h.Timeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return context.WithTimeout(r.Context(), d)
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.ctx(r)
	defer cancel()
	// With witnesses, the latest checkpoint a quorum cosigned: an app
	// that checks cosignatures cannot use a newer one yet.
	_, n, err := (&consent.Published{Store: h.Store, Witnesses: h.Witnesses, Quorum: h.Quorum}).Checkpoint(ctx)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// A checkpoint changes each interval: caches may keep it briefly.
	w.Header().Set("Cache-Control", "public, max-age=10")
	_, _ = w.Write([]byte(n))
}

// Consistency is the answer of GET /audit/v1/consistency.
type Consistency struct {
	From  int64    `json:"from"`
	To    int64    `json:"to"`
	Proof [][]byte `json:"proof"` // tree hashes, base64 (RFC 6962 order, as tlog.ProveTree)
}

func (h *Handler) consistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err1 := size(q, "from")
	to, err2 := size(q, "to")
	if err := errors.Join(err1, err2); err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	p, err := consent.ProveConsistency(ctx, h.Store, from, to)
	if err != nil {
		fail(w, err)
		return
	}
	// Proofs between two sizes never change.
	w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
	writeJSON(w, http.StatusOK, Consistency{From: from, To: to, Proof: hashes(p)})
}

// Keys is the answer of GET /audit/v1/keys.
type Keys struct {
	Origin    string   `json:"origin"`
	LogKey    string   `json:"log_key"`
	Witnesses []string `json:"witnesses"`
	Quorum    int      `json:"quorum"`
}

func (h *Handler) keys(w http.ResponseWriter, _ *http.Request) {
	k := Keys{Origin: consent.CheckpointOrigin, LogKey: h.LogKey, Witnesses: []string{}, Quorum: h.Quorum}
	for _, wt := range h.Witnesses {
		k.Witnesses = append(k.Witnesses, wt.String())
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, k)
}

func hashes[T ~[]tlog.Hash](p T) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// size reads one query parameter as a tree size.
func size(q map[string][]string, name string) (int64, error) {
	v := q[name]
	if len(v) != 1 {
		return 0, fmt.Errorf("%s must be given once: %w", name, consent.ErrInvalid)
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 || v[0] != strconv.FormatInt(n, 10) {
		return 0, fmt.Errorf("%s must be a tree size (a decimal integer): %w", name, consent.ErrInvalid)
	}
	return n, nil
}

// problem is an RFC 9457 problem document (the type URIs are the mobile
// API's).
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func fail(w http.ResponseWriter, err error) {
	p := problem{Type: "urn:onedoor:problem:internal", Title: "Internal error", Status: http.StatusInternalServerError}
	switch {
	case errors.Is(err, consent.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		p = problem{Type: "urn:onedoor:problem:unavailable", Title: "Service temporarily unavailable", Status: http.StatusServiceUnavailable}
		w.Header().Set("Retry-After", "2")
	case errors.Is(err, consent.ErrNotFound):
		p = problem{Type: "urn:onedoor:problem:not-found", Title: "Not found", Status: http.StatusNotFound, Detail: "no published checkpoint yet"}
	case errors.Is(err, consent.ErrInvalid):
		// Input errors name parameters and sizes, never data.
		p = problem{Type: "urn:onedoor:problem:invalid-request", Title: "Invalid request", Status: http.StatusBadRequest, Detail: err.Error()}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSONType(w, p.Status, p, "application/problem+json")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONType(w, status, v, "application/json")
}

func writeJSONType(w http.ResponseWriter, status int, v any, ct string) {
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
