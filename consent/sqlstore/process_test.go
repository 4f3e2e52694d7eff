package sqlstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// The helper process: set in the children TestStore_TwoProcesses starts.
const (
	childEnv     = "ONEDOOR_TEST_APPEND_CHILD" // the child's name
	childDSNEnv  = "ONEDOOR_TEST_APPEND_CHILD_DSN"
	childOut     = "onedoor-child: " // prefix of the lines the parent reads
	procWorkers  = 4                 // appending goroutines per process
	procShared   = 300               // entries per process for the shared citizen
	procOthers   = 3                 // further citizens both processes write to
	procPerOther = 40                // entries per process for each of those
	procOwn      = 40                // entries for the process's own citizen
)

// procEntryID names an entry by who appended it, so the parent can check
// that every append a child made is in the log.
func procEntryID(proc, citizen string, i int) string {
	return fmt.Sprintf("log_%s_%s_%d", proc, citizen, i)
}

// procPlan is what each child appends: citizen → number of entries.
func procPlan(proc string) map[string]int {
	plan := map[string]int{"cit_shared": procShared, "cit_own_" + proc: procOwn}
	for i := range procOthers {
		plan[fmt.Sprintf("cit_other_%d", i)] = procPerOther
	}
	return plan
}

// TestStore_TwoProcesses appends for the same citizens from two OS
// processes on one PostgreSQL schema, each also running a checkpointer,
// as two replicas do: every citizen keeps one valid chain with every
// entry either process appended, every checkpoint either signed verifies
// against the one tree, and the log verifies (onedoor audit verify's
// check) during the appends, after them, and after a final checkpoint.
func TestStore_TwoProcesses(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("running as the helper process")
	}
	dsn := dbtest.SchemaDSN(t)
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := migrated(t, db, sqldb.PostgreSQL)
	_, verifier := consenttest.Keys(t, "procs")

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	procs := []string{"p0", "p1"}
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		lines  chan string
		stderr bytes.Buffer
	}
	children := make([]*child, len(procs))
	for i, name := range procs {
		c := &child{lines: make(chan string, 1024)}
		// #nosec G702 -- this test binary itself, with fixed arguments
		c.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperAppendProcess$", "-test.count=1")
		c.cmd.Env = append(os.Environ(), childEnv+"="+name, childDSNEnv+"="+dsn)
		c.cmd.Stderr = &c.stderr
		c.cmd.WaitDelay = 5 * time.Second
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(c.lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if line, ok := strings.CutPrefix(sc.Text(), childOut); ok {
					c.lines <- line
				} else {
					t.Logf("%s: %s", name, sc.Text())
				}
			}
		}()
		children[i] = c
	}
	// Both ready (pool open, first connection made), then both go: the
	// appends overlap.
	for i, c := range children {
		if line := <-c.lines; line != "ready" {
			_ = c.cmd.Wait()
			t.Fatalf("%s: got %q, want ready; stderr: %s", procs[i], line, c.stderr.String())
		}
	}
	for _, c := range children {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
		c.stdin.Close()
	}

	// Verify while both append and checkpoint: it reads each chain's head
	// before its entries, so a log being written verifies too.
	var midReports atomic.Int64
	verifyDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				verifyDone <- nil
				return
			default:
			}
			r, err := consent.Verify(ctx, s, verifier)
			if err != nil || !r.Intact() {
				verifyDone <- fmt.Errorf("verify during the appends: %+v, %v", r, err)
				return
			}
			if midReports.Add(1) >= 3 {
				verifyDone <- nil
				return
			}
		}
	}()

	// Each child reports the checkpoints it signed, then "done".
	signed := map[int64][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	childCommits := make([]int, len(procs))
	for i, c := range children {
		wg.Go(func() {
			for line := range c.lines {
				f := strings.Fields(line)
				if len(f) != 3 || f[0] != "checkpoint" {
					continue
				}
				size, err1 := strconv.ParseInt(f[1], 10, 64)
				root, err2 := base64.StdEncoding.DecodeString(f[2])
				if err1 != nil || err2 != nil {
					t.Errorf("%s: malformed report %q", procs[i], line)
					continue
				}
				mu.Lock()
				if prev, ok := signed[size]; ok && !bytes.Equal(prev, root) {
					t.Errorf("two checkpoints of size %d with different roots", size)
				}
				signed[size] = root
				childCommits[i]++
				mu.Unlock()
			}
		})
	}
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("%s: %v; stderr:\n%s", procs[i], err, c.stderr.String())
		}
	}
	wg.Wait()
	if err := <-verifyDone; err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for i, n := range childCommits {
		if n == 0 {
			t.Errorf("%s signed no checkpoint while appending", procs[i])
		}
	}

	// One valid chain per citizen, holding every entry each child appended.
	want := map[string]map[string]bool{} // citizen → entry ids
	for _, p := range procs {
		for c, n := range procPlan(p) {
			if want[c] == nil {
				want[c] = map[string]bool{}
			}
			for i := range n {
				want[c][procEntryID(p, c, i)] = true
			}
		}
	}
	var total int64
	for c, ids := range want {
		chain := readChain(t, s, c)
		if len(chain) != len(ids) {
			t.Errorf("%s: %d entries, want %d", c, len(chain), len(ids))
		}
		for _, e := range chain {
			if !ids[e.ID] {
				t.Errorf("%s: unexpected or repeated entry %s", c, e.ID)
			}
			delete(ids, e.ID)
		}
		if len(ids) > 0 {
			t.Errorf("%s: %d appended entries missing", c, len(ids))
		}
		total += int64(len(chain))
	}

	// Every checkpoint a child reported is stored as reported; the stored
	// ones grow one tree (Verify recomputes each root from the leaves).
	stored, err := s.Checkpoints(t.Context(), 0, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	bySize := map[int64][]byte{}
	for i, cp := range stored {
		if i > 0 && cp.Size <= stored[i-1].Size {
			t.Errorf("checkpoint sizes out of order: %d after %d", cp.Size, stored[i-1].Size)
		}
		bySize[cp.Size] = cp.Root
	}
	for size, root := range signed {
		if !bytes.Equal(bySize[size], root) {
			t.Errorf("the checkpoint of size %d a child signed is not stored as signed", size)
		}
	}
	if len(stored) != len(signed) {
		t.Errorf("%d checkpoints stored, %d reported by the children", len(stored), len(signed))
	}
	r, err := consent.Verify(t.Context(), s, verifier)
	if err != nil || !r.Intact() {
		t.Fatalf("verify after the appends: %+v, %v", r, err)
	}
	if r.Entries != total || r.Citizens != int64(len(want)) || r.Checkpoints != int64(len(stored)) {
		t.Errorf("report %+v: want %d entries of %d citizens, %d checkpoints", r, total, len(want), len(stored))
	}

	// A last checkpoint commits every head as it is now.
	signer, _ := consenttest.Keys(t, "procs")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier, Batch: 100}
	if _, err := cp.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if last, err := cp.Commit(t.Context()); err != nil || last != nil {
		t.Fatalf("a second final checkpoint: %+v, %v; want nothing to commit", last, err)
	}
	r, err = consent.Verify(t.Context(), s, verifier)
	if err != nil || !r.Intact() {
		t.Fatalf("verify after the final checkpoint: %+v, %v", r, err)
	}
	for c := range want {
		head, err := s.ChainHead(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		leaves, err := s.CitizenLeaves(t.Context(), c, head.Seq-1, 10)
		if err != nil || len(leaves) != 1 || !bytes.Equal(leaves[0].Hash, head.Hash) {
			t.Errorf("%s's head at seq %d is not committed: %+v, %v", c, head.Seq, leaves, err)
		}
	}
	t.Logf("%d entries of %d citizens; %d checkpoints while appending (%v by process), %d verifications during the appends",
		total, len(want), len(stored), childCommits, midReports.Load())
}

// readChain reads a citizen's whole chain and checks it link by link: seq
// from 1 without gap or repeat, each hash its fields', each Prev the
// previous hash, and the stored head at the last entry.
func readChain(t *testing.T, s *sqlstore.Store, citizen string) []*consent.Entry {
	t.Helper()
	var chain []*consent.Entry
	for {
		page, err := s.Chain(t.Context(), citizen, int64(len(chain)), 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			want := int64(len(chain) + 1)
			if e.Seq != want {
				t.Fatalf("%s: seq %d where %d was due", citizen, e.Seq, want)
			}
			if !bytes.Equal(e.ComputeHash(), e.Hash) {
				t.Fatalf("%s seq %d: the hash does not match the entry", citizen, e.Seq)
			}
			var prev []byte
			if len(chain) > 0 {
				prev = chain[len(chain)-1].Hash
			}
			if !bytes.Equal(e.Prev, prev) {
				t.Fatalf("%s seq %d: Prev is not the previous entry's hash", citizen, e.Seq)
			}
			chain = append(chain, e)
		}
		if len(page) < 500 {
			break
		}
	}
	head, err := s.ChainHead(t.Context(), citizen)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) == 0 || head.Seq != int64(len(chain)) || !bytes.Equal(head.Hash, chain[len(chain)-1].Hash) {
		t.Fatalf("%s: head %d, chain of %d", citizen, head.Seq, len(chain))
	}
	return chain
}

// TestHelperAppendProcess is the child of TestStore_TwoProcesses: it
// appends its plan with a few goroutines and runs a checkpointer until
// they are done, reporting each checkpoint it signed on stdout.
func TestHelperAppendProcess(t *testing.T) {
	name := os.Getenv(childEnv)
	if name == "" {
		t.Skip("the helper process of TestStore_TwoProcesses")
	}
	ctx := t.Context()
	db, err := postgres.Open(ctx, os.Getenv(childDSNEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := sqlstore.New(db, sqldb.PostgreSQL)
	fmt.Println(childOut + "ready")
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || line != "go\n" {
		t.Fatalf("waiting for go: %q, %v", line, err)
	}

	// The plan as a list of appends, interleaved across citizens and
	// dealt round robin to the workers.
	type job struct {
		citizen string
		i       int
	}
	plan := procPlan(name)
	citizens := make([]string, 0, len(plan))
	for c := range plan {
		citizens = append(citizens, c)
	}
	slices.Sort(citizens)
	var jobs []job
	for i := 0; ; i++ {
		added := false
		for _, c := range citizens {
			if i < plan[c] {
				jobs = append(jobs, job{c, i})
				added = true
			}
		}
		if !added {
			break
		}
	}

	signer, verifier := consenttest.Keys(t, "procs")
	var (
		stop     atomic.Bool
		cpErr    error
		cpDone   = make(chan struct{})
		appended atomic.Int64
	)
	go func() {
		defer close(cpDone)
		// Small batches, so many checkpoints are signed while both
		// processes append.
		c := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier, Batch: 3}
		for !stop.Load() {
			cp, err := c.Commit(ctx)
			if err != nil {
				cpErr = err
				return
			}
			if cp != nil {
				fmt.Printf("%scheckpoint %d %s\n", childOut, cp.Size, base64.StdEncoding.EncodeToString(cp.Root))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, procWorkers)
	for w := range procWorkers {
		wg.Go(func() {
			for j := w; j < len(jobs); j += procWorkers {
				jb := jobs[j]
				e := &consent.Entry{ID: procEntryID(name, jb.citizen, jb.i), CitizenID: jb.citizen, At: time.Now(),
					Actor: consent.Actor{Agency: "BYT", ClientID: "his-" + name}, Channel: consent.ChannelBroker,
					Items: []string{"name", "birthdate"}, Purpose: "kham-benh", Basis: consent.BasisCitizenRequest,
					Outcome: consent.OutcomeReleased}
				if err := s.Append(ctx, e); err != nil {
					errs <- fmt.Errorf("append %s: %w", e.ID, err)
					return
				}
				appended.Add(1)
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	<-cpDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cpErr != nil {
		t.Errorf("checkpoint: %v", cpErr)
	}
	if int(appended.Load()) != len(jobs) {
		t.Errorf("appended %d of %d", appended.Load(), len(jobs))
	}
}
