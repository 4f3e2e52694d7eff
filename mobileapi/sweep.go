package mobileapi

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SweptBlobs lists the keys of stored blobs, for the sweeper of orphans.
type SweptBlobs interface {
	Blobs
	// ListBlobs calls fn with every blob key last written before cutoff,
	// in no particular order; an error from fn stops the walk.
	ListBlobs(ctx context.Context, cutoff time.Time, fn func(key string) error) error
}

// BlobReferences says which blob keys a record still names.
type BlobReferences interface {
	// ReferencedBlobs returns the keys of keys that an application's
	// attachment or result document names.
	ReferencedBlobs(ctx context.Context, keys []string) (map[string]bool, error)
}

// OrphanGrace is how old a blob without a record must be before it is
// swept. A file is written before its record, in the same request, which
// ends within the request timeout (seconds): an hour leaves uploads in
// flight alone with a wide margin, even on a replica whose clock is off.
const OrphanGrace = time.Hour

// sweepBatch is how many keys are looked up in one query.
const sweepBatch = 200

// A sweep that would delete more than sweepRefuseShare of the blobs it saw,
// and more than sweepRefuseMin of them, is refused: a sweep pointed at the
// wrong database (or a blob directory that is not this database's) sees
// every file as an orphan, while real orphans are a few failed uploads.
const (
	sweepRefuseShare = 10 // percent
	sweepRefuseMin   = 20
)

// SweepOptions change what SweepBlobs does.
type SweepOptions struct {
	// Force deletes the orphans even when they are too many a share of
	// the blobs (an operator who checked); never set by a periodic sweep.
	Force bool
	// DryRun deletes nothing: the result lists what would be deleted.
	DryRun bool
}

// SweepResult says what a sweep saw and did.
type SweepResult struct {
	// Seen is how many blobs older than the cutoff were listed; Orphans
	// how many of them no record names.
	Seen, Orphans int
	// Deleted is how many orphans were deleted.
	Deleted int
	// Keys are the orphans' keys, with DryRun only.
	Keys []string
}

// TooManyOrphansError is SweepBlobs' refusal to delete a suspicious share
// of the blobs; nothing was deleted.
type TooManyOrphansError struct {
	Seen, Orphans int
}

func (e *TooManyOrphansError) Error() string {
	return fmt.Sprintf("refused to delete %d of %d blobs as orphans (more than %d%%): the database does not name them, which usually means the blob directory and the database do not belong together", e.Orphans, e.Seen, sweepRefuseShare)
}

// SweepBlobs deletes the blobs last written before cutoff that no record
// names: the file of an upload whose record was never written (a crash, a
// failed insert whose clean-up failed too) or of a deleted draft whose
// delete failed. Pass a cutoff at least OrphanGrace in the past.
//
// It first finds every orphan and deletes only then, so a sweep that would
// delete too many (TooManyOrphansError, unless opts.Force) deletes none.
func SweepBlobs(ctx context.Context, blobs SweptBlobs, refs BlobReferences, cutoff time.Time, opts SweepOptions) (SweepResult, error) {
	var res SweepResult
	var orphans, batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		used, err := refs.ReferencedBlobs(ctx, batch)
		if err != nil {
			return err
		}
		for _, k := range batch {
			if !used[k] {
				orphans = append(orphans, k)
			}
		}
		batch = batch[:0]
		return nil
	}
	err := blobs.ListBlobs(ctx, cutoff, func(key string) error {
		res.Seen++
		batch = append(batch, key)
		if len(batch) < sweepBatch {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return res, fmt.Errorf("sweep blobs: %w", err)
	}
	res.Orphans = len(orphans)
	if opts.DryRun {
		res.Keys = orphans
		return res, nil
	}
	if !opts.Force && res.Orphans > sweepRefuseMin && res.Orphans*100 > res.Seen*sweepRefuseShare {
		return res, &TooManyOrphansError{Seen: res.Seen, Orphans: res.Orphans}
	}
	var errs []error
	for _, k := range orphans {
		if err := blobs.Delete(ctx, k); err != nil {
			if ctx.Err() != nil {
				errs = append(errs, ctx.Err())
				break
			}
			errs = append(errs, err)
			continue
		}
		res.Deleted++
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("sweep blobs: %w", err)
	}
	return res, nil
}
