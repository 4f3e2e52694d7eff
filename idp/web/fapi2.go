package web

import (
	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/oidc"
)

// checkFAPI2 enforces at the token endpoint what the FAPI 2.0 profile
// (idp.ProfileFAPI2) asks of a client's grants beyond its registration: a
// DPoP proof on every code exchange and refresh, so that none of its tokens
// is a bearer token, and a code no older than idp.FAPI2CodeLifetime. It runs
// before the grant is spent. The rest is enforced where it happens: PAR at
// /authorize (the client's PARRequired), the assertion's algorithm in
// oidc's client authentication, S256 PKCE for every client.
func (s *Server) checkFAPI2(ar fosite.AccessRequester, proof *dpop.Proof) error {
	c, ok := ar.GetClient().(*oidc.Client)
	if !ok || !c.Record.IsFAPI2() {
		return nil
	}
	if proof == nil {
		return errInvalidDPoPProof.WithHint("This client's FAPI 2.0 profile requires a DPoP proof at the token endpoint: its tokens are always DPoP-bound.")
	}
	if ar.GetGrantTypes().ExactOne("authorization_code") && oidc.CodeExpired(ar, s.cfg.Now()) {
		return fosite.ErrInvalidGrant.WithHint("The authorization code has expired: a FAPI 2.0 client's code must be exchanged within 60 seconds.")
	}
	return nil
}
