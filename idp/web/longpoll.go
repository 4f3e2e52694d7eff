package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/onedoor/onedoor/idp/eid"
)

// MaxStatusWait is the longest a login status request may wait for the
// app's decision (?wait=25), below the server's 30 s write timeout.
const MaxStatusWait = 25 * time.Second

// waiters counts the status requests held open, per replica and per client
// address, so a flood of long polls cannot hold every goroutine and socket.
// Waiting holds no store connection; the bound is on memory and sockets.
type waiters struct {
	mu     sync.Mutex
	total  int
	byAddr map[string]int
	// stop ends every wait when the server shuts down.
	stop     context.Context
	stopping context.CancelFunc
}

func newWaiters() *waiters {
	w := &waiters{byAddr: map[string]int{}}
	w.stop, w.stopping = context.WithCancel(context.Background())
	return w
}

// enter reserves a waiter for addr; over a limit it says which.
func (w *waiters) enter(addr string, perReplica, perAddr int) (release func(), replicaFull, addrFull bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.total >= perReplica {
		return nil, true, false
	}
	if w.byAddr[addr] >= perAddr {
		return nil, false, true
	}
	w.total++
	w.byAddr[addr]++
	return sync.OnceFunc(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.total--
		if w.byAddr[addr]--; w.byAddr[addr] <= 0 {
			delete(w.byAddr, addr)
		}
	}), false, false
}

// StopWaiting ends every held status request at once (each answers the
// status as it stands) and every later one answers without waiting. The
// server's graceful shutdown calls it first, so long polls do not hold
// the shutdown for up to MaxStatusWait.
func (s *Server) StopWaiting() { s.waiters.stopping() }

// Waiting returns how many status requests this replica holds open.
func (s *Server) Waiting() int {
	s.waiters.mu.Lock()
	defer s.waiters.mu.Unlock()
	return s.waiters.total
}

// parseWait reads ?wait= (whole seconds, 0 to 25); absent is 0.
func parseWait(q url.Values) (time.Duration, bool) {
	v, ok := q["wait"]
	if !ok {
		return 0, true
	}
	if len(v) != 1 || len(v[0]) == 0 || len(v[0]) > 2 {
		return 0, false
	}
	n, err := strconv.Atoi(v[0])
	// One plain decimal form: no sign, no leading zero.
	if err != nil || n < 0 || time.Duration(n)*time.Second > MaxStatusWait || strconv.Itoa(n) != v[0] {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// loginStatus answers the login page's status requests (and clients
// without JS). With ?wait=N it holds the request until the login is
// decided or expires, or N seconds pass, and answers the same JSON.
func (s *Server) loginStatus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	wait, ok := parseWait(q)
	if !ok {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "wait must be a whole number of seconds from 0 to 25.")
		return
	}
	id := q.Get("id")
	if wait > 0 && eid.ValidRequestID(id) {
		release, replicaFull, addrFull := s.waiters.enter(s.clientKey(r), s.cfg.Limits.WaitersPerReplica, s.cfg.Limits.WaitersPerAddr)
		switch {
		case replicaFull:
			// Another replica may have room: the load balancer picks again.
			w.Header().Set("Retry-After", "2")
			writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Too many waiting requests; try again shortly.")
			return
		case addrFull:
			w.Header().Set("Retry-After", "2")
			writeJSONError(w, http.StatusTooManyRequests, "slow_down", "Too many waiting requests from this address; try again later.")
			return
		}
		defer release()
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.waiters.stop, cancel)
	defer stop()
	lr, st, err := s.eid.WaitLookup(ctx, id, wait, s.cfg.RequestTimeout)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	resp := statusResponse{Status: string(st)}
	// The continuation itself checks that it is the browser that started the
	// login; the URL tells a poller nothing it did not already know.
	if st == eid.StatusApproved || st == eid.StatusDenied {
		resp.RedirectTo = s.cfg.Issuer + PathContinue + "?id=" + url.QueryEscape(lr.ID)
	}
	writeJSON(w, http.StatusOK, resp)
}
