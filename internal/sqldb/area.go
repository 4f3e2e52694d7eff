package sqldb

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinels are the errors of an area whose stores do not speak idp's
// (consent, represent): Err translates database errors into them.
type Sentinels struct {
	NotFound, Conflict, Invalid, Unavailable error
	// Pass lists the area's other errors that, like the four above, need
	// no translation when an error already carries them.
	Pass []error
}

// Err translates a database error into the area's sentinels, as Err does
// into idp's. This package's helpers (InTx) speak idp's sentinels, so
// their errors are recognised by what they wrap (the driver's error),
// never by idp's. An error that already carries one of the area's
// sentinels passes through unchanged, and one already naming op is not
// named twice.
func (s Sentinels) Err(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, e := range [...]error{s.NotFound, s.Conflict, s.Invalid, s.Unavailable} {
		if errors.Is(err, e) {
			return err
		}
	}
	for _, e := range s.Pass {
		if errors.Is(err, e) {
			return err
		}
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, s.NotFound)
	case IsUniqueViolation(err):
		return fmt.Errorf("%s: %v: %w", op, err, s.Conflict)
	case IsOutage(err):
		return fmt.Errorf("%s: %w: %w", op, s.Unavailable, err)
	case isBadText(err):
		// Checked inputs never get here; a PostgreSQL encoding refusal
		// still means bad input, not a broken store.
		return fmt.Errorf("%s: %v: %w", op, err, s.Invalid)
	}
	if strings.HasPrefix(err.Error(), op+":") {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isBadText recognises PostgreSQL's refusal of a text parameter: character
// not in repertoire, untranslatable character, invalid text representation.
func isBadText(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch pg.SQLState() {
		case "22021", "22P05", "22P02":
			return true
		}
	}
	return false
}

// TextProblem says what is wrong with v as a TEXT value of at most limit
// bytes, to follow the field's name ("must be UTF-8 text without NUL", "is
// too long"), or "" when nothing is. PostgreSQL refuses invalid UTF-8 and
// NUL where SQLite stores them, so stores check with it to accept and
// refuse the same input on both engines.
func TextProblem(v string, limit int) string {
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return "must be UTF-8 text without NUL"
	}
	if len(v) > limit {
		return "is too long"
	}
	return ""
}

// EncodeList stores a list of strings as a JSON array, "[]" for none.
func EncodeList(items []string) string {
	if items == nil {
		items = []string{}
	}
	b, _ := json.Marshal(items) // strings only: cannot fail
	return string(b)
}

// DecodeList reads a list stored by EncodeList.
func DecodeList(op, s string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("%s: decode list column: %w", op, err)
	}
	return out, nil
}
