package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Scope values OneDoor understands.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeAddress = "address"
	ScopePhone   = "phone"
	ScopeEID     = "eid"
	ScopeOffline = "offline_access"
	// ScopeAgency is an agency's own access to the mobile API: granted only
	// to a client bound to an agency (Client.Agency), by client_credentials.
	ScopeAgency = "agency"
)

// ClaimPersonalID carries the 12-digit personal identification number; only
// the eid scope or an explicit claims request releases it.
const ClaimPersonalID = "personal_id"

// KnownClaims is every claim the citizen registry can supply, in display
// order. No other claim is ever shown or released.
var KnownClaims = []string{"name", "family_name", "given_name", "birthdate", "gender", "address", "phone_number", ClaimPersonalID}

// scopeClaims maps scopes to the registry claims they stand for (OIDC Core 5.4).
var scopeClaims = map[string][]string{
	ScopeProfile: {"name", "family_name", "given_name", "birthdate", "gender"},
	ScopeAddress: {"address"},
	ScopePhone:   {"phone_number"},
	ScopeEID:     {ClaimPersonalID},
}

// ScopeClaims returns the registry claims a scope stands for.
func ScopeClaims(scope string) []string { return slices.Clone(scopeClaims[scope]) }

// KnownClaim reports whether the registry can supply the claim.
func KnownClaim(name string) bool { return slices.Contains(KnownClaims, name) }

// AllowedClaims is everything the client may ever receive: the claims its
// registered scopes stand for plus the claims the operator listed for it, in
// display order. No request parameter can widen it.
func (c *Client) AllowedClaims() []string {
	var out []string
	for _, name := range KnownClaims {
		if slices.Contains(c.Claims, name) {
			out = append(out, name)
			continue
		}
		for _, sc := range c.Scopes {
			if slices.Contains(scopeClaims[sc], name) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// ClaimRequest is one claim a login asks the citizen to share.
type ClaimRequest struct {
	Name     string `json:"name"`
	Optional bool   `json:"optional"`
}

// ClaimsRequest is what an authorization request asks for: its scopes and
// its claims parameter (OIDC Core 5.5), claim name to whether it is essential.
type ClaimsRequest struct {
	Scopes   []string
	UserInfo map[string]bool
	IDToken  map[string]bool
}

// ParseClaimsRequest reads the scopes and the claims request parameter of an
// authorization request. A malformed parameter wraps ErrInvalid; members other
// than userinfo and id_token and claims the registry cannot supply are kept
// here and dropped by the policy.
func ParseClaimsRequest(scopes []string, raw string) (ClaimsRequest, error) {
	cr := ClaimsRequest{Scopes: scopes, UserInfo: map[string]bool{}, IDToken: map[string]bool{}}
	if raw == "" {
		return cr, nil
	}
	var doc map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return cr, fmt.Errorf("claims parameter is not a JSON object of objects: %w", ErrInvalid)
	}
	for member, dst := range map[string]map[string]bool{"userinfo": cr.UserInfo, "id_token": cr.IDToken} {
		for name, spec := range doc[member] {
			var s *struct {
				Essential bool `json:"essential"`
			}
			// A spec that is not an object (or null) asks for the claim
			// voluntarily; an essential of another type is not essential.
			_ = json.Unmarshal(spec, &s)
			dst[name] = dst[name] || (s != nil && s.Essential)
		}
	}
	return cr, nil
}

// ReleasePlan is what a login for one client asks for, after the policy.
type ReleasePlan struct {
	// Claims is the list shown to the citizen (login page and eID app):
	// only claims the client may receive, in display order, essential ones
	// not optional.
	Claims []ClaimRequest
	// IDToken names the claims to put in the ID token (claims parameter,
	// id_token member), once the citizen agreed to them.
	IDToken []string
}

// ReleasePolicy decides which claims a client is shown, may release without
// asking, and receives. The login page, silent single sign-on, the eID app's
// view of a login, the ID token and userinfo all ask it; consent records (#5)
// will implement it too.
type ReleasePolicy interface {
	// Plan works out what a login for client c asks the citizen, given the
	// request. Claims the client may not receive are dropped without error
	// (OIDC Core 5.5.1: an unavailable claim, essential or not, is no error).
	Plan(ctx context.Context, c *Client, req ClaimsRequest) (*ReleasePlan, error)
	// Silent says what a login may release without asking the citizen: the
	// asked claims they already agreed to share with the client and the
	// client may still receive, and whether that covers every essential one.
	Silent(ctx context.Context, citizenID, clientID string, asked []ClaimRequest) (agreed []string, covered bool, err error)
	// Released is what userinfo or an ID token may release now for a token
	// that recorded agreed: an operator narrowing a client takes effect at once.
	Released(ctx context.Context, clientID string, agreed []string) ([]string, error)
	// Record keeps what the citizen agreed to share, with the evidence.
	Record(ctx context.Context, g *Grant) error
}

// ClientLookup finds a registered client; ClientStore is one, and so is any
// cache in front of it.
type ClientLookup interface {
	GetClient(ctx context.Context, id string) (*Client, error)
}

// GrantPolicy is the ReleasePolicy over the client registry and the grants
// citizens gave in the eID app.
type GrantPolicy struct {
	Clients ClientLookup
	Grants  GrantStore
}

var _ ReleasePolicy = (*GrantPolicy)(nil)

// Plan implements ReleasePolicy. Claims implied by scopes are voluntary (OIDC
// Core 5.4), except the personal id that the eid scope exists to obtain; the
// claims parameter can ask for any claim the client may receive and mark it
// essential.
func (p *GrantPolicy) Plan(_ context.Context, c *Client, req ClaimsRequest) (*ReleasePlan, error) {
	allowed := c.AllowedClaims()
	want := map[string]bool{} // name -> optional
	for _, sc := range req.Scopes {
		for _, name := range scopeClaims[sc] {
			want[name] = name != ClaimPersonalID
		}
	}
	for _, member := range []map[string]bool{req.UserInfo, req.IDToken} {
		for name, essential := range member {
			opt, seen := want[name]
			switch {
			case essential:
				want[name] = false
			case !seen:
				want[name] = true
			default:
				want[name] = opt
			}
		}
	}
	plan := &ReleasePlan{}
	for _, name := range allowed {
		if opt, ok := want[name]; ok {
			plan.Claims = append(plan.Claims, ClaimRequest{Name: name, Optional: opt})
		}
		if _, ok := req.IDToken[name]; ok {
			plan.IDToken = append(plan.IDToken, name)
		}
	}
	return plan, nil
}

// Silent implements ReleasePolicy.
func (p *GrantPolicy) Silent(ctx context.Context, citizenID, clientID string, asked []ClaimRequest) ([]string, bool, error) {
	allowed, err := p.allowed(ctx, clientID)
	if err != nil {
		return nil, false, err
	}
	g, err := p.Grants.GetGrant(ctx, citizenID, clientID)
	if errors.Is(err, ErrNotFound) {
		g, err = &Grant{}, nil
	}
	if err != nil {
		return nil, false, err
	}
	var agreed []string
	covered := true
	for _, c := range asked {
		ok := slices.Contains(g.Claims, c.Name) && slices.Contains(allowed, c.Name)
		if ok {
			agreed = append(agreed, c.Name)
		} else if !c.Optional {
			covered = false
		}
	}
	return agreed, covered, nil
}

// Released implements ReleasePolicy. A client that no longer exists
// receives nothing, and the error (wrapping ErrNotFound) says so: its tokens
// are as good as revoked.
func (p *GrantPolicy) Released(ctx context.Context, clientID string, agreed []string) ([]string, error) {
	c, err := p.Clients.GetClient(ctx, clientID)
	if err != nil {
		return nil, fmt.Errorf("release to client: %w", err)
	}
	return keep(agreed, c.AllowedClaims()), nil
}

// Record implements ReleasePolicy: the grant replaces the previous one, so
// the stored claims are always those of the stored evidence, narrowed to what
// the client may receive.
func (p *GrantPolicy) Record(ctx context.Context, g *Grant) error {
	allowed, err := p.allowed(ctx, g.ClientID)
	if err != nil {
		return err
	}
	rec := *g
	rec.Claims = keep(g.Claims, allowed)
	return p.Grants.PutGrant(ctx, &rec)
}

func (p *GrantPolicy) allowed(ctx context.Context, clientID string) ([]string, error) {
	c, err := p.Clients.GetClient(ctx, clientID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c.AllowedClaims(), nil
}

// keep returns the names in list that are also in allowed, in list's order,
// once each.
func keep(list, allowed []string) []string {
	var out []string
	for _, n := range list {
		if slices.Contains(allowed, n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
