package web

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/oidc"
)

// DPoP (RFC 9449) at the IdP. A token request with a valid DPoP proof gets
// tokens bound to the proof's key: access tokens carry cnf.jkt and are of
// type DPoP, and the grant (code or refresh family) keeps the thumbprint in
// its session, so every later exchange of it must prove the same key. A
// code is bound before it exists by dpop_jkt at PAR or /authorize (or by
// the DPoP header at PAR). A public client's refresh tokens are always
// bound: it has no other way to keep a stolen one useless.

// errInvalidDPoPProof is RFC 9449's error for a missing or invalid proof.
var errInvalidDPoPProof = &fosite.RFC6749Error{
	ErrorField:       "invalid_dpop_proof",
	DescriptionField: "The DPoP proof is missing or invalid.",
	CodeField:        http.StatusBadRequest,
}

// errUseDPoPNonce asks the client to retry with the DPoP-Nonce just sent.
var errUseDPoPNonce = &fosite.RFC6749Error{
	ErrorField:       "use_dpop_nonce",
	DescriptionField: "Authorization server requires nonce in DPoP proof.",
	CodeField:        http.StatusBadRequest,
}

// jktRE is a SHA-256 JWK thumbprint in base64url: 43 characters.
var jktRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// tokenProof verifies the DPoP header of a request to the IdP endpoint at
// path (absent: nil, nil). Refusals are fosite errors ready to write (with
// a DPoP-Nonce header set on w for use_dpop_nonce); a store failure is
// returned as it is. With later, the jti is left for spendPending or
// spendProof, once the client has authenticated: everything else about the
// proof is checked now.
func (s *Server) tokenProof(w http.ResponseWriter, r *http.Request, path string, nonce, later bool) (*dpop.Proof, error) {
	hdr := r.Header.Values("DPoP")
	if len(hdr) == 0 {
		return nil, nil
	}
	// Spent now, the proof is vouched for by nothing but its address's
	// limit: it may take only part of the in-process replay set.
	p, err := s.dpop.Verify(r.Context(), hdr, dpop.Check{Method: r.Method, URL: s.cfg.Issuer + path, RequireNonce: nonce, Defer: later, Unvouched: !later})
	if errors.Is(err, dpop.ErrUseNonce) {
		s.observe().DPoPRefused(strings.TrimPrefix(path, "/"), "nonce")
		// Whatever --dpop-nonce says: the verifier may ask for a nonce on
		// its own (the embedded default, right after a restart), and the
		// client can only retry with the one sent here.
		if n := s.dpop.Nonce(); n != "" {
			w.Header().Set("DPoP-Nonce", n)
		}
		return nil, errUseDPoPNonce
	}
	if err != nil {
		return nil, s.proofError(path, err)
	}
	return p, nil
}

// pendingProof is a token request's DPoP proof whose jti is spent once,
// after the client authenticated and before the grant has any effect: at
// the latest by the token endpoint before it mints, earlier by a grant
// whose redemption takes something (CIBA takes the citizen's decision).
type pendingProof struct {
	p     *dpop.Proof
	path  string
	spent bool
}

type pendingProofKey struct{}

// withPendingProof carries p to the grant handlers of the request.
func withPendingProof(ctx context.Context, p *dpop.Proof, path string) context.Context {
	return context.WithValue(ctx, pendingProofKey{}, &pendingProof{p: p, path: path})
}

// spendPending spends the request's pending proof, if any and not yet
// spent, with spendProof's errors.
func (s *Server) spendPending(ctx context.Context) error {
	pp, _ := ctx.Value(pendingProofKey{}).(*pendingProof)
	if pp == nil || pp.spent {
		return nil
	}
	pp.spent = true
	return s.spendProof(ctx, pp.path, pp.p)
}

// spendProof spends the jti of a proof tokenProof verified with later (a
// no-op for any other proof, or none), with tokenProof's errors: a replay
// is invalid_dpop_proof.
func (s *Server) spendProof(ctx context.Context, path string, p *dpop.Proof) error {
	if err := s.dpop.Spend(ctx, p); err != nil {
		return s.proofError(path, err)
	}
	return nil
}

// proofError turns a refused proof into invalid_dpop_proof; anything else
// (a store failure) is returned as it is.
func (s *Server) proofError(path string, err error) error {
	if errors.Is(err, dpop.ErrInvalidProof) {
		s.observe().DPoPRefused(strings.TrimPrefix(path, "/"), "invalid")
		return errInvalidDPoPProof.WithHint("The DPoP proof is not valid.").WithDebug(err.Error())
	}
	return err
}

// setDPoPNonce hands out a fresh nonce with every token endpoint answer, so
// a client always holds one (RFC 9449 section 8.2).
func (s *Server) setDPoPNonce(w http.ResponseWriter) {
	if n := s.dpop.Nonce(); n != "" && s.cfg.DPoPNonce {
		w.Header().Set("DPoP-Nonce", n)
	}
}

// bindDPoP binds the grant of a token request to its proof's key, or
// refuses the request when the grant is bound and the proof is missing or
// made with another key.
func bindDPoP(ar fosite.AccessRequester, proof *dpop.Proof) error {
	os, ok := ar.GetSession().(*oidc.Session)
	if !ok {
		return nil
	}
	gt := ar.GetGrantTypes()
	// The eID app's grant binds its tokens to the device key that signed
	// the assertion (oidc's deviceGrantHandler): its proof, always required
	// (the token endpoint refused the request without one), must be signed
	// by that key too.
	if proof == nil {
		if os.KeyThumbprint != "" || gt.ExactOne(idp.GrantTypeJWTBearer) {
			return errInvalidDPoPProof.WithHint("This grant is bound to a DPoP key: send a DPoP proof signed with it.")
		}
		// fosite copies a code's granted scopes only when it mints the
		// tokens; /authorize grants exactly the requested scopes, which
		// fosite has copied already.
		refresh := gt.ExactOne("refresh_token") || (gt.ExactOne("authorization_code") && ar.GetRequestedScopes().Has(ScopeOffline)) ||
			(gt.ExactOne(idp.GrantTypeCIBA) && ar.GetGrantedScopes().Has(ScopeOffline))
		if refresh && ar.GetClient().IsPublic() {
			return errInvalidDPoPProof.WithHint("A public client's refresh tokens are bound to its key: send a DPoP proof.")
		}
		return nil
	}
	if os.KeyThumbprint != "" && os.KeyThumbprint != proof.JKT {
		return errInvalidDPoPProof.WithHint("The DPoP proof is not signed by the key this grant is bound to.")
	}
	os.KeyThumbprint = proof.JKT
	return nil
}

// checkDPoPJKT validates dpop_jkt at PAR and /authorize and, at PAR, binds
// it to the proof sent with the request (RFC 9449 section 10.1): both must
// name the same key.
func checkDPoPJKT(form map[string][]string, proof *dpop.Proof) error {
	vals := form["dpop_jkt"]
	if len(vals) > 1 {
		return fosite.ErrInvalidRequest.WithHint("The dpop_jkt parameter is repeated.")
	}
	if len(vals) == 1 && !jktRE.MatchString(vals[0]) {
		return fosite.ErrInvalidRequest.WithHint("dpop_jkt must be a base64url SHA-256 JWK thumbprint.")
	}
	if proof != nil && len(vals) == 1 && vals[0] != proof.JKT {
		return errInvalidDPoPProof.WithHint("dpop_jkt does not name the key of the DPoP proof.")
	}
	return nil
}

// invalidToken answers a resource request (RFC 6750 section 3, RFC 9449
// section 7.1) with the challenge of the scheme the client used:
// insufficient_scope is a 403, anything else a 401.
func (s *Server) invalidToken(w http.ResponseWriter, scheme, code, desc string) {
	status := http.StatusUnauthorized
	if code == "insufficient_scope" {
		status = http.StatusForbidden
	}
	if scheme == "DPoP" {
		w.Header().Set("WWW-Authenticate", dpop.Challenge(code, desc))
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="onedoor", error="`+code+`"`)
	}
	writeJSONError(w, status, code, desc)
}

// userinfoProof checks how a verified access token was presented at
// userinfo: a key-bound token only with the DPoP scheme and a proof by its
// key for this request and this token (ath); an unbound token only as a
// Bearer token. On refusal it has written the answer and returns false.
func (s *Server) userinfoProof(w http.ResponseWriter, r *http.Request, scheme, tok string, c *accesstoken.Claims) bool {
	bound := c.Confirmation != nil && c.Confirmation.JKT != ""
	switch {
	case scheme == "Bearer" && bound:
		// RFC 9449 section 7.1: a stolen bound token must not work as a
		// bearer token.
		s.invalidToken(w, "DPoP", "invalid_token", "The access token is bound to a key: present it with the DPoP scheme and a DPoP proof.")
		return false
	case scheme == "Bearer":
		return true
	case !bound:
		s.invalidToken(w, "DPoP", "invalid_token", "The access token is not bound to a key: present it as a Bearer token.")
		return false
	}
	p, err := s.dpop.Verify(r.Context(), r.Header.Values("DPoP"), dpop.Check{Method: r.Method, URL: s.cfg.Issuer + PathUserinfo, AccessToken: tok, Defer: true})
	// A proof by another key is refused before its jti is spent: a token's
	// holder cannot fill the replay store with proofs of keys it made up.
	if err == nil && p.JKT == c.Confirmation.JKT {
		err = s.dpop.Spend(r.Context(), p)
	}
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		// Not required here; only a stale nonce the client chose to send.
		if n := s.dpop.Nonce(); n != "" {
			w.Header().Set("DPoP-Nonce", n)
		}
		s.observe().DPoPRefused("userinfo", "nonce")
		s.invalidToken(w, "DPoP", "use_dpop_nonce", "Resource server requires nonce in DPoP proof.")
	case errors.Is(err, dpop.ErrInvalidProof):
		s.observe().DPoPRefused("userinfo", "invalid")
		s.invalidToken(w, "DPoP", "invalid_dpop_proof", "The DPoP proof is missing or not valid.")
	case err != nil:
		s.unavailable(w, "ephemeral store", err)
	case p.JKT != c.Confirmation.JKT:
		s.observe().DPoPRefused("userinfo", "invalid")
		s.invalidToken(w, "DPoP", "invalid_dpop_proof", "The DPoP proof is not signed by the key the access token is bound to.")
	default:
		return true
	}
	return false
}
