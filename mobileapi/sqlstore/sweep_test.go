package sqlstore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/blob/fsblob"
)

// A sweep over files the database does not know deletes them only while
// they are a few (at most 20, or at most 10% of the files it saw); past
// that it deletes none unless forced, and a dry run lists them.
func TestSweepBlobs_RefusesMostFiles(t *testing.T) {
	s := open(t, backends[0].open)
	ctx := t.Context()
	for _, tc := range []struct {
		files  int
		opts   mobileapi.SweepOptions
		refuse bool
		left   int
	}{
		{files: 20, left: 0},                                              // few: swept
		{files: 21, refuse: true, left: 21},                               // many, all of them: refused
		{files: 21, opts: mobileapi.SweepOptions{DryRun: true}, left: 21}, // listed, kept
		{files: 21, opts: mobileapi.SweepOptions{Force: true}, left: 0},   // forced
	} {
		dir := t.TempDir()
		blobs, err := fsblob.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = blobs.Close() })
		old := time.Now().Add(-2 * time.Hour)
		for i := range tc.files {
			k := fmt.Sprintf("applications/app_%02d/attachments/att_x", i)
			if _, err := blobs.Put(ctx, k, strings.NewReader("x"), 10); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(k)), old, old); err != nil {
				t.Fatal(err)
			}
		}
		res, err := mobileapi.SweepBlobs(ctx, blobs, s, time.Now().Add(-mobileapi.OrphanGrace), tc.opts)
		var tm *mobileapi.TooManyOrphansError
		if errors.As(err, &tm) != tc.refuse || (!tc.refuse && err != nil) {
			t.Errorf("%d files %+v: %v, want refused=%v", tc.files, tc.opts, err, tc.refuse)
		}
		if res.Seen != tc.files || res.Orphans != tc.files || res.Deleted != tc.files-tc.left {
			t.Errorf("%d files %+v: %+v", tc.files, tc.opts, res)
		}
		if tc.opts.DryRun && len(res.Keys) != tc.files {
			t.Errorf("dry run listed %d keys, want %d", len(res.Keys), tc.files)
		}
		left := 0
		_ = blobs.ListBlobs(ctx, time.Now(), func(string) error { left++; return nil })
		if left != tc.left {
			t.Errorf("%d files %+v: %d left, want %d", tc.files, tc.opts, left, tc.left)
		}
	}
}
