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

// SweepBlobs deletes the blobs last written before cutoff that no record
// names: the file of an upload whose record was never written (a crash, a
// failed insert whose clean-up failed too) or of a deleted draft whose
// delete failed. It returns how many it deleted. Pass a cutoff at least
// OrphanGrace in the past.
func SweepBlobs(ctx context.Context, blobs SweptBlobs, refs BlobReferences, cutoff time.Time) (int, error) {
	deleted := 0
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		used, err := refs.ReferencedBlobs(ctx, batch)
		if err != nil {
			return err
		}
		var errs []error
		for _, k := range batch {
			if used[k] {
				continue
			}
			if err := blobs.Delete(ctx, k); err != nil {
				errs = append(errs, err)
				continue
			}
			deleted++
		}
		batch = batch[:0]
		return errors.Join(errs...)
	}
	err := blobs.ListBlobs(ctx, cutoff, func(key string) error {
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
		return deleted, fmt.Errorf("sweep blobs: %w", err)
	}
	return deleted, nil
}
