package web

// Observer is told of the events an operator watches, so that the binary
// can count them (cmd/onedoor turns them into Prometheus metrics) without
// this package knowing a metrics library. Every method must be cheap and
// safe for concurrent use.
type Observer interface {
	// DPoPRefused: a DPoP proof was refused at endpoint ("token", "par"
	// or "userinfo"); reason is "invalid" (a bad proof, or one signed by
	// another key than the token's) or "nonce" (a fresh nonce is needed).
	DPoPRefused(endpoint, reason string)
	// PasskeyCloneSuspected: a passkey's signature counter did not advance,
	// the sign of a copied authenticator; the login was refused.
	PasskeyCloneSuspected()
	// PromptSuppressed: a login_hint login fell back to the QR code because
	// the citizen had had too many prompts (push-fatigue limit).
	PromptSuppressed()
}

type noObserver struct{}

func (noObserver) DPoPRefused(string, string) {}
func (noObserver) PasskeyCloneSuspected()     {}
func (noObserver) PromptSuppressed()          {}

// observe returns the configured observer, or one that ignores everything.
func (s *Server) observe() Observer {
	if s.cfg.Observer == nil {
		return noObserver{}
	}
	return s.cfg.Observer
}
