package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/mobileapi"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (f *multiFlag) String() string     { return strings.Join(*f, ",") }
func (f *multiFlag) Set(v string) error { *f = append(*f, v); return nil }

// adminMain parses storage flags plus the command's own and opens storage.
func adminMain(ctx context.Context, name string, args []string, env func(string) string, extra func(fs *flag.FlagSet)) (*Main, *flag.FlagSet, error) {
	m := NewMain()
	// Only migrate may create a database: any other admin command on a
	// mistyped --data-dir or an empty PostgreSQL database would otherwise
	// work on a new, empty one and look as if the data were gone.
	m.existingOnly = name != "migrate"
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	m.Config.storageFlags(fs)
	if sessionCommands[name] {
		m.Config.redisFlags(fs)
	}
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, permute(fs, args), env); err != nil {
		return nil, nil, flagError(err)
	}
	if err := m.Config.Validate(false); err != nil {
		return nil, nil, err
	}
	if err := m.OpenStorage(ctx); err != nil {
		if m.DB != nil {
			_ = m.DB.Close()
		}
		return nil, nil, err
	}
	if sessionCommands[name] {
		if err := m.useRedis(ctx); err != nil {
			_ = m.Close()
			return nil, nil, err
		}
	}
	return m, fs, nil
}

// sessionCommands end single sign-on sessions, so they take the server's
// Redis flags: the sessions' entries live there.
var sessionCommands = map[string]bool{"citizen lock": true}

// permute moves positional arguments after the flags so `show ID --data-dir
// D` works as well as `show --data-dir D ID`.
func permute(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	return append(flags, pos...)
}

// printJSON writes v as indented JSON. An object gets a "store" member
// naming the database the command used (never a password), so an operator
// sees at once which data a command touched. Every admin command prints an
// object (a list goes under a named member) so that each output has it.
func (m *Main) printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > 1 && b[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err == nil {
			if _, taken := obj["store"]; !taken {
				obj["store"], _ = json.Marshal(m.Config.StoreName())
			}
			return printJSON(w, obj)
		}
	}
	return printJSON(w, v)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func migrate(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	m, _, err := adminMain(ctx, "migrate", args, env, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.printJSON(stdout, map[string]any{"migrated": true})
}

// clientView is how admin commands print a client; the secret appears once,
// at creation.
type clientView struct {
	ClientID               string   `json:"client_id"`
	ClientSecret           string   `json:"client_secret,omitempty"`
	Name                   string   `json:"name"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	GrantTypes             []string `json:"grant_types"`
	Scope                  string   `json:"scope"`
	Claims                 []string `json:"claims"`
	AllowedClaims          []string `json:"allowed_claims"`
	AuthMethod             string   `json:"token_endpoint_auth_method"`
	JWKSURI                string   `json:"jwks_uri,omitempty"`
	HasJWKS                bool     `json:"jwks,omitempty"`
	PARRequired            bool     `json:"require_pushed_authorization_requests"`
	IDTokenAlg             string   `json:"id_token_signed_response_alg"`
	Profile                string   `json:"profile,omitempty"`
	Agency                 string   `json:"agency"`
	// Purposes is the client's catalog; a client that registered none
	// asks for the login purpose.
	Purposes  []consent.Purpose `json:"purposes"`
	CreatedAt time.Time         `json:"created_at"`
	// OIDC Back-Channel Logout 1.0 registration.
	BackchannelLogoutURI             string `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool   `json:"backchannel_logout_session_required,omitempty"`
	// OpenID CIBA Core 1.0 registration.
	BackchannelTokenDeliveryMode          string `json:"backchannel_token_delivery_mode,omitempty"`
	BackchannelClientNotificationEndpoint string `json:"backchannel_client_notification_endpoint,omitempty"`
	// Status is active, or pending/rejected for a self-registered client
	// (registration.go).
	registrationView
}

func viewClient(c *idp.Client) clientView {
	v := clientView{
		ClientID: c.ID, Name: c.Name, RedirectURIs: nonNil(c.RedirectURIs), PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		GrantTypes: c.GrantTypes, Scope: strings.Join(c.Scopes, " "), Claims: nonNil(c.Claims), AllowedClaims: nonNil(c.AllowedClaims()), AuthMethod: c.AuthMethod, JWKSURI: c.JWKSURI,
		HasJWKS: c.JWKS != "", PARRequired: c.PARRequired, IDTokenAlg: c.IDTokenAlg, Profile: c.Profile, Agency: c.Agency, CreatedAt: c.CreatedAt,
		Purposes: c.Purposes, BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,
		BackchannelTokenDeliveryMode: c.BackchannelTokenDeliveryMode, BackchannelClientNotificationEndpoint: c.BackchannelClientNotificationEndpoint,
	}
	if len(v.Purposes) == 0 {
		v.Purposes = []consent.Purpose{c.DefaultPurpose()}
	}
	v.registrationView = viewRegistration(c)
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ClientSpec is what `client create` (and the demo seeding) asks for.
type ClientSpec struct {
	ID, Name, Scope, AuthMethod, JWKSFile, JWKSURI, IDTokenAlg string
	RedirectURIs, PostLogoutRedirectURIs, GrantTypes, Claims   []string
	PARRequired                                                bool
	// Agency is the code of the agency the client acts for; it must exist
	// among the mobile API's agencies.
	Agency string
	// Profile is the security profile ("" or idp.ProfileFAPI2).
	Profile string
	// Secret, when set, is the secret to register instead of a random one
	// (the demo derives its clients' secrets from the master key).
	Secret string
	// Purposes is the client's catalog of purposes, first the default.
	Purposes []consent.Purpose
	// BackchannelLogoutURI receives logout tokens (OIDC Back-Channel
	// Logout 1.0); BackchannelLogoutSessionRequired is registered as given.
	BackchannelLogoutURI             string
	BackchannelLogoutSessionRequired bool
	// BackchannelTokenDeliveryMode (poll or ping) and, for ping,
	// BackchannelClientNotificationEndpoint: the CIBA grant's registration.
	BackchannelTokenDeliveryMode          string
	BackchannelClientNotificationEndpoint string
}

// AgencyLookup finds one of the mobile API's agencies by its code
// (mobileapi.AgencyStore implements it); the error wraps idp.ErrNotFound
// when there is none.
type AgencyLookup interface {
	GetAgency(ctx context.Context, code string) (*mobileapi.Agency, error)
}

// checkAgency reports whether code names an existing agency. The agencies
// live in the mobile API's store, not the IdP's, so the reference is
// checked here, when the operator binds a client.
func (m *Main) checkAgency(ctx context.Context, code string) error {
	if m.Agencies == nil {
		return fmt.Errorf("--agency: the mobile API's agencies are not available to check %q: %w", code, idp.ErrUnavailable)
	}
	_, err := m.Agencies.GetAgency(ctx, code)
	if errors.Is(err, idp.ErrNotFound) {
		return fmt.Errorf("--agency: no agency has the code %q: %w", code, idp.ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("--agency %q: %w", code, err)
	}
	return nil
}

// CreateClient registers the client spec describes (idp.Client's defaults
// and validation), generates its secret when it uses one (shown once) and
// stores it with the secret's keyed hash.
func (m *Main) CreateClient(ctx context.Context, spec ClientSpec) (*idp.Client, string, error) {
	c := &idp.Client{
		ID: spec.ID, Name: spec.Name, RedirectURIs: spec.RedirectURIs, PostLogoutRedirectURIs: spec.PostLogoutRedirectURIs,
		GrantTypes: spec.GrantTypes, Scopes: strings.Fields(spec.Scope), Claims: spec.Claims, AuthMethod: spec.AuthMethod,
		JWKSURI: spec.JWKSURI, PARRequired: spec.PARRequired, IDTokenAlg: spec.IDTokenAlg, Agency: spec.Agency, CreatedAt: m.Now().UTC(),
		Purposes: spec.Purposes, Profile: spec.Profile,
	}
	c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired = spec.BackchannelLogoutURI, spec.BackchannelLogoutSessionRequired
	c.BackchannelTokenDeliveryMode, c.BackchannelClientNotificationEndpoint = spec.BackchannelTokenDeliveryMode, spec.BackchannelClientNotificationEndpoint
	c.ApplyDefaults()
	var agencyErr error
	if c.Agency != "" && idp.ValidAgencyCode(c.Agency) { // a malformed code is Validate's to report
		agencyErr = m.checkAgency(ctx, c.Agency)
	}
	var jwksErr error
	if spec.JWKSFile != "" {
		raw, err := os.ReadFile(spec.JWKSFile)
		if err != nil {
			jwksErr = fmt.Errorf("read --jwks: %w", err)
		} else if err := oidc.ValidateJWKS(string(raw)); err != nil {
			jwksErr = err
		} else {
			c.JWKS = string(raw)
		}
	}
	var secret string
	if c.UsesSecret() {
		secret = idp.NewClientSecret()
		if spec.Secret != "" {
			secret = spec.Secret
		}
		c.SecretHash = idp.HashClientSecret(m.ClientSecretKey(), secret)
	}
	if err := errors.Join(jwksErr, agencyErr, c.Validate()); err != nil {
		return nil, "", err
	}
	if err := m.Store.CreateClient(ctx, c); err != nil {
		return nil, "", err
	}
	return c, secret, nil
}

func clientCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("client: want create, list, show, delete, approve or reject")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "approve", "reject":
		return clientDecisionCmd(ctx, sub, args, env, stdout)
	case "create":
		var spec ClientSpec
		var redirects, postLogout, grants, purposes multiFlag
		var claims string
		m, fs, err := adminMain(ctx, "client create", args, env, func(fs *flag.FlagSet) {
			fs.StringVar(&spec.ID, "id", "", "client id (default: random)")
			fs.StringVar(&spec.Name, "name", "", "display name shown to citizens")
			fs.Var(&redirects, "redirect-uri", "redirect URI, matched exactly (repeatable)")
			fs.Var(&postLogout, "post-logout-redirect-uri", "post-logout redirect URI (repeatable)")
			fs.Var(&grants, "grant-type", "authorization_code, refresh_token, client_credentials or "+idp.GrantTypeCIBA+" (repeatable)")
			fs.StringVar(&spec.Scope, "scope", "", `space-separated scopes (default "openid profile"); `+idp.ScopeRule)
			fs.StringVar(&claims, "claims", "", "comma-separated registry claims the client may receive beyond its scopes' (e.g. name,phone_number)")
			fs.StringVar(&spec.AuthMethod, "auth-method", idp.AuthSecretBasic, "client_secret_basic, client_secret_post, private_key_jwt or none")
			fs.StringVar(&spec.JWKSFile, "jwks", "", "file with the client's public JSON Web Key Set (private_key_jwt)")
			fs.StringVar(&spec.JWKSURI, "jwks-uri", "", "URL of the client's JSON Web Key Set (private_key_jwt)")
			fs.BoolVar(&spec.PARRequired, "par-required", false, "require pushed authorization requests")
			fs.StringVar(&spec.IDTokenAlg, "id-token-alg", "ES256", "ID token signing algorithm: ES256 or RS256")
			fs.StringVar(&spec.Profile, "profile", "", "security profile: fapi2 (FAPI 2.0: PAR, private_key_jwt, DPoP, ES256/PS256, https redirect URIs) or empty for none")
			fs.StringVar(&spec.Agency, "agency", "", "code of the agency the client acts for (its own tokens carry it; needed for scope agency)")
			fs.StringVar(&spec.BackchannelLogoutURI, "backchannel-logout-uri", "", "URL that receives OIDC back-channel logout tokens when a session the client logged in through ends (https; http only on loopback)")
			fs.BoolVar(&spec.BackchannelLogoutSessionRequired, "backchannel-logout-session-required", false, "the client needs sid in logout tokens (OneDoor always sends it)")
			fs.StringVar(&spec.BackchannelTokenDeliveryMode, "backchannel-token-delivery-mode", "", "CIBA token delivery mode with --grant-type "+idp.GrantTypeCIBA+": poll or ping")
			fs.StringVar(&spec.BackchannelClientNotificationEndpoint, "backchannel-client-notification-endpoint", "", "URL the CIBA ping goes to when a request is decided (ping mode; https, http only on loopback)")
			fs.Var(&purposes, "purpose", "a purpose the client asks for data for, as CODE:TEXT (repeatable; the first is the default; none: \"login\")")
		})
		if err != nil {
			return err
		}
		defer m.Close()
		if fs.NArg() > 0 {
			return usageError("unexpected arguments: %v", fs.Args())
		}
		spec.RedirectURIs, spec.PostLogoutRedirectURIs, spec.GrantTypes = redirects, postLogout, grants
		spec.Claims = idp.ParseClaimList(claims)
		if spec.Profile == idp.ProfileFAPI2 {
			// The profile has one method: --auth-method may be left out.
			explicit := false
			fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "auth-method" })
			if !explicit {
				spec.AuthMethod = idp.AuthPrivateKeyJWT
			}
		}
		var perrs []error
		for _, raw := range purposes {
			p, err := idp.ParsePurpose(raw)
			perrs = append(perrs, err)
			spec.Purposes = append(spec.Purposes, p)
		}
		if err := errors.Join(perrs...); err != nil {
			return err
		}
		c, secret, err := m.CreateClient(ctx, spec)
		if err != nil {
			return err
		}
		v := viewClient(c)
		v.ClientSecret = secret
		return m.printJSON(stdout, v)
	case "list":
		var pending bool
		m, _, err := adminMain(ctx, "client list", args, env, func(fs *flag.FlagSet) {
			fs.BoolVar(&pending, "pending", false, "only self-registered clients awaiting approval")
		})
		if err != nil {
			return err
		}
		defer m.Close()
		cs, err := m.Store.ListClients(ctx)
		if err != nil {
			return err
		}
		if pending {
			cs = pendingOnly(cs)
		}
		out := make([]clientView, 0, len(cs))
		for _, c := range cs {
			out = append(out, viewClient(c))
		}
		return m.printJSON(stdout, map[string]any{"clients": out})
	case "show", "delete":
		var id string
		m, fs, err := adminMain(ctx, "client "+sub, args, env, func(fs *flag.FlagSet) {
			fs.StringVar(&id, "id", "", "client id")
		})
		if err != nil {
			return err
		}
		defer m.Close()
		if id == "" && fs.NArg() == 1 {
			id = fs.Arg(0)
		}
		if id == "" {
			return usageError("client %s: want a client id", sub)
		}
		if sub == "delete" {
			if id == idp.EIDAppClientID {
				return fmt.Errorf("the eID app's own client cannot be deleted")
			}
			if err := m.Store.DeleteClient(ctx, id); err != nil {
				return err
			}
			return m.printJSON(stdout, map[string]any{"deleted": id})
		}
		c, err := m.Store.GetClient(ctx, id)
		if err != nil {
			return err
		}
		return m.printJSON(stdout, viewClient(c))
	}
	return usageError("client: unknown subcommand %q", sub)
}

// citizenRecord is the import and output form of a registry entry.
type citizenRecord = idp.CitizenRecord

type citizenView struct {
	Subject string `json:"sub"`
	idp.CitizenRecord
	CreatedAt time.Time    `json:"created_at"`
	Devices   []deviceInfo `json:"devices,omitempty"`
	// Guardianships in force, the citizen's as ward or as guardian
	// (`citizen show` only).
	Guardianships []guardianshipInfo `json:"guardianships,omitempty"`
}

// guardianshipInfo names both sides by personal id; Until is a court's
// last day, in Vietnam.
type guardianshipInfo struct {
	Ward      string    `json:"ward"`
	Guardian  string    `json:"guardian"`
	Source    string    `json:"source"`
	Until     string    `json:"until,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

type deviceInfo struct {
	ID         string     `json:"device_id"`
	Name       string     `json:"name"`
	Platform   string     `json:"platform,omitempty"`
	Model      string     `json:"model,omitempty"`
	Level      idp.Level  `json:"level"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// logOperatorLookup puts an operator's look-up of a citizen's record into
// that citizen's access log before anything is printed: the citizen sees
// that the platform's operators read their data, and when.
func (m *Main) logOperatorLookup(ctx context.Context, citizenID string) error {
	operator := "operator"
	if u, err := user.Current(); err == nil && u.Username != "" {
		operator = u.Username
	}
	_, err := m.Consent.Log(ctx, consent.Request{CitizenID: citizenID, Actor: consent.Actor{Operator: operator},
		Channel: consent.ChannelOperator, Purpose: "operator-lookup", Items: idp.KnownClaims},
		&consent.Decision{Basis: consent.BasisPublicTask, Law: "operating the citizen register"}, consent.OutcomeReleased)
	if err != nil {
		return fmt.Errorf("access log: %w (nothing was shown)", err)
	}
	return nil
}

func viewCitizen(c *idp.Citizen) citizenView {
	return citizenView{Subject: c.ID, CreatedAt: c.CreatedAt, CitizenRecord: c.Record()}
}

// ImportCitizens normalises, validates and stores recs all or none, each
// with a new subject identifier.
func (m *Main) ImportCitizens(ctx context.Context, recs []citizenRecord) error {
	cs := make([]*idp.Citizen, 0, len(recs))
	for _, r := range recs {
		cs = append(cs, r.Citizen())
	}
	if err := idp.CheckCitizens(cs); err != nil {
		return err
	}
	return m.importCitizens(ctx, cs)
}

// importCitizens stores citizens parsed by idp.ParseCitizens all or none.
func (m *Main) importCitizens(ctx context.Context, cs []*idp.Citizen) error {
	now := m.Now().UTC()
	for _, c := range cs {
		c.ID, c.CreatedAt = idp.NewSubject(), now
	}
	// Every guardian named must be in the file or registered; the store
	// checks again in its transaction, this lists each by row.
	err := idp.CheckGuardians(cs, func(pid string) (bool, error) {
		_, err := m.Store.GetCitizenByPersonalID(ctx, pid)
		if errors.Is(err, idp.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return err
	}
	if err := m.Store.CreateCitizens(ctx, cs); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return fmt.Errorf("nothing imported: a personal_id is already in the registry: %w", err)
		}
		return err
	}
	return nil
}

func citizenCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("citizen: want import, list, show, activate, revoke-device, lock or guardian")
	}
	sub, args := args[0], args[1:]
	if sub == "guardian" {
		return guardianCmd(ctx, args, env, stdout)
	}
	var pid, level, device string
	m, fs, err := adminMain(ctx, "citizen "+sub, args, env, func(fs *flag.FlagSet) {
		switch sub {
		case "show", "activate", "revoke-device":
			fs.StringVar(&pid, "id", "", "personal identification number (12 digits)")
		case "lock":
			fs.StringVar(&pid, "personal-id", "", "personal identification number (12 digits)")
		}
		if sub == "activate" {
			fs.StringVar(&level, "level", "substantial", "level proven at the desk: substantial or high")
		}
		if sub == "revoke-device" {
			fs.StringVar(&device, "device", "", "device id")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	switch sub {
	case "import":
		if fs.NArg() != 1 {
			return usageError("citizen import: want exactly one FILE")
		}
		// The operator names the file to import on their own command line.
		data, err := os.ReadFile(fs.Arg(0)) // #nosec G703 G304 -- operator-chosen path
		if err != nil {
			return err
		}
		cs, err := idp.ParseCitizens(fs.Arg(0), data)
		if err != nil {
			return err
		}
		if err := m.importCitizens(ctx, cs); err != nil {
			return err
		}
		return m.printJSON(stdout, map[string]any{"imported": len(cs)})
	case "list":
		cs, err := m.Store.ListCitizens(ctx, idp.CitizenFilter{})
		if err != nil {
			return err
		}
		out := make([]citizenView, 0, len(cs))
		for _, c := range cs {
			if err := m.logOperatorLookup(ctx, c.ID); err != nil {
				return err
			}
			out = append(out, viewCitizen(c))
		}
		return m.printJSON(stdout, map[string]any{"citizens": out})
	}
	if pid == "" && fs.NArg() == 1 {
		pid = fs.Arg(0)
	}
	if !idp.ValidPersonalID(pid) {
		if sub == "lock" {
			return usageError("citizen lock: --personal-id must be a 12-digit personal identification number")
		}
		return usageError("citizen %s: --id must be a 12-digit personal identification number", sub)
	}
	switch sub {
	case "show":
		c, err := m.Store.GetCitizenByPersonalID(ctx, pid)
		if err != nil {
			return err
		}
		if err := m.logOperatorLookup(ctx, c.ID); err != nil {
			return err
		}
		v := viewCitizen(c)
		ds, err := m.Store.ListDevices(ctx, c.ID)
		if err != nil {
			return err
		}
		for _, d := range ds {
			v.Devices = append(v.Devices, deviceInfo{ID: d.ID, Name: d.Name, Platform: d.Platform, Model: d.Model, Level: d.Level,
				CreatedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt, RevokedAt: d.RevokedAt})
		}
		if v.Guardianships, err = m.guardianshipInfo(ctx, c); err != nil {
			return err
		}
		return m.printJSON(stdout, v)
	case "activate":
		l, err := idp.ParseLevel(level)
		if err != nil {
			return usageError("citizen activate: %v", err)
		}
		code, exp, err := m.EID.Activate(ctx, pid, l)
		if err != nil {
			return err
		}
		return m.printJSON(stdout, map[string]any{"activation_code": code, "expires_at": exp.UTC().Format(time.RFC3339)})
	case "revoke-device":
		c, err := m.Store.GetCitizenByPersonalID(ctx, pid)
		if err != nil {
			return err
		}
		if err := m.EID.RevokeDevice(ctx, c.ID, device); err != nil {
			return err
		}
		return m.printJSON(stdout, map[string]any{"revoked": device})
	case "lock":
		c, err := m.Store.GetCitizenByPersonalID(ctx, pid)
		if err != nil {
			return err
		}
		res, err := m.LockCitizen(ctx, c.ID)
		if err != nil {
			return err
		}
		return m.printJSON(stdout, res)
	}
	return usageError("citizen: unknown subcommand %q", sub)
}

func keysCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("keys: want list or rotate")
	}
	sub, args := args[0], args[1:]
	var alg string
	var force bool
	m, _, err := adminMain(ctx, "keys "+sub, args, env, func(fs *flag.FlagSet) {
		if sub == "rotate" {
			fs.StringVar(&alg, "alg", "ES256", "algorithm whose key to rotate: ES256 or RS256")
			fs.BoolVar(&force, "force", false, "promote the next key even if it was published only recently")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	switch sub {
	case "list":
		// Read only: listing never creates keys (an operator inspecting a
		// database must not change it).
		ks, err := m.Keys.List(ctx)
		if err != nil {
			return err
		}
		return m.printJSON(stdout, map[string]any{"keys": ks})
	case "rotate":
		if err := m.Keys.Ensure(ctx); err != nil {
			return err
		}
		k, err := m.Keys.Rotate(ctx, alg, force)
		if err != nil {
			return err
		}
		return m.printJSON(stdout, map[string]any{"activated": k.ID, "alg": k.Alg})
	}
	return usageError("keys: unknown subcommand %q", sub)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
