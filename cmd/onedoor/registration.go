package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// Agency onboarding by Dynamic Client Registration (RFC 7591/7592): an
// operator issues an agency an initial access token (`agency token`), the
// agency registers its clients at {issuer}/register, and an operator
// reviews each (`client list --pending`, `client show`) and approves it,
// possibly narrowed (`client approve`), or rejects it (`client reject`).

// Bounds of an initial access token.
const (
	maxInitialTokenTTL  = 30 * 24 * time.Hour
	maxInitialTokenUses = 100
)

// operatorName is who runs an admin command, for the records.
func operatorName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "operator"
}

// IssueInitialToken makes an initial access token for the agency's
// registrations: the value is returned once, only its keyed hash is kept.
func (m *Main) IssueInitialToken(ctx context.Context, agency string, ttl time.Duration, maxUses int, operator string) (*idp.InitialToken, string, error) {
	if !idp.ValidAgencyCode(agency) {
		return nil, "", fmt.Errorf("--agency must be an agency code: %w", idp.ErrInvalid)
	}
	if ttl < time.Minute || ttl > maxInitialTokenTTL {
		return nil, "", fmt.Errorf("--ttl must be between 1m and %s: %w", maxInitialTokenTTL, idp.ErrInvalid)
	}
	if maxUses < 1 || maxUses > maxInitialTokenUses {
		return nil, "", fmt.Errorf("--max-uses must be between 1 and %d: %w", maxInitialTokenUses, idp.ErrInvalid)
	}
	if err := m.checkAgency(ctx, agency); err != nil {
		return nil, "", err
	}
	tok := idp.NewRegistrationToken()
	now := m.Now().UTC()
	t := &idp.InitialToken{ID: "iat_" + randomString(9), Hash: idp.HashRegistrationToken(m.ClientSecretKey(), idp.TokenInitial, tok),
		Agency: agency, MaxUses: maxUses, ExpiresAt: now.Add(ttl), CreatedBy: operator, CreatedAt: now}
	if err := m.Store.CreateInitialToken(ctx, t); err != nil {
		return nil, "", err
	}
	return t, tok, nil
}

// ApproveClient makes a pending registered client usable, with only the
// given scopes and claims of those it asked for (nil keeps them all), and
// records who approved it and when. digest is the idp.ReviewDigest the
// operator was shown: a client changed since is not approved.
func (m *Main) ApproveClient(ctx context.Context, id, digest string, scopes, claims []string, operator string) (*idp.Client, error) {
	var out *idp.Client
	err := m.Store.UpdateClient(ctx, id, func(c *idp.Client) error {
		if c.Registration.Status != idp.ClientPending {
			return fmt.Errorf("client %s is not pending approval (status %s): %w", id, statusName(c), idp.ErrInvalid)
		}
		if digest != idp.ReviewDigest(c) {
			return fmt.Errorf("client %s changed since it was shown (or --digest is wrong): review `onedoor client show %s` again and approve with its review_digest: %w", id, id, idp.ErrInvalid)
		}
		if err := c.Narrow(scopes, claims); err != nil {
			return err
		}
		if err := c.Validate(); err != nil {
			return fmt.Errorf("the approved client would be invalid: %w", err)
		}
		now := m.Now().UTC()
		c.Registration.Status, c.Registration.ApprovedBy, c.Registration.ApprovedAt = idp.ClientActive, operator, &now
		out = c
		return nil
	})
	return out, err
}

// RejectClient marks a pending client rejected: it stays unusable, and its
// agency can read the decision and delete it.
func (m *Main) RejectClient(ctx context.Context, id, operator string) (*idp.Client, error) {
	var out *idp.Client
	err := m.Store.UpdateClient(ctx, id, func(c *idp.Client) error {
		if c.Registration.Status != idp.ClientPending {
			return fmt.Errorf("client %s is not pending approval (status %s): %w", id, statusName(c), idp.ErrInvalid)
		}
		now := m.Now().UTC()
		c.Registration.Status, c.Registration.ApprovedBy, c.Registration.ApprovedAt = idp.ClientRejected, operator, &now
		out = c
		return nil
	})
	return out, err
}

func statusName(c *idp.Client) string {
	if c.Registration.Status == idp.ClientActive {
		return "active"
	}
	return c.Registration.Status
}

// registrationView is what admin commands add to a client's view.
type registrationView struct {
	Status         string     `json:"status"`
	ReviewDigest   string     `json:"review_digest,omitempty"`
	SelfRegistered bool       `json:"self_registered,omitempty"`
	InitialToken   string     `json:"initial_token_id,omitempty"`
	DecidedBy      string     `json:"decided_by,omitempty"`
	DecidedAt      *time.Time `json:"decided_at,omitempty"`
}

func viewRegistration(c *idp.Client) registrationView {
	v := registrationView{Status: statusName(c), SelfRegistered: c.Registered(), InitialToken: c.Registration.InitialTokenID,
		DecidedBy: c.Registration.ApprovedBy, DecidedAt: c.Registration.ApprovedAt}
	if c.Registration.Status == idp.ClientPending {
		v.ReviewDigest = idp.ReviewDigest(c)
	}
	return v
}

// clientDecisionCmd runs `client approve` and `client reject`.
func clientDecisionCmd(ctx context.Context, sub string, args []string, env func(string) string, stdout io.Writer) error {
	var id, digest string
	var scopes, claims optionalString
	m, fs, err := adminMain(ctx, "client "+sub, args, env, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "client id")
		if sub == "approve" {
			fs.StringVar(&digest, "digest", "", "the review_digest `client show` printed for what you reviewed (required)")
			fs.Var(&scopes, "scopes", "space- or comma-separated scopes to grant, of those requested (default: all requested)")
			fs.Var(&claims, "claims", "comma-separated claims to grant, of those requested (default: all requested; \"\" for none)")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError("unexpected arguments: %v", fs.Args())
	}
	if id == "" {
		return usageError("client %s: want --id CLIENT_ID", sub)
	}
	var c *idp.Client
	if sub == "approve" && digest == "" {
		return usageError("client approve: --digest is required: the review_digest of `onedoor client show %s`", id)
	}
	if sub == "approve" {
		var sc, cl []string
		if scopes.set {
			sc = idp.ParseClaimList(scopes.v) // same separators
			if sc == nil {
				sc = []string{}
			}
		}
		if claims.set {
			cl = idp.ParseClaimList(claims.v)
			if cl == nil {
				cl = []string{}
			}
		}
		c, err = m.ApproveClient(ctx, id, digest, sc, cl, operatorName())
	} else {
		c, err = m.RejectClient(ctx, id, operatorName())
	}
	if err != nil {
		return err
	}
	return m.printJSON(stdout, viewClient(c))
}

// optionalString is a string flag that knows whether it was given.
type optionalString struct {
	v   string
	set bool
}

func (o *optionalString) String() string     { return o.v }
func (o *optionalString) Set(v string) error { o.v, o.set = v, true; return nil }

type initialTokenView struct {
	ID        string     `json:"id"`
	Token     string     `json:"initial_access_token,omitempty"`
	Agency    string     `json:"agency"`
	MaxUses   int        `json:"max_uses"`
	Uses      int        `json:"uses"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	Usable    bool       `json:"usable"`
}

func (m *Main) viewInitialToken(t *idp.InitialToken) initialTokenView {
	return initialTokenView{ID: t.ID, Agency: t.Agency, MaxUses: t.MaxUses, Uses: t.Uses, ExpiresAt: t.ExpiresAt,
		RevokedAt: t.RevokedAt, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, Usable: t.Usable(m.Now())}
}

// agencyTokenCmd runs `agency token [list|revoke]`.
func agencyTokenCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	sub := "issue"
	if len(args) > 0 && (args[0] == "list" || args[0] == "revoke") {
		sub, args = args[0], args[1:]
	}
	var agency, id string
	var ttl time.Duration
	var maxUses int
	m, fs, err := adminMain(ctx, "agency token", args, env, func(fs *flag.FlagSet) {
		switch sub {
		case "issue":
			fs.StringVar(&agency, "agency", "", "code of the agency whose clients the token registers")
			fs.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token can be used")
			fs.IntVar(&maxUses, "max-uses", 1, "how many clients it can register")
		case "revoke":
			fs.StringVar(&id, "id", "", "the token's id (from agency token list)")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if sub == "revoke" && id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError("unexpected arguments: %v", fs.Args())
	}
	switch sub {
	case "issue":
		if agency == "" {
			return usageError("agency token: --agency is required")
		}
		t, tok, err := m.IssueInitialToken(ctx, agency, ttl, maxUses, operatorName())
		if err != nil {
			return err
		}
		v := m.viewInitialToken(t)
		v.Token = tok
		out := map[string]any{"token": v, "note": "the token is shown once; give it to the agency over a secure channel"}
		if m.Config.Issuer != "" {
			out["registration_endpoint"] = strings.TrimRight(m.Config.Issuer, "/") + "/register"
		}
		return m.printJSON(stdout, out)
	case "list":
		ts, err := m.Store.ListInitialTokens(ctx)
		if err != nil {
			return err
		}
		out := make([]initialTokenView, 0, len(ts))
		for _, t := range ts {
			out = append(out, m.viewInitialToken(t))
		}
		return m.printJSON(stdout, map[string]any{"tokens": out})
	default:
		if id == "" {
			return usageError("agency token revoke: want --id")
		}
		if err := m.Store.RevokeInitialToken(ctx, id, m.Now().UTC()); err != nil {
			if errors.Is(err, idp.ErrNotFound) {
				return fmt.Errorf("no initial access token has the id %q: %w", id, err)
			}
			return err
		}
		return m.printJSON(stdout, map[string]any{"revoked": id})
	}
}

// pendingOnly keeps the clients awaiting approval.
func pendingOnly(cs []*idp.Client) []*idp.Client {
	var out []*idp.Client
	for _, c := range cs {
		if c.Registration.Status == idp.ClientPending {
			out = append(out, c)
		}
	}
	return out
}
