package sqldb

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var (
	errNotFound    = errors.New("not found")
	errConflict    = errors.New("conflict")
	errInvalid     = errors.New("invalid")
	errUnavailable = errors.New("unavailable")
	errWithdrawn   = errors.New("withdrawn")
	area           = Sentinels{NotFound: errNotFound, Conflict: errConflict, Invalid: errInvalid, Unavailable: errUnavailable, Pass: []error{errWithdrawn}}
)

type pgErr string

func (e pgErr) Error() string    { return "pg " + string(e) }
func (e pgErr) SQLState() string { return string(e) }

func TestSentinels_Err(t *testing.T) {
	own := fmt.Errorf("get x: %w", errWithdrawn)
	for _, tc := range []struct {
		name string
		err  error
		want error  // errors.Is
		msg  string // the whole message
	}{
		{"no rows", sql.ErrNoRows, errNotFound, "get x: not found"},
		{"unique violation", pgErr("23505"), errConflict, "get x: pg 23505: conflict"},
		{"outage", pgErr("57P01"), errUnavailable, "get x: unavailable: pg 57P01"},
		{"text PostgreSQL refuses", pgErr("22021"), errInvalid, "get x: pg 22021: invalid"},
		{"already the area's", own, errWithdrawn, "get x: withdrawn"},
		{"already named", errors.New("get x: boom"), nil, "get x: boom"},
		{"anything else", errors.New("boom"), nil, "get x: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := area.Err("get x", tc.err)
			if (tc.want != nil && !errors.Is(got, tc.want)) || got.Error() != tc.msg {
				t.Errorf("got %v, want %q wrapping %v", got, tc.msg, tc.want)
			}
		})
	}
	if err := area.Err("get x", nil); err != nil {
		t.Errorf("no error: got %v", err)
	}
}

func TestTextProblem(t *testing.T) {
	for _, tc := range []struct {
		v     string
		limit int
		want  string
	}{
		{"abc", 3, ""},
		{"", 0, ""},
		{"abcd", 3, "is too long"},
		{"a\x00b", 10, "must be UTF-8 text without NUL"},
		{"\xff", 10, "must be UTF-8 text without NUL"},
		{strings.Repeat("é", 2), 4, ""},
	} {
		if got := TextProblem(tc.v, tc.limit); got != tc.want {
			t.Errorf("TextProblem(%q, %d) = %q, want %q", tc.v, tc.limit, got, tc.want)
		}
	}
}

func TestList(t *testing.T) {
	for _, items := range [][]string{nil, {}, {"a"}, {"a", "b\"c", "é"}} {
		enc := EncodeList(items)
		got, err := DecodeList("op", enc)
		if err != nil || len(got) != len(items) || strings.Join(got, "\x1f") != strings.Join(items, "\x1f") {
			t.Errorf("%q: stored %q, read back %q, %v", items, enc, got, err)
		}
	}
	if EncodeList(nil) != "[]" {
		t.Errorf("EncodeList(nil) = %q, want []", EncodeList(nil))
	}
	if _, err := DecodeList("op", "{"); err == nil || !strings.HasPrefix(err.Error(), "op: ") {
		t.Errorf("a corrupt column: %v, want an error naming op", err)
	}
}
