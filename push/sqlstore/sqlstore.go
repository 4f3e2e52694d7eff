// Package sqlstore implements push.Store over database/sql, on the same
// database as the rest of OneDoor (SQLite by default, PostgreSQL at scale),
// so that a state change and its notification commit together: producers
// call EnqueueTx inside their own transaction. Tables carry a push_ prefix
// and migrations are recorded in push_schema_migrations. Times are unix
// milliseconds.
package sqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Store is push's store.
type Store struct {
	db  *sql.DB
	d   sqldb.Dialect
	now func() time.Time
}

var _ push.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithNow sets the clock that stamps records and decides what is due.
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
		return fmt.Errorf("migrate push store: %w", err)
	}
	m := sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "push_schema_migrations", Now: s.now}
	return m.Migrate(ctx, migs, 0)
}

// CheckSchema reports whether the database holds exactly this binary's
// migrations, changing nothing.
func (s *Store) CheckSchema(ctx context.Context) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return fmt.Errorf("push store: %w", err)
	}
	return sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "push_schema_migrations"}.Check(ctx, migs)
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

func (s *Store) inTx(ctx context.Context, op string, fn func(q sqldb.Querier) error) error {
	return sqldb.InTx(ctx, s.db, s.d, op, fn)
}

func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func invalidInput(op, msg string) error { return fmt.Errorf("%s: %s: %w", op, msg, idp.ErrInvalid) }

// addressHash keys an installation's provider address, unique per citizen.
func addressHash(p push.Platform, address string) string {
	h := sha256.Sum256([]byte(string(p) + "\x00" + address))
	return hex.EncodeToString(h[:])
}

// RegisterInstallation implements push.InstallationStore.
func (s *Store) RegisterInstallation(ctx context.Context, in *push.Installation) (bool, error) {
	const op = "register installation"
	switch {
	case in.CitizenID == "":
		return false, invalidInput(op, "citizen_id is required")
	case in.Platform != push.FCM && in.Platform != push.APNs && in.Platform != push.WebPush:
		return false, invalidInput(op, "unknown platform")
	case (in.Platform == push.WebPush) != (in.Subscription != nil):
		return false, invalidInput(op, "a subscription is for webpush, a token for the others")
	case in.Platform != push.WebPush && in.Token == "":
		return false, invalidInput(op, "token is required")
	}
	address := in.Token
	if in.Subscription != nil {
		b, err := json.Marshal(in.Subscription)
		if err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
		address = string(b)
	}
	hash := addressHash(in.Platform, in.Address())
	created := false
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := s.clock()
		var id string
		var createdAt int64
		// Only the citizen's own installations are looked at: whether
		// another citizen holds the address must not change the answer.
		err := q.QueryRowContext(ctx, `SELECT id, created_at FROM push_installations WHERE citizen_id = $1 AND address_hash = $2`+s.d.ForUpdate(),
			in.CitizenID, hash).Scan(&id, &createdAt)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			var n int
			if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_installations WHERE citizen_id = $1`, in.CitizenID).Scan(&n); err != nil {
				return sqldb.Err(op, err)
			}
			if n >= push.MaxInstallations {
				return fmt.Errorf("%s: %w", op, push.ErrQuota)
			}
			in.ID, in.CreatedAt, in.UpdatedAt = newID("ins_"), now, now
			_, err := q.ExecContext(ctx, `INSERT INTO push_installations
				(id, citizen_id, platform, address_hash, address, locale, device_id, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
				in.ID, in.CitizenID, string(in.Platform), hash, address, in.Locale, in.DeviceID, sqldb.MS(now))
			created = true
			return sqldb.Err(op, err)
		case err != nil:
			return sqldb.Err(op, err)
		}
		in.ID, in.CreatedAt, in.UpdatedAt = id, sqldb.FromMS(createdAt), now
		_, err = q.ExecContext(ctx, `UPDATE push_installations SET locale = $1, device_id = $2, address = $3, updated_at = $4 WHERE id = $5`,
			in.Locale, in.DeviceID, address, sqldb.MS(now), id)
		return sqldb.Err(op, err)
	})
	return created, err
}

const installationColumns = `id, citizen_id, platform, address, locale, device_id, created_at, updated_at`

func scanInstallation(r sqldb.Scanner) (*push.Installation, error) {
	var (
		in                 push.Installation
		platform, address  string
		created, updatedAt int64
	)
	if err := r.Scan(&in.ID, &in.CitizenID, &platform, &address, &in.Locale, &in.DeviceID, &created, &updatedAt); err != nil {
		return nil, err
	}
	in.Platform, in.CreatedAt, in.UpdatedAt = push.Platform(platform), sqldb.FromMS(created), sqldb.FromMS(updatedAt)
	if in.Platform == push.WebPush {
		in.Subscription = new(push.Subscription)
		if err := json.Unmarshal([]byte(address), in.Subscription); err != nil {
			return nil, fmt.Errorf("installation %s: subscription: %w", in.ID, err)
		}
	} else {
		in.Token = address
	}
	return &in, nil
}

// ListInstallations implements push.InstallationStore.
func (s *Store) ListInstallations(ctx context.Context, citizenID string) ([]*push.Installation, error) {
	const op = "list installations"
	rows, err := s.db.QueryContext(ctx, `SELECT `+installationColumns+` FROM push_installations WHERE citizen_id = $1 ORDER BY created_at, id`, citizenID)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*push.Installation
	for rows.Next() {
		in, err := scanInstallation(rows)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		out = append(out, in)
	}
	return out, sqldb.Err(op, rows.Err())
}

// DeleteInstallation implements push.InstallationStore.
func (s *Store) DeleteInstallation(ctx context.Context, citizenID, id string) error {
	const op = "delete installation"
	res, err := s.db.ExecContext(ctx, `DELETE FROM push_installations WHERE id = $1 AND citizen_id = $2`, id, citizenID)
	return sqldb.NotFoundIfNone(op, res, err)
}

// DeleteDeviceInstallations implements push.InstallationStore.
func (s *Store) DeleteDeviceInstallations(ctx context.Context, deviceID string) (int, error) {
	const op = "delete a device's installations"
	if deviceID == "" {
		return 0, invalidInput(op, "device_id is required")
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM push_installations WHERE device_id = $1`, deviceID)
	if err != nil {
		return 0, sqldb.Err(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), sqldb.Err(op, err)
}

// prefsDoc is the stored form of push.Preferences.
type prefsDoc struct {
	TimeZone string                     `json:"time_zone,omitempty"`
	Quiet    *push.QuietHours           `json:"quiet,omitempty"`
	Kinds    map[push.Kind]push.Channel `json:"kinds,omitempty"`
	Services map[string]servicePrefsDoc `json:"services,omitempty"`
}

type servicePrefsDoc struct {
	Kinds    map[push.Kind]push.Channel `json:"kinds,omitempty"`
	FullText bool                       `json:"full_text,omitempty"`
}

func decodePrefs(citizenID, doc string, updated int64) (*push.Preferences, error) {
	var d prefsDoc
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		return nil, fmt.Errorf("preferences of a citizen: %w", err)
	}
	p := &push.Preferences{CitizenID: citizenID, TimeZone: d.TimeZone, Quiet: d.Quiet, Kinds: d.Kinds, UpdatedAt: sqldb.FromMS(updated)}
	if p.TimeZone == "" {
		p.TimeZone = push.DefaultTimeZone
	}
	if len(d.Services) > 0 {
		p.Services = make(map[string]push.ServicePreferences, len(d.Services))
		for k, v := range d.Services {
			p.Services[k] = push.ServicePreferences(v)
		}
	}
	return p, nil
}

// GetPreferences implements push.PreferenceStore.
func (s *Store) GetPreferences(ctx context.Context, citizenID string) (*push.Preferences, error) {
	const op = "get notification preferences"
	var (
		doc     string
		updated int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT doc, updated_at FROM push_preferences WHERE citizen_id = $1`, citizenID).Scan(&doc, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return push.DefaultPreferences(citizenID), nil
	}
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	return decodePrefs(citizenID, doc, updated)
}

// PutPreferences implements push.PreferenceStore. In the same transaction
// the citizen's messages held back by quiet hours become due: the
// dispatcher holds them back again if the new preferences still say so,
// until the new end.
func (s *Store) PutPreferences(ctx context.Context, p *push.Preferences) error {
	const op = "put notification preferences"
	if p.CitizenID == "" {
		return invalidInput(op, "citizen_id is required")
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	d := prefsDoc{TimeZone: p.TimeZone, Quiet: p.Quiet, Kinds: p.Kinds}
	if len(p.Services) > 0 {
		d.Services = make(map[string]servicePrefsDoc, len(p.Services))
		for k, v := range p.Services {
			d.Services[k] = servicePrefsDoc(v)
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	now := s.clock()
	err = s.inTx(ctx, op, func(q sqldb.Querier) error {
		if _, err := q.ExecContext(ctx, `INSERT INTO push_preferences (citizen_id, doc, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (citizen_id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`,
			p.CitizenID, string(b), sqldb.MS(now)); err != nil {
			return sqldb.Err(op, err)
		}
		return s.ReleaseHeldTx(ctx, q, queue.KindPush, p.CitizenID)
	})
	if err == nil {
		p.UpdatedAt = now
	}
	return err
}

// placeholders returns parameters from, …, from+n-1 for a list of n
// arguments (see arg).
func (s *Store) placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.arg(from + i))
	}
	return b.String()
}

// arg returns parameter n for statements with many. On SQLite it is an
// anonymous "?", numbered by its position in the statement, so such a
// statement must name its parameters in argument order: SQLite keeps "$n"
// and "?n" in a list searched at every occurrence and every bind, which
// made a statement of 1,600 parameters cost milliseconds to prepare and
// bind. PostgreSQL knows only "$n".
func (s *Store) arg(n int) string {
	if s.d == sqldb.SQLite {
		return "?"
	}
	return "$" + strconv.Itoa(n)
}
