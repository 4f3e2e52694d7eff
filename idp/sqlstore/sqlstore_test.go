package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

// errPermanent marks cases that must not wrap any sentinel.
var errPermanent = errors.New("permanent")

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
		{"database closed", errors.New("sql: database is closed"), idp.ErrUnavailable},
		{"postgres admin shutdown", &pgError{"57P01"}, idp.ErrUnavailable},
		{"postgres connection failure", &pgError{"08006"}, idp.ErrUnavailable},
		{"postgres too many connections", &pgError{"53300"}, idp.ErrUnavailable},
		{"postgres statement timeout", &pgError{"57014"}, idp.ErrUnavailable},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), idp.ErrUnavailable},
		{"unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), idp.ErrUnavailable},
		{"sqlite busy snapshot", &liteError{517}, idp.ErrUnavailable},
		{"postgres undefined table", &pgError{"42P01"}, errPermanent},
		{"postgres syntax error", &pgError{"42601"}, errPermanent},
		{"postgres permission denied", &pgError{"42501"}, errPermanent},
		{"postgres not null violation", &pgError{"23502"}, errPermanent},
		{"postgres foreign key violation", &pgError{"23503"}, errPermanent},
		{"sqlite no such table", &liteError{1}, errPermanent},
		{"sqlite corrupt", &liteError{11}, errPermanent},
		{"sqlite not null", &liteError{1299}, errPermanent},
		{"scan of a corrupt row", errors.New(`sql: Scan error on column index 2, name "x": converting driver.Value type string ("x") to a int64: invalid syntax`), errPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dbErr("op", tt.err)
			if tt.want == errPermanent {
				// Permanent: no sentinel a caller would retry or deny on,
				// and the cause kept for the log.
				for _, s := range []error{idp.ErrUnavailable, idp.ErrNotFound, idp.ErrConflict} {
					if errors.Is(got, s) {
						t.Errorf("dbErr(%v) = %v, a permanent error wraps %v", tt.err, got, s)
					}
				}
				if !errors.Is(got, tt.err) {
					t.Errorf("dbErr(%v) = %v, want the cause kept", tt.err, got)
				}
				return
			}
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
		ms, err := migrations(d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if ms[0].Version != 1 {
			t.Errorf("%s: first migration version = %d, want 1", d, ms[0].Version)
		}
	}
}
