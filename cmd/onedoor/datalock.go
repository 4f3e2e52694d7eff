package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gofrs/flock"
)

// serveLockFile is held by the server of an embedded default's data
// directory for as long as it runs.
const serveLockFile = "serve.lock"

// inProcess reports whether this server is the embedded default's one
// process: SQLite and no Redis. Its DPoP replay set then lives in memory
// (dpop.NewInProcess), which is only sound with no second server on the
// same data; lockDataDir sees to that.
func (c *Config) inProcess() bool { return c.PostgresDSN == "" && c.RedisURL == "" }

// lockDataDir takes the data directory's serve lock, so that a second
// `onedoor serve` on it refuses to start, whatever its other flags (with
// --redis-url too): two processes each keeping their own set of spent DPoP
// proofs could each accept a captured proof once. Admin commands do not
// take it; they never verify proofs. The lock is the operating system's
// (flock, so the directory must be on a local file system), and a crashed
// server leaves none behind.
func (m *Main) lockDataDir() error {
	dir := m.Config.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, serveLockFile)
	l := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ok, err := l.TryLock()
	if err != nil {
		return fmt.Errorf("lock the data directory (%s): %w", absPath(path), err)
	}
	if !ok {
		return fmt.Errorf("another onedoor serve is using the data directory %s: stop it first, or give this one its own --data-dir (the embedded default runs as one process; replicas need PostgreSQL and Redis)", absPath(dir))
	}
	m.dataLock = l
	return nil
}
