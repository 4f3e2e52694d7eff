// Package problem maps the identity provider's sentinel errors to HTTP
// problem details (RFC 9457), for JSON APIs such as the mobile API. It
// imports only the standard library and idp, so any transport can use it;
// idp/web keeps OAuth's own error format.
package problem

import (
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/onedoor/onedoor/idp"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// TypePrefix starts every problem type URI OneDoor defines.
const TypePrefix = "urn:onedoor:problem:"

// Problem types.
const (
	TypeNotFound    = TypePrefix + "not-found"
	TypeConflict    = TypePrefix + "conflict"
	TypeInvalid     = TypePrefix + "invalid-request"
	TypeExpired     = TypePrefix + "expired"
	TypeUnavailable = TypePrefix + "unavailable"
	TypeInternal    = TypePrefix + "internal"
)

// RetryAfter is how long a client should wait after an outage.
const RetryAfter = 2 * time.Second

// maxDetail bounds the detail taken from a validation error.
const maxDetail = 200

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Detail explains this occurrence. Only validation errors carry one
	// (their messages name fields, never data); other errors would leak
	// internals, so their detail stays empty.
	Detail string `json:"detail,omitempty"`
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

// From maps err to a problem. An outage wins over everything it wraps: a
// store that could not answer is never reported as a denial or an absence.
// Unknown errors are 500 with a generic title.
func From(err error) Problem {
	switch {
	case err == nil:
		return Problem{Type: "about:blank", Title: http.StatusText(http.StatusOK), Status: http.StatusOK}
	case errors.Is(err, idp.ErrUnavailable):
		return Problem{Type: TypeUnavailable, Title: "Service temporarily unavailable", Status: http.StatusServiceUnavailable, RetryAfter: RetryAfter}
	case errors.Is(err, idp.ErrInvalid):
		return Problem{Type: TypeInvalid, Title: "Invalid request", Status: http.StatusBadRequest, Detail: detail(err)}
	case errors.Is(err, idp.ErrNotFound):
		return Problem{Type: TypeNotFound, Title: "Not found", Status: http.StatusNotFound}
	case errors.Is(err, idp.ErrExpired):
		return Problem{Type: TypeExpired, Title: "Expired", Status: http.StatusGone}
	case errors.Is(err, idp.ErrConflict):
		return Problem{Type: TypeConflict, Title: "Conflict", Status: http.StatusConflict}
	}
	return Problem{Type: TypeInternal, Title: "Internal error", Status: http.StatusInternalServerError}
}

// detail is the validation message, cut to maxDetail bytes on a rune
// boundary.
func detail(err error) string {
	msg := err.Error()
	if len(msg) <= maxDetail {
		return msg
	}
	msg = msg[:maxDetail]
	for !utf8.ValidString(msg) {
		msg = msg[:len(msg)-1]
	}
	return msg
}
