package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/blob/fsblob"
)

// defaultBlobSweepEvery is how often `onedoor serve` sweeps orphaned blobs.
const defaultBlobSweepEvery = 15 * time.Minute

// sweepBlobs deletes the blobs older than grace that no attachment or
// document names, holding a lock on the database so one process at a time
// sweeps (replicas, and an admin command beside them). Sweeping is
// idempotent, so a process that waited for the lock sweeps what is left.
func (m *Main) sweepBlobs(ctx context.Context, blobs mobileapi.SweptBlobs, grace time.Duration) (int, error) {
	var n int
	err := m.Store.WithLock(ctx, "api-blob-sweep", func(ctx context.Context) error {
		var err error
		n, err = mobileapi.SweepBlobs(ctx, blobs, m.APIStore, m.Now().Add(-grace))
		return err
	})
	return n, err
}

// sweepLoop sweeps orphaned blobs every interval (with jitter, so replicas
// started together do not queue on the lock) until ctx ends.
func (m *Main) sweepLoop(ctx context.Context, every time.Duration) {
	defer m.wg.Done()
	for {
		t := time.NewTimer(every/2 + rand.N(every)) //nolint:gosec // jitter, not a secret
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		n, err := m.sweepBlobs(ctx, m.Blobs, mobileapi.OrphanGrace)
		switch {
		case err != nil && ctx.Err() == nil:
			m.Logger.Warn("blob sweep", "deleted", n, "err", err)
		case n > 0:
			m.Logger.Info("blob sweep", "deleted", n)
		}
	}
}

// minSweepGrace is the shortest grace the admin command accepts: uploads in
// flight (bounded by the request timeout) must never lose their file.
const minSweepGrace = 5 * time.Minute

// blobsCmd is `onedoor blobs sweep`: one sweep now, as `serve` does
// periodically.
func blobsCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "sweep" {
		return usageError("blobs: want sweep")
	}
	var blobDir string
	grace := mobileapi.OrphanGrace
	m, fs, err := adminMain(ctx, "blobs sweep", args[1:], env, func(fs *flag.FlagSet) {
		fs.StringVar(&blobDir, "blob-dir", "", "the blob directory the servers use (default DATA-DIR/blobs; required with --postgres-dsn)")
		fs.DurationVar(&grace, "grace", grace, "sweep only blobs older than this (at least 5m: uploads in flight keep theirs)")
	})
	if err != nil {
		return err
	}
	defer m.Close()
	switch {
	case fs.NArg() != 0:
		return usageError("blobs sweep: unexpected argument %q", fs.Arg(0))
	case grace < minSweepGrace:
		return usageError("blobs sweep: --grace must be at least %s", minSweepGrace)
	case m.Config.PostgresDSN != "" && blobDir == "":
		return usageError("blobs sweep: with --postgres-dsn, --blob-dir must name the directory the replicas share")
	}
	m.Config.BlobDir = blobDir
	blobs, err := fsblob.New(m.Config.blobDir())
	if err != nil {
		return err
	}
	defer blobs.Close()
	n, err := m.sweepBlobs(ctx, blobs, grace)
	if err != nil {
		return fmt.Errorf("blobs sweep: %w (deleted %d)", err, n)
	}
	return printJSON(stdout, map[string]int{"deleted": n})
}
