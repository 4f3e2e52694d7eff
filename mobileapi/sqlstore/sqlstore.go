// Package sqlstore implements mobileapi.Store over database/sql, on the same
// database as the identity provider (SQLite by default, PostgreSQL at
// scale). It imports no driver: the caller opens the *sql.DB (idp/sqlite,
// idp/postgres) and names the dialect. Tables carry an api_ prefix and the
// migrations are recorded in api_schema_migrations, apart from idp's. Times
// are unix milliseconds, as in idp/sqlstore.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Store is the mobile API's store.
type Store struct {
	db     *sql.DB
	d      sqldb.Dialect
	now    func() time.Time
	outbox Outbox
	jobs   Jobs
}

// Outbox enqueues notifications inside the caller's transaction
// (push/sqlstore), so that an inbox message and its push commit together.
// When EnqueueTx fails the caller must roll the transaction back: on
// SQLite some of the rows may have been written.
type Outbox interface {
	EnqueueTx(ctx context.Context, q sqldb.Querier, msgs ...*push.Message) error
}

// Jobs is the durable job queue (push/sqlstore) webhook deliveries ride
// on: enqueued inside the caller's transaction, listed and deleted with
// their webhook, claimed and recorded by the webhook worker.
type Jobs interface {
	EnqueueJobsTx(ctx context.Context, q sqldb.Querier, jobs ...*queue.Job) error
	ListJobsTx(ctx context.Context, q sqldb.Querier, kind queue.Kind, ref string, after *queue.Cursor, limit int) ([]*queue.Job, error)
	DeleteJobsTx(ctx context.Context, q sqldb.Querier, kind queue.Kind, ref string) (int, error)
	ClaimJobs(ctx context.Context, kind queue.Kind, n int, lease time.Duration, perGroup int) ([]*queue.Job, error)
	RecordJob(ctx context.Context, o queue.Outcome) error
}

// WithJobs puts webhook deliveries on the job queue j. A store without one
// refuses to create deliveries (an agency with webhooks gets an error, not
// silence).
func WithJobs(j Jobs) Option { return func(s *Store) { s.jobs = j } }

// WithOutbox makes every inbox message a transition writes enqueue its
// notification in the same transaction.
func WithOutbox(o Outbox) Option { return func(s *Store) { s.outbox = o } }

var (
	_ mobileapi.Store          = (*Store)(nil)
	_ mobileapi.BlobReferences = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithNow sets the clock that stamps records.
func WithNow(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns a Store over db. Call Migrate before use.
func New(db *sql.DB, d sqldb.Dialect, opts ...Option) *Store {
	s := &Store{db: db, d: d, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Migrate applies the migrations not yet applied.
func (s *Store) Migrate(ctx context.Context) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return fmt.Errorf("migrate mobile API store: %w", err)
	}
	m := sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "api_schema_migrations", Now: s.now}
	return m.Migrate(ctx, migs, 0)
}

// CheckSchema reports whether the database holds exactly this binary's
// migrations, changing nothing (sqldb.Migrator.Check).
func (s *Store) CheckSchema(ctx context.Context) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return fmt.Errorf("mobile API store: %w", err)
	}
	return sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "api_schema_migrations"}.Check(ctx, migs)
}

// clock returns the store's time, in UTC, rounded down to what is stored.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// inTx runs fn in a write transaction.
func (s *Store) inTx(ctx context.Context, op string, fn func(q sqldb.Querier) error) error {
	return sqldb.InTx(ctx, s.db, s.d, op, fn)
}

func newID(prefix string) string { return mobileapi.NewID(prefix) }
