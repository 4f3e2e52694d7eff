// Package idp holds the identity provider's domain: citizens, clients, eID
// devices, signing keys and the stores they live in. It imports no framework
// or driver; adapters live in subpackages named after their technology.
package idp

import "errors"

// Sentinel errors every store returns (wrapped) so callers can use errors.Is.
var (
	// ErrNotFound means the record does not exist or has expired.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a record with the same identity already exists, or a
	// single-use entry was already used.
	ErrConflict = errors.New("conflict")
	// ErrExpired means the record exists but may no longer be used.
	ErrExpired = errors.New("expired")
	// ErrInvalid means input failed validation.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable means a backing store could not answer (down, timed out).
	// Transports turn it into 503 with Retry-After, never into a denial.
	ErrUnavailable = errors.New("store unavailable")
)
