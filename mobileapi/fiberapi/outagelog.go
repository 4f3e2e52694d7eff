package fiberapi

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// DefaultOutageLogEvery is how often a store outage's warning is repeated
// per cause.
const DefaultOutageLogEvery = 30 * time.Second

// outageLog logs the first failing request of each cause of a store outage
// at once, with its route and request id, and then at most one line per
// cause per interval counting the requests that failed the same way: during
// an outage every request fails, and a line for each would bury the logs
// (and cost more than the request) at thousands a second.
type outageLog struct {
	logger *slog.Logger
	every  time.Duration

	mu     sync.Mutex
	closed bool
	causes map[string]*outageCause
}

type outageCause struct {
	suppressed int
	timer      *time.Timer
}

// maxOutageCauses bounds the causes tracked at once; others share one.
const maxOutageCauses = 64

func newOutageLog(logger *slog.Logger, every time.Duration) *outageLog {
	if every <= 0 {
		every = DefaultOutageLogEvery
	}
	return &outageLog{logger: logger, every: every, causes: map[string]*outageCause{}}
}

// warn records one failed request.
func (o *outageLog) warn(route, requestID string, err error) {
	msg := err.Error()
	cause := outageCauseOf(msg)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	if _, ok := o.causes[cause]; !ok && len(o.causes) >= maxOutageCauses {
		cause = "other"
	}
	if c, ok := o.causes[cause]; ok {
		c.suppressed++
		o.mu.Unlock()
		return
	}
	c := &outageCause{}
	c.timer = time.AfterFunc(o.every, func() { o.flush(cause, c) })
	o.causes[cause] = c
	o.mu.Unlock()
	o.logger.Warn("api store unavailable", "cause", cause, "route", route, "request_id", requestID, "err", msg)
}

// flush ends a cause's interval, logging how many more requests failed
// with it.
func (o *outageLog) flush(cause string, c *outageCause) {
	o.mu.Lock()
	if o.closed || o.causes[cause] != c {
		o.mu.Unlock()
		return
	}
	delete(o.causes, cause)
	n := c.suppressed
	o.mu.Unlock()
	if n > 0 {
		o.logger.Warn("api store unavailable (repeated)", "cause", cause, "count", n, "interval", o.every)
	}
}

// close logs what is pending and stops the timers: nothing is logged
// after the server shut down.
func (o *outageLog) close() {
	if o == nil { // Static has none
		return
	}
	o.mu.Lock()
	pending := o.causes
	o.causes, o.closed = map[string]*outageCause{}, true
	o.mu.Unlock()
	for cause, c := range pending {
		c.timer.Stop()
		if c.suppressed > 0 {
			o.logger.Warn("api store unavailable (repeated)", "cause", cause, "count", c.suppressed, "interval", o.every)
		}
	}
}

// outageCauseOf names an error's cause without what varies per request
// (operation, identifiers): the innermost message of its first line, as
// "connection refused" or "database is closed".
func outageCauseOf(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	if i := strings.LastIndex(line, ": "); i >= 0 {
		line = line[i+2:]
	}
	if len(line) > 120 {
		line = line[:120]
	}
	return line
}
