package consenttest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/onedoor/onedoor/consent"
)

// Witness is a c2sp.org/tlog-witness witness for tests: it speaks the
// wire protocol (POST /add-checkpoint; 409 with the size it holds; 403,
// 422, 400), checks the checkpoint's signature and the consistency proof
// itself, and cosigns with torchwood's cosignature/v1 signer, an
// implementation independent of consent's verifier.
type Witness struct {
	// Consent is the witness as consent configures it (URL included).
	Consent *consent.Witness
	Server  *httptest.Server

	mu       sync.Mutex
	size     int64
	root     tlog.Hash
	verifier note.Verifier
	signer   *torchwood.CosignatureSigner
	// Fail, when set, answers every request with this status.
	fail     int
	requests int
}

// NewWitness starts a witness named name (its key derived from name) that
// accepts checkpoints signed by the log's verifier.
func NewWitness(t testing.TB, name string, log note.Verifier) *Witness {
	t.Helper()
	seed := sha256.Sum256([]byte("witness " + name))
	s, err := torchwood.NewCosignatureSigner(name, ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	w := &Witness{verifier: log, signer: s}
	w.Server = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.Server.Close)
	cw, err := consent.ParseWitness(s.Verifier().String() + "@" + w.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	w.Consent = cw
	return w
}

// Size is the size of the last checkpoint the witness cosigned.
func (w *Witness) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

// Requests counts add-checkpoint requests.
func (w *Witness) Requests() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests
}

// FailWith makes the witness answer every request with status (0: answer
// normally again).
func (w *Witness) FailWith(status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = status
}

// Reset makes the witness forget the log (as a new witness would).
func (w *Witness) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.size, w.root = 0, tlog.Hash{}
}

func (w *Witness) serve(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/add-checkpoint" {
		http.NotFound(rw, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, 10<<10))
	if err != nil {
		http.Error(rw, "too large", http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests++
	if w.fail != 0 {
		http.Error(rw, "failing as told", w.fail)
		return
	}
	old, proof, signed, err := consent.ParseAddCheckpoint(body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	n, err := note.Open(signed, note.VerifierList(w.verifier))
	if err != nil {
		http.Error(rw, "bad signature", http.StatusForbidden)
		return
	}
	c, err := torchwood.ParseCheckpoint(n.Text)
	if err != nil || c.Origin != consent.CheckpointOrigin {
		http.Error(rw, "unknown log", http.StatusNotFound)
		return
	}
	if old > c.N {
		http.Error(rw, "old size past the checkpoint", http.StatusBadRequest)
		return
	}
	if old != w.size {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", w.size)
		return
	}
	if old > 0 {
		if err := tlog.CheckTree(proof, c.N, c.Hash, old, w.root); err != nil {
			http.Error(rw, "bad consistency proof", http.StatusUnprocessableEntity)
			return
		}
	} else if len(proof) != 0 {
		http.Error(rw, "proof from size 0", http.StatusBadRequest)
		return
	}
	cosigned, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	w.size, w.root = c.N, c.Hash
	// The response is the cosignature lines: what follows the blank line.
	i := strings.LastIndex(string(cosigned), "\n\n")
	_, _ = rw.Write(cosigned[i+2:])
}
