// Package postgres opens the scale-mode durable database.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

// Open connects to PostgreSQL through pgx's database/sql driver and checks
// the server answers. An unreachable server gives an error wrapping
// idp.ErrUnavailable.
func Open(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w: %w", idp.ErrInvalid, err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(20)
	// As many idle as open: with fewer, a busy server closes and reopens
	// connections (a backend fork and authentication each) all the time.
	db.SetMaxIdleConns(20)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour) // follow failovers and DNS changes
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: %w: %w", idp.ErrUnavailable, err)
	}
	return db, nil
}

// New returns the store over db. Call Migrate before use.
func New(db *sql.DB, opts ...sqlstore.Option) *sqlstore.Store {
	return sqlstore.New(db, sqlstore.PostgreSQL, opts...)
}

// Describe names the database dsn points at for people (logs, admin
// output): host, port, database and search_path, never the user or the
// password. It reads dsn with pgx's own parser, so a key=value DSN whose
// quoted password holds spaces or "host=" cannot leak part of it.
func Describe(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "postgres (the DSN does not parse)"
	}
	name := fmt.Sprintf("postgres://%s/%s", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
	if sp := cfg.RuntimeParams["search_path"]; sp != "" {
		name += "?search_path=" + url.QueryEscape(sp)
	}
	return name
}
