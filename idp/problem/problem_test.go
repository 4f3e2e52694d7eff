package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

func TestFrom(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		typ    string
		detail string
	}{
		{"not found", fmt.Errorf("get device: %w", idp.ErrNotFound), http.StatusNotFound, TypeNotFound, ""},
		{"conflict", fmt.Errorf("create: %w", idp.ErrConflict), http.StatusConflict, TypeConflict, ""},
		{"invalid keeps the validation message", fmt.Errorf("name too long: %w", idp.ErrInvalid), http.StatusBadRequest, TypeInvalid, "name too long: invalid"},
		{"expired", fmt.Errorf("login request: %w", idp.ErrExpired), http.StatusGone, TypeExpired, ""},
		{"unavailable", fmt.Errorf("get: %w", idp.ErrUnavailable), http.StatusServiceUnavailable, TypeUnavailable, ""},
		// A timed-out read of a missing record is an outage, not an absence.
		{"unavailable wins", errors.Join(idp.ErrNotFound, idp.ErrUnavailable), http.StatusServiceUnavailable, TypeUnavailable, ""},
		{"unknown is internal without detail", errors.New("pq: relation idp_citizens does not exist"), http.StatusInternalServerError, TypeInternal, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := From(tc.err)
			if p.Status != tc.status || p.Type != tc.typ || p.Detail != tc.detail || p.Title == "" {
				t.Fatalf("From(%v) = %+v, want status %d type %s detail %q", tc.err, p, tc.status, tc.typ, tc.detail)
			}
			if (p.Status == http.StatusServiceUnavailable) != (p.RetryAfter > 0) {
				t.Fatalf("RetryAfter = %v on status %d: only outages ask to retry", p.RetryAfter, p.Status)
			}
		})
	}
}

func TestFrom_DetailIsBoundedUTF8(t *testing.T) {
	p := From(fmt.Errorf("%s: %w", strings.Repeat("ế", 300), idp.ErrInvalid))
	if len(p.Detail) > maxDetail || !json.Valid([]byte(`"`+p.Detail+`"`)) {
		t.Fatalf("detail %d bytes", len(p.Detail))
	}
}

func TestProblem_JSON(t *testing.T) {
	b, err := json.Marshal(From(idp.ErrUnavailable))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["type"] != TypeUnavailable || m["status"] != float64(503) || m["title"] == "" {
		t.Fatalf("JSON %s", b)
	}
	if _, ok := m["detail"]; ok {
		t.Fatalf("JSON %s: empty detail must be omitted", b)
	}
	if _, ok := m["RetryAfter"]; ok {
		t.Fatalf("JSON %s: RetryAfter is a header, not a member", b)
	}
}
