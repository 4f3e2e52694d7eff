package dpop

import "time"

func init() { renewEvery = 5 * time.Millisecond }

// Due reports whether an in-process verifier's promise is due for renewal.
func (v *Verifier) Due() bool { return v.local.due(v.cfg.Now()) }
