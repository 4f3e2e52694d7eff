package idp

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/onedoor/onedoor/consent"
)

// Level is a level of assurance, carried in the ID token's acr claim.
type Level string

// Levels of assurance, lowest first.
const (
	LevelLow         Level = "urn:onedoor:loa:low"
	LevelSubstantial Level = "urn:onedoor:loa:substantial"
	LevelHigh        Level = "urn:onedoor:loa:high"
)

// ParseLevel accepts the short names used on the command line and the full URNs.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "low", string(LevelLow):
		return LevelLow, nil
	case "substantial", string(LevelSubstantial):
		return LevelSubstantial, nil
	case "high", string(LevelHigh):
		return LevelHigh, nil
	}
	return "", fmt.Errorf("level %q: want low, substantial or high: %w", s, ErrInvalid)
}

// Rank orders levels; unknown levels rank below low.
func (l Level) Rank() int {
	switch l {
	case LevelLow:
		return 1
	case LevelSubstantial:
		return 2
	case LevelHigh:
		return 3
	}
	return 0
}

// Citizen is one person in the citizen registry.
type Citizen struct {
	ID          string // stable subject identifier, never the personal ID
	PersonalID  string // 12-digit personal identification number
	FamilyName  string
	GivenName   string
	Birthdate   string // YYYY-MM-DD
	Gender      string // female, male or other
	Address     string
	PhoneNumber string
	CreatedAt   time.Time
	// Guardians are the personal ids of the citizen's parents or guardians
	// recorded with them (citizen import's guardians): CreateCitizens
	// records each as a registry guardianship in the same transaction. It
	// is input only: reads leave it empty, and CitizenStore.Guardianships
	// returns what was recorded.
	Guardians []string
}

// Name is the full name in Vietnamese order: family name first.
func (c *Citizen) Name() string {
	return strings.TrimSpace(c.FamilyName + " " + c.GivenName)
}

var personalIDRE = regexp.MustCompile(`^[0-9]{12}$`)

// ValidPersonalID reports whether s is a 12-digit personal identification number.
func ValidPersonalID(s string) bool { return personalIDRE.MatchString(s) }

// Normalize brings registry fields to their canonical form: trimmed text,
// gender as female/male/other (Vietnamese Nam/Nữ/Khác accepted), and
// Vietnamese phone numbers in E.164 (0912345678 becomes +84912345678).
func (c *Citizen) Normalize() {
	c.PersonalID = strings.TrimSpace(c.PersonalID)
	c.FamilyName = strings.TrimSpace(c.FamilyName)
	c.GivenName = strings.TrimSpace(c.GivenName)
	c.Birthdate = strings.TrimSpace(c.Birthdate)
	c.Address = strings.TrimSpace(c.Address)
	switch strings.ToLower(strings.TrimSpace(c.Gender)) {
	case "female", "f", "nữ", "nu":
		c.Gender = "female"
	case "male", "m", "nam":
		c.Gender = "male"
	case "other", "khác", "khac":
		c.Gender = "other"
	}
	c.PhoneNumber = NormalizePhone(c.PhoneNumber)
}

// NormalizePhone turns a Vietnamese number written locally (0912 345 678) or
// without the plus (84912345678) into E.164; anything else is only trimmed.
func NormalizePhone(p string) string {
	p = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, strings.TrimSpace(p))
	switch {
	case p == "" || strings.HasPrefix(p, "+"):
		return p
	case strings.HasPrefix(p, "0") && len(p) >= 10 && len(p) <= 11:
		return "+84" + p[1:]
	case strings.HasPrefix(p, "84") && len(p) >= 11 && len(p) <= 12:
		return "+" + p
	}
	return p
}

// Validate reports every problem with the citizen's registry fields at once.
func (c *Citizen) Validate() error {
	var probs []string
	for _, f := range []struct{ name, v string }{{"family_name", c.FamilyName}, {"given_name", c.GivenName}, {"address", c.Address}, {"phone_number", c.PhoneNumber}} {
		if !cleanText(f.v) {
			probs = append(probs, f.name+" must be valid UTF-8 without control characters (at most 300 bytes)")
		}
	}
	if !ValidPersonalID(c.PersonalID) {
		probs = append(probs, "personal_id must be 12 digits")
	}
	if strings.TrimSpace(c.FamilyName) == "" {
		probs = append(probs, "family_name is required")
	}
	if strings.TrimSpace(c.GivenName) == "" {
		probs = append(probs, "given_name is required")
	}
	if d, err := time.Parse("2006-01-02", c.Birthdate); err != nil || d.After(time.Now()) {
		probs = append(probs, "birthdate must be a past date as YYYY-MM-DD")
	}
	switch c.Gender {
	case "female", "male", "other":
	default:
		probs = append(probs, "gender must be female, male or other")
	}
	if c.PhoneNumber != "" && !phoneRE.MatchString(c.PhoneNumber) {
		probs = append(probs, "phone_number must be in E.164 form (+84...)")
	}
	if len(probs) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(probs, "; "), ErrInvalid)
	}
	return nil
}

// cleanText reports whether s is printable UTF-8 text of reasonable length:
// registry data ends up in tokens, pages and logs.
func cleanText(s string) bool {
	if len(s) > 300 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

var phoneRE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Auth methods a client may use at the token endpoint.
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
	AuthNone          = "none"
)

// Client is an OIDC relying party (an agency's site or a native app).
type Client struct {
	ID                     string
	Name                   string
	SecretHash             []byte // keyed hash of the secret; empty for none/private_key_jwt
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	Scopes                 []string
	// Claims lists registry claims the client may receive beyond those its
	// scopes stand for (see AllowedClaims).
	Claims      []string
	AuthMethod  string
	JWKS        string // JSON Web Key Set document, for private_key_jwt
	JWKSURI     string
	PARRequired bool
	IDTokenAlg  string // ES256 (default) or RS256
	// Profile is the security profile the client is held to: "" for
	// none, or ProfileFAPI2 (see client.go).
	Profile string
	// Agency is the code of the agency the client acts for (an agency's
	// back end calling the mobile API); empty for none. Its own tokens
	// (client_credentials) carry it, so the API needs no lookup.
	Agency string
	// Purposes is the client's catalog of purposes, why it asks for data
	// (`onedoor client create --purpose CODE:TEXT`), in registration order:
	// a login names one (RFC 9396 authorization_details) or gets the first,
	// and the citizen's consent is recorded per purpose.
	Purposes  []consent.Purpose
	CreatedAt time.Time
	// BackchannelLogoutURI receives OIDC Back-Channel Logout 1.0 logout
	// tokens when a session the client logged in through ends; empty for
	// none.
	BackchannelLogoutURI string
	// BackchannelLogoutSessionRequired says the client needs sid in logout
	// tokens; OneDoor always sends it.
	BackchannelLogoutSessionRequired bool
	// BackchannelTokenDeliveryMode is the client's CIBA token delivery
	// mode (CIBAModePoll or CIBAModePing), set only with GrantTypeCIBA.
	BackchannelTokenDeliveryMode string
	// BackchannelClientNotificationEndpoint receives the ping of a CIBA
	// client in ping mode (https, http only on loopback).
	BackchannelClientNotificationEndpoint string
	// Registration: the fields below are set only on a client an agency
	// registered itself (RFC 7591, see registration.go); an operator's
	// client has them all zero.
	Registration ClientRegistration
}

// EIDAppClientID is the eID app's own public native client, created by the
// migrations.
const EIDAppClientID = "onedoor-eid-app"

// Activation is the one-time code that lets a citizen enroll an eID app after
// identity proofing at an authority's desk.
type Activation struct {
	CitizenID string
	CodeHash  []byte // keyed hash of the code
	Level     Level
	ExpiresAt time.Time
	Attempts  int
	UsedAt    *time.Time
	CreatedAt time.Time
}

// Device is one enrolled installation of the citizen's eID app.
type Device struct {
	ID        string
	CitizenID string
	Name      string
	PublicKey string // ES256 public key as a JWK (JSON)
	Level     Level  // the level proven at enrollment
	// Platform and Model are what the app declared about itself at
	// enrollment (eid.ValidPlatform, eid.MaxDeviceModel), shown so the
	// citizen can tell devices apart; never trusted for anything else.
	Platform  string
	Model     string
	CreatedAt time.Time
	RevokedAt *time.Time
	// LastUsedAt is when the device last approved a login or signed a
	// grant, kept to DeviceStore.TouchDevice's resolution; nil before.
	LastUsedAt *time.Time
}

// Key states along a rotation.
const (
	KeyNext    = "next"    // published in JWKS, not yet signing
	KeyActive  = "active"  // signing
	KeyRetired = "retired" // published until PublishUntil, no longer signing
)

// SigningKey is a token signing key.
type SigningKey struct {
	ID           string // kid
	Alg          string // ES256 or RS256
	State        string
	Private      []byte // PKCS#8 DER, encrypted at rest by the caller
	Public       string // public JWK (JSON)
	CreatedAt    time.Time
	ActivatedAt  *time.Time
	RetiredAt    *time.Time
	PublishUntil *time.Time // retired keys stay in JWKS until then
}

// RefreshToken is one refresh-token family (one grant), stored as one row
// updated in place on every rotation. Signature is the current token;
// PreviousSignature is the token it replaced, which the caller may still
// honour until RotatedAt plus its grace window. Tokens are identified by
// signatures (keyed hashes), never by their values.
type RefreshToken struct {
	Signature         string
	PreviousSignature string
	RequestID         string // the family: the grant's request ID
	ClientID          string
	Subject           string
	DeviceID          string // eID device that approved the grant or holds it; may be empty
	Active            bool
	RotatedAt         *time.Time // when PreviousSignature was redeemed
	ExpiresAt         time.Time
	CreatedAt         time.Time
	Request           []byte // serialised request, owned by idp/oidc
}

// RefreshRotation replaces a family's current token in one conditional
// write. Redeeming the current token makes it the previous one; redeeming
// the previous token again while it was rotated after GraceFrom replaces the
// current token (the child of the first redemption dies), so a family never
// has two live children.
type RefreshRotation struct {
	RequestID string
	Redeemed  string // signature of the token presented
	Signature string // signature of the new current token
	At        time.Time
	GraceFrom time.Time // a previous token rotated before this is spent
	ExpiresAt time.Time
	Request   []byte
}
