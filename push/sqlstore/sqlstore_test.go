package sqlstore_test

import (
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/pushtest"
	"github.com/onedoor/onedoor/push/queue"
	"github.com/onedoor/onedoor/push/queue/queuetest"
	"github.com/onedoor/onedoor/push/sqlstore"
)

var backends = []struct {
	name string
	open func(t testing.TB) (*sql.DB, sqldb.Dialect)
}{
	{"sqlite", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.SQLite(t), sqldb.SQLite }},
	{"postgres", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.Postgres(t), sqldb.PostgreSQL }},
}

func open(t testing.TB, b func(t testing.TB) (*sql.DB, sqldb.Dialect), opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, _ := openDB(t, b, opts...)
	return s
}

// openDB is open with the database, for tests that reach past the store.
func openDB(t testing.TB, b func(t testing.TB) (*sql.DB, sqldb.Dialect), opts ...sqlstore.Option) (*sqlstore.Store, *sql.DB) {
	t.Helper()
	db, d := b(t)
	s := sqlstore.New(db, d, opts...)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, db
}

func TestStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			pushtest.Run(t, func(t *testing.T, now func() time.Time) pushtest.Store {
				return open(t, b.open, sqlstore.WithNow(now))
			})
		})
	}
}

func TestMigrateTwiceAndCheck(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.open)
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			if err := s.CheckSchema(t.Context()); err != nil {
				t.Fatalf("CheckSchema: %v", err)
			}
		})
	}
}

// TestManyMessages crosses the statement chunks of EnqueueTx and Record
// (500 rows each) and the claim's citizen lists.
func TestManyMessages(t *testing.T) {
	const citizens, messages = 600, 1100
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := open(t, b.open)
			installation := map[string]string{} // citizen -> installation id
			for i := range citizens {
				in := &push.Installation{CitizenID: "c" + strconv.Itoa(i), Platform: push.FCM, Token: "tok" + strconv.Itoa(i), Locale: "vi"}
				if _, err := s.RegisterInstallation(ctx, in); err != nil {
					t.Fatal(err)
				}
				installation[in.CitizenID] = in.ID
			}
			msgs := make([]*push.Message, messages)
			for i := range msgs {
				msgs[i] = &push.Message{CitizenID: "c" + strconv.Itoa(i%citizens), Kind: push.KindResult,
					Title: push.Text{VI: "Kết quả " + strconv.Itoa(i)}, Body: "Approved"}
			}
			if err := s.Enqueue(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
			seqs := map[int64]bool{}
			for _, m := range msgs {
				if m.Seq == 0 || seqs[m.Seq] {
					t.Fatalf("message %s has seq %d (zero or taken)", m.ID, m.Seq)
				}
				seqs[m.Seq] = true
			}
			// Seq orders a citizen's stream.
			got, err := s.MessagesAfter(ctx, "c0", 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].ID != msgs[0].ID || got[1].ID != msgs[citizens].ID || got[0].Seq != msgs[0].Seq {
				t.Fatalf("c0's stream = %+v, want %s then %s", got, msgs[0].ID, msgs[citizens].ID)
			}

			jobs, err := s.Claim(ctx, messages, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) != messages {
				t.Fatalf("claimed %d of %d", len(jobs), messages)
			}
			outs := make([]push.Outcome, len(jobs))
			for i, j := range jobs {
				c := j.Message.CitizenID
				if len(j.Installations) != 1 || j.Installations[0].ID != installation[c] {
					t.Fatalf("job for %s has installations %+v", c, j.Installations)
				}
				outs[i] = push.Outcome{MessageID: j.Message.ID, Claim: j.Claim, State: push.StateAccepted, Delivered: []string{installation[c]}}
				if i%2 == 1 {
					outs[i] = push.Outcome{MessageID: j.Message.ID, Claim: j.Claim, State: push.StateFailed,
						NextAttemptAt: time.Now().Add(time.Hour), LastError: "fcm: status 503"}
				}
				if n, _ := strconv.Atoi(c[1:]); n < citizens-10 {
					outs[i].Unregistered = []string{installation[c]}
				}
			}
			if err := s.Record(ctx, outs); err != nil {
				t.Fatal(err)
			}
			for i, o := range outs {
				m, err := s.GetMessage(ctx, jobs[i].Message.CitizenID, o.MessageID)
				if err != nil {
					t.Fatal(err)
				}
				final := m.State.Final()
				if m.State != o.State || final == (m.Body != "") || m.LastError != o.LastError || len(m.Delivered) != len(o.Delivered) {
					t.Fatalf("message %d after Record = %+v, want state %s", i, m, o.State)
				}
			}
			for i := range citizens {
				l, err := s.ListInstallations(ctx, "c"+strconv.Itoa(i))
				if err != nil {
					t.Fatal(err)
				}
				if want := i >= citizens-10; (len(l) == 1) != want {
					t.Fatalf("citizen c%d has %d installations, want kept=%v", i, len(l), want)
				}
			}
		})
	}
}

// TestMigrationPerCitizenAddress seeds rows before migration 3 and checks
// they survive it: installations keep their ids and owners, and a message
// quiet hours held back is marked so new preferences release it.
func TestMigrationPerCitizenAddress(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := b.open(t)
			now := time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC)
			s := sqlstore.New(db, d, sqlstore.WithNow(func() time.Time { return now }))
			if err := s.MigrateTo(ctx, 2); err != nil {
				t.Fatal(err)
			}
			ms := now.UnixMilli()
			if _, err := db.ExecContext(ctx, `INSERT INTO push_installations (id, citizen_id, platform, address_hash, address, locale, device_id, created_at, updated_at)
				VALUES ('ins_old', 'c1', 'fcm', 'h1', 'tok', 'en', 'dev-1', $1, $1)`, ms); err != nil {
				t.Fatal(err)
			}
			for i, next := range []int64{ms + 3_600_000, ms} { // held back by quiet hours; due
				if _, err := db.ExecContext(ctx, `INSERT INTO push_messages (id, citizen_id, kind, service_code, agency_code, application_id,
					inbox_message_id, title_vi, title_en, body, priority, collapse_key, expires_at, next_attempt_at, created_at, updated_at,
					state, attempts, claim_id, claimed_until, delivered, last_error)
					VALUES ($1, 'c1', 'result', '', '', '', '', '', '', '', 0, '', 0, $2, $3, $3, 'queued', 0, '', 0, '[]', '')`,
					"ntf_"+strconv.Itoa(i), next, ms); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			l, err := s.ListInstallations(ctx, "c1")
			if err != nil || len(l) != 1 || l[0].ID != "ins_old" || l[0].Token != "tok" || l[0].DeviceID != "dev-1" || l[0].Locale != "en" {
				t.Fatalf("installations after the migration: %+v, %v", l, err)
			}
			if err := s.PutPreferences(ctx, push.DefaultPreferences("c1")); err != nil {
				t.Fatal(err)
			}
			jobs, err := s.Claim(ctx, 10, time.Minute)
			if err != nil || len(jobs) != 2 {
				t.Fatalf("claimed %d, %v; want both messages once the preferences changed", len(jobs), err)
			}
		})
	}
}

func TestQueue(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			queuetest.Run(t, func(t *testing.T, now func() time.Time) queue.Store {
				return open(t, b.open, sqlstore.WithNow(now))
			})
		})
	}
}
