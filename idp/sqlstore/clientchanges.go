package sqlstore

import "context"

// ClientsVersion returns the client change counter: a number that every
// committed write to the clients changes, whichever process makes it (a
// trigger bumps it inside the writing transaction, migration 0008). The
// identity provider polls it to drop its in-memory client cache.
func (s *Store) ClientsVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT version FROM idp_client_changes WHERE id = 1`).Scan(&v)
	return v, dbErr("clients version", err)
}

// ClientWrites counts the client writes made through this Store value. It
// changes after each write has returned (committed or not), so a cache in
// this process can drop what it read before the write without waiting for
// its next poll of ClientsVersion.
func (s *Store) ClientWrites() uint64 { return s.clientWrites.Load() }

// clientWritten is deferred by every method that writes idp_clients.
func (s *Store) clientWritten() { s.clientWrites.Add(1) }
