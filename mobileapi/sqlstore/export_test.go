package sqlstore

import "time"

// Clock returns the store's clock, for a test to share it with the job
// queue's store.
func (s *Store) Clock() func() time.Time { return s.now }
