package fiberapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/onedoor/onedoor/idp/problem"
	"github.com/onedoor/onedoor/represent"
)

// TestRepErr: every error of the representation service is a problem with
// its own status, never a 500; an outage wins over what it wraps.
func TestRepErr(t *testing.T) {
	status := func(err error) int {
		var br *badRequest
		if errors.As(err, &br) {
			return br.status
		}
		return problem.From(err).Status
	}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{represent.InvalidError{{Field: "services/1", Detail: "repeats x"}, {Field: "grantee", Detail: "unknown"}}, http.StatusUnprocessableEntity},
		{fmt.Errorf("resolve: %w", represent.ErrInvalid), http.StatusUnprocessableEntity},
		{fmt.Errorf("grant: %w", represent.ErrNotRepresented), http.StatusForbidden},
		{fmt.Errorf("accept: %w", represent.ErrForbidden), http.StatusForbidden},
		{fmt.Errorf("mandate: %w", represent.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("mandate is accepted: %w", represent.ErrConflict), http.StatusConflict},
		{fmt.Errorf("store: %w", represent.ErrUnavailable), http.StatusServiceUnavailable},
		{errors.Join(represent.ErrUnavailable, represent.ErrNotFound), http.StatusServiceUnavailable},
		{errors.Join(represent.ErrUnavailable, represent.InvalidError{{Field: "x", Detail: "y"}}), http.StatusServiceUnavailable},
	} {
		if got := status(repErr(tc.err)); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.err, got, tc.want)
		}
	}
	var br *badRequest
	if !errors.As(repErr(represent.InvalidError{{Field: "services/1", Detail: "d"}}), &br) || len(br.errs) != 1 || br.errs[0].Pointer != "/services/1" {
		t.Errorf("field errors: %+v", br)
	}
	if p := problem.From(repErr(represent.ErrUnavailable)); p.RetryAfter == 0 {
		t.Error("an outage without Retry-After")
	}
}
