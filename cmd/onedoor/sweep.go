package main

import (
	"context"
	"errors"
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
// A refusal (too many orphans) names the database and the directory.
func (m *Main) sweepBlobs(ctx context.Context, blobs mobileapi.SweptBlobs, dir string, grace time.Duration, opts mobileapi.SweepOptions) (mobileapi.SweepResult, error) {
	var res mobileapi.SweepResult
	err := m.Store.WithLock(ctx, "api-blob-sweep", func(ctx context.Context) error {
		var err error
		res, err = mobileapi.SweepBlobs(ctx, blobs, m.APIStore, m.Now().Add(-grace), opts)
		return err
	})
	if tm := (*mobileapi.TooManyOrphansError)(nil); errors.As(err, &tm) {
		err = fmt.Errorf("%w; database %s, blob directory %s: check that they belong together (the --postgres-dsn, --data-dir and --blob-dir the servers use), list the files with `onedoor blobs sweep --dry-run`, and delete them with --force only if they are truly orphans", err, m.Config.StoreName(), absPath(dir))
	}
	return res, err
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
		// Never forced: a refusal is logged for an operator to look at.
		res, err := m.sweepBlobs(ctx, m.Blobs, m.Config.blobDir(), mobileapi.OrphanGrace, mobileapi.SweepOptions{})
		switch {
		case err != nil && ctx.Err() == nil:
			m.Logger.Error("blob sweep", "seen", res.Seen, "orphans", res.Orphans, "deleted", res.Deleted, "err", err)
		case res.Deleted > 0:
			m.Logger.Info("blob sweep", "deleted", res.Deleted)
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
	var opts mobileapi.SweepOptions
	grace := mobileapi.OrphanGrace
	m, fs, err := adminMain(ctx, "blobs sweep", args[1:], env, func(fs *flag.FlagSet) {
		fs.StringVar(&blobDir, "blob-dir", "", "the blob directory the servers use (default DATA-DIR/blobs; required with --postgres-dsn)")
		fs.DurationVar(&grace, "grace", grace, "sweep only blobs older than this (at least 5m: uploads in flight keep theirs)")
		fs.BoolVar(&opts.DryRun, "dry-run", false, "delete nothing; list the blobs that would be deleted")
		fs.BoolVar(&opts.Force, "force", false, "delete the orphans even when they are more than 10% of the blobs (the sweep refuses otherwise: usually a wrong database or directory)")
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
	res, err := m.sweepBlobs(ctx, blobs, m.Config.blobDir(), grace, opts)
	if err != nil {
		return fmt.Errorf("blobs sweep: %w (deleted %d)", err, res.Deleted)
	}
	if opts.DryRun {
		keys := res.Keys
		if keys == nil {
			keys = []string{}
		}
		return m.printJSON(stdout, map[string]any{"seen": res.Seen, "would_delete": keys})
	}
	return m.printJSON(stdout, map[string]int{"seen": res.Seen, "deleted": res.Deleted})
}
