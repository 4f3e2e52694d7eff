package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/oidc"
)

// beforeTokensLeave runs between minting a code or refresh grant's tokens
// and sending them: an ID token carrying personal claims is logged in the
// citizen's access log, the granted authorization_details are returned
// (RFC 9396 section 7), and a code exchange gets its consent's receipt
// (consent_receipt), delivered to the relying party. An error means
// nothing may be sent.
func (s *Server) beforeTokensLeave(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder, rel *idp.Release) error {
	os, ok := ar.GetSession().(*oidc.Session)
	if !ok || rel == nil {
		return nil
	}
	clientID := ar.GetClient().GetID()
	if idt, _ := resp.GetExtra("id_token").(string); idt != "" && os.Claims != nil {
		if err := s.logRelease(ctx, consent.ChannelIDToken, clientID, os.Subject, rel, personalClaims(os.Claims.Extra), tokenOnBehalf(os.Act, os.Representation)); err != nil {
			return err
		}
	}
	if len(os.AuthorizationDetails) > 0 {
		resp.SetExtra("authorization_details", os.AuthorizationDetails)
	}
	if (ar.GetGrantTypes().ExactOne("authorization_code") || ar.GetGrantTypes().ExactOne(idp.GrantTypeCIBA)) && os.ConsentID != "" && clientID != idp.EIDAppClientID {
		jws, err := s.receipt(ctx, os.Subject, os.ConsentID)
		if err != nil {
			return err
		}
		if jws != "" {
			resp.SetExtra("consent_receipt", jws)
		}
	}
	return nil
}

// receipt is the consent's latest grant receipt.
func (s *Server) receipt(ctx context.Context, citizenID, consentID string) (string, error) {
	rs, err := s.consent.Store.Receipts(ctx, citizenID, consentID)
	if err != nil {
		return "", fmt.Errorf("consent receipt: %w", consentOutage(err))
	}
	for _, r := range slices.Backward(rs) {
		if r.Kind == consent.ReceiptGranted {
			return r.JWS, nil
		}
	}
	return "", nil
}

// logRelease appends the access-log entry for claims about to leave for a
// client, on the consent rel rests on. The eID app's own tokens are no
// release to a third party (settleSession), and a release of no personal
// claim (sub alone) is not logged.
// onBehalf names the representative who logged in for the citizen, if one did.
func (s *Server) logRelease(ctx context.Context, ch consent.Channel, clientID, citizenID string, rel *idp.Release, items []string, onBehalf *consent.OnBehalf) error {
	if clientID == idp.EIDAppClientID || len(items) == 0 {
		return nil
	}
	agency := ""
	c, err := s.provider.Clients().GetClient(ctx, clientID)
	if err != nil && !errors.Is(err, idp.ErrNotFound) {
		return err
	}
	if c != nil {
		agency = c.Agency
	}
	req := consent.Request{CitizenID: citizenID, Actor: consent.Actor{Agency: agency, ClientID: clientID}, Channel: ch,
		Purpose: rel.Purpose, Items: items, ConsentID: rel.ConsentID, OnBehalf: onBehalf}
	d := &consent.Decision{Basis: consent.BasisConsent, ConsentID: rel.ConsentID}
	// Log rechecks the consent in the append's transaction: a withdrawal
	// that committed since Released looked refuses the release here.
	if _, err := s.consent.Log(ctx, req, d, consent.OutcomeReleased); err != nil {
		if refused := (*consent.RefusedError)(nil); errors.As(err, &refused) {
			return fmt.Errorf("access log: %w: %w", idp.ErrConsentWithdrawn, err)
		}
		return fmt.Errorf("access log: %w", consentOutage(err))
	}
	return nil
}

// releaseFailed answers a token request whose release could not be logged:
// invalid_grant when the consent was withdrawn meanwhile, a 503 on an outage (what the exchange consumed is put back first, see
// middleware), a server_error otherwise, after putting it back too.
func (s *Server) releaseFailed(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	if errors.Is(err, idp.ErrConsentWithdrawn) {
		// Withdrawn after the grant was checked: the tokens just minted
		// never leave, and the family stops here, as in rechecked.
		if rerr := s.provider.RevokeGrant(r.Context(), ar.GetID()); rerr != nil {
			s.log.Warn("revoke the family of a withdrawn consent", "err", rerr.Error())
		}
		s.tokenError(w, r, ar, fosite.ErrInvalidGrant.WithHint("The citizen withdrew the consent this grant rests on, or it has expired."))
		return
	}
	if errors.Is(err, idp.ErrUnavailable) {
		s.unavailable(w, "consent store", err)
		return
	}
	if rerr := oidc.RestoreAfterOutage(r.Context()); rerr != nil {
		s.log.Warn("restore after a failed release", "err", rerr.Error())
	}
	s.tokenError(w, r, ar, fosite.ErrServerError.WithWrap(err))
}

// personalClaims names the registry claims among an ID token's claims or a
// userinfo answer, in display order.
func personalClaims(m map[string]any) []string {
	var out []string
	for _, name := range idp.KnownClaims {
		if _, ok := m[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// consentOutage maps a consent store outage onto the IdP's, so it is a 503
// and never a denial.
func consentOutage(err error) error {
	if errors.Is(err, consent.ErrUnavailable) && !errors.Is(err, idp.ErrUnavailable) {
		return fmt.Errorf("%w: %w", idp.ErrUnavailable, err)
	}
	return err
}
