package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

type pgError struct{ code string }

func (e *pgError) Error() string    { return "pg error " + e.code }
func (e *pgError) SQLState() string { return e.code }

type liteError struct{ code int }

func (e *liteError) Error() string { return fmt.Sprintf("sqlite error (%d)", e.code) }
func (e *liteError) Code() int     { return e.code }

func TestDBErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"no rows", sql.ErrNoRows, idp.ErrNotFound},
		{"wrapped no rows", fmt.Errorf("scan: %w", sql.ErrNoRows), idp.ErrNotFound},
		{"postgres unique", &pgError{"23505"}, idp.ErrConflict},
		{"postgres other", &pgError{"57P01"}, idp.ErrUnavailable},
		{"sqlite unique", &liteError{2067}, idp.ErrConflict},
		{"sqlite primary key", &liteError{1555}, idp.ErrConflict},
		{"sqlite text", errors.New("constraint failed: UNIQUE constraint failed: t.id"), idp.ErrConflict},
		{"sqlite busy", &liteError{5}, idp.ErrUnavailable},
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), idp.ErrUnavailable},
		{"deadline", context.DeadlineExceeded, idp.ErrUnavailable},
		{"closed", sql.ErrConnDone, idp.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dbErr("op", tt.err)
			if !errors.Is(got, tt.want) {
				t.Errorf("dbErr(%v) = %v, want wrapping %v", tt.err, got, tt.want)
			}
			if !errors.Is(got, tt.err) && tt.want != idp.ErrNotFound && tt.want != idp.ErrConflict {
				t.Errorf("dbErr(%v) = %v, want the cause kept", tt.err, got)
			}
		})
	}
	if dbErr("op", nil) != nil {
		t.Error("dbErr(nil) != nil")
	}
}

func TestMigrationsLoad(t *testing.T) {
	for _, d := range []Dialect{SQLite, PostgreSQL} {
		ms, err := d.migrations()
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if ms[0].version != 1 {
			t.Errorf("%s: first migration version = %d, want 1", d, ms[0].version)
		}
	}
}
