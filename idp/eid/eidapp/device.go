package eidapp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp/eid"
)

// Paths of the eID API under the issuer URL.
const (
	enrollPath       = "/eid/v1/enrollments"
	loginRequestPath = "/eid/v1/login-requests/"
	decisionSuffix   = "/decision"
)

// tokenLifetime is how long device tokens and approvals stay valid; the IdP
// accepts at most eid.MaxTokenLifetime.
const tokenLifetime = time.Minute

// Enroll creates the device key, enrolls it at the IdP with the activation
// code from identity proofing and saves device.json. It refuses to replace
// an existing enrollment.
func (a *App) Enroll(ctx context.Context, idpURL, personalID, activationCode, deviceName string) (*Enrollment, error) {
	if a.dev != nil {
		return nil, fmt.Errorf("already enrolled as device %s; remove %s/%s first", a.dev.DeviceID, a.Home, DeviceFile)
	}
	base, err := baseURL(idpURL)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: key.Public(), Algorithm: "ES256", Use: "sig"})
	if err != nil {
		return nil, fmt.Errorf("encode device key: %w", err)
	}
	req := eid.EnrollRequest{PersonalID: personalID, ActivationCode: activationCode, PublicKey: jwk, DeviceName: deviceName,
		Platform: a.Platform, Model: a.Model}
	var resp struct {
		DeviceID string `json:"device_id"`
		Level    string `json:"level"`
	}
	if err := call(ctx, a.client(), http.MethodPost, base+enrollPath, "", req, &resp, http.StatusOK, http.StatusCreated); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if resp.DeviceID == "" || strings.ContainsAny(resp.DeviceID, "/?#%") {
		return nil, fmt.Errorf("enroll: IdP answered without a usable device_id")
	}
	d := &device{
		Enrollment: Enrollment{
			IDP: base, DeviceID: resp.DeviceID, PersonalID: personalID,
			DeviceName: deviceName, Level: resp.Level, EnrolledAt: a.now().UTC(),
		},
		key: key,
	}
	if err := a.saveDevice(d); err != nil {
		return nil, err
	}
	a.dev = d
	return a.Enrollment(), nil
}

// sign makes a compact JWS of type typ with the device key.
func (d *device) sign(typ string, claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header = map[string]any{"alg": "ES256", "typ": typ, "kid": d.DeviceID}
	s, err := t.SignedString(d.key)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	return s, nil
}

func (a *App) registered(d *device, audience string) jwt.RegisteredClaims {
	now := a.now()
	return jwt.RegisteredClaims{
		Issuer:    d.DeviceID,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(tokenLifetime)),
		ID:        rand.Text(),
	}
}

// authorization is a fresh "DeviceJWT <token>" header value; each request
// needs its own, since the IdP spends every jti.
func (a *App) authorization(d *device, audience string) (string, error) {
	tok, err := d.sign(eid.TypeDeviceToken, eid.DeviceClaims{RegisteredClaims: a.registered(d, audience)})
	if err != nil {
		return "", err
	}
	return "DeviceJWT " + tok, nil
}

// target reads a QR payload and checks it names the IdP the device is
// enrolled with: a QR code can point anywhere, the device key must not.
func (a *App) target(payload string) (d *device, issuer, requestID string, err error) {
	if d, err = a.device(); err != nil {
		return nil, "", "", err
	}
	issuer, requestID, err = eid.ParsePayload(strings.TrimSpace(payload))
	if err != nil {
		return nil, "", "", err
	}
	if strings.TrimSuffix(issuer, "/") != d.IDP {
		return nil, "", "", fmt.Errorf("QR code is for %s, this device is enrolled with %s", issuer, d.IDP)
	}
	return d, d.IDP, requestID, nil
}

// Fetch gets the login request a QR payload names, as the app shows it.
func (a *App) Fetch(ctx context.Context, payload string) (*eid.AppView, error) {
	d, issuer, id, err := a.target(payload)
	if err != nil {
		return nil, err
	}
	return a.fetch(ctx, d, issuer, id)
}

func (a *App) fetch(ctx context.Context, d *device, issuer, id string) (*eid.AppView, error) {
	auth, err := a.authorization(d, issuer)
	if err != nil {
		return nil, err
	}
	var v eid.AppView
	if err := call(ctx, a.client(), http.MethodGet, issuer+loginRequestPath+url.PathEscape(id), auth, nil, &v, http.StatusOK); err != nil {
		return nil, fmt.Errorf("fetch login request: %w", err)
	}
	if v.RequestID != id {
		return nil, fmt.Errorf("fetch login request: IdP answered for request %q", v.RequestID)
	}
	return &v, nil
}

// Result is what the app answered to a login request.
type Result struct {
	RequestID   string `json:"request_id"`
	ClientID    string `json:"client_id"`
	ClientName  string `json:"client_name"`
	PurposeCode string `json:"purpose_code,omitempty"`
	Purpose     string `json:"purpose,omitempty"`
	// Mode is how the payload opened the app: eid.ModeCrossDevice (a QR
	// code: the citizen picks the number) or eid.ModeSameDevice (an app
	// link: the IdP answers with ReturnURL).
	Mode string `json:"mode"`
	// MatchChoices are the numbers the app offered; MatchNumber the one
	// picked (empty when none was).
	MatchChoices []string `json:"match_choices"`
	MatchNumber  string   `json:"match_number,omitempty"`
	Decision     string   `json:"decision"` // eid.DecisionApprove or eid.DecisionDeny
	Claims       []string `json:"claims"`   // shared; empty when denied
	// Declined lists the optional claims asked for and not shared.
	Declined []string `json:"declined,omitempty"`
	Status   string   `json:"status"`           // the IdP's status after the answer
	Reason   string   `json:"reason,omitempty"` // why the IdP denied it: eid.ReasonWrongMatch
	// ReturnURL is where a same-device approval sends the citizen back:
	// the browser that started the login continues there, with a one-time
	// code, and nowhere else.
	ReturnURL string `json:"return_url,omitempty"`
	// ActAs is the party the citizen acts for (its tax code or personal
	// id), and ActAsName its name as the app offered it; empty: themselves.
	ActAs     string `json:"act_as,omitempty"`
	ActAsName string `json:"act_as_name,omitempty"`
}

// ErrPickNeeded means a login opened from a QR code was to be approved
// without the number the browser's page shows: the app knows only the
// three choices, and the citizen must pick.
var ErrPickNeeded = errors.New("pick the number the login page shows")

// ErrWrongMatch means the IdP denied the login because the number picked
// was not the one the browser's page shows; the login must start again.
var ErrWrongMatch = errors.New("the number picked is not the one the login page shows: the IdP denied the login")

// Approve fetches the login request a QR payload or app link names and
// answers it with an approval signed by the device key over the recipient,
// the purpose and the claims shared. match is the number the citizen picked
// among the request's choices, reading it on the browser's page: required to
// approve from a QR code (ErrPickNeeded, with the choices, without it), not
// asked for from an app link (the IdP then returns a ReturnURL instead).
// share lists the claims to share; nil means every requested claim. A deny
// shares nothing and needs no pick. A pick the IdP finds wrong returns the
// Result (status denied) with ErrWrongMatch.
func (a *App) Approve(ctx context.Context, payload, match string, deny bool, share []string) (*Result, error) {
	return a.ApproveAs(ctx, payload, match, deny, share, "")
}

// ApproveAs is Approve acting for the party actAs names (a tax code or a
// personal id, as the request's representations list it); "" is the
// citizen themselves. The approval signs it (act_as); the IdP refuses a
// party the citizen does not represent, or a login that did not ask the
// representation scope, and the request stays pending.
func (a *App) ApproveAs(ctx context.Context, payload, match string, deny bool, share []string, actAs string) (*Result, error) {
	d, issuer, id, err := a.target(payload)
	if err != nil {
		return nil, err
	}
	v, err := a.fetch(ctx, d, issuer, id)
	if err != nil {
		return nil, err
	}
	mode := eid.PayloadMode(strings.TrimSpace(payload))
	if v.BindingMessage != "" {
		// A backchannel (CIBA) request: no browser, no pick; the citizen
		// compares the binding message with the agency's.
		mode, match = eid.ModeCIBA, ""
	}
	if match != "" && !slices.Contains(v.MatchChoices, match) {
		return nil, fmt.Errorf("%w: %q is not among the choices %s", ErrPickNeeded, match, strings.Join(v.MatchChoices, ", "))
	}
	if !deny && match == "" && mode == eid.ModeCrossDevice {
		return nil, fmt.Errorf("%w: one of %s", ErrPickNeeded, strings.Join(v.MatchChoices, ", "))
	}
	res := &Result{
		RequestID: v.RequestID, ClientID: v.ClientID, ClientName: v.ClientName,
		PurposeCode: v.PurposeCode, Purpose: v.Purpose, Mode: mode,
		MatchChoices: v.MatchChoices, MatchNumber: match,
		Decision: eid.DecisionApprove, Claims: []string{},
	}
	switch {
	case deny:
		res.Decision = eid.DecisionDeny
	case share == nil:
		for _, c := range v.Claims {
			res.Claims = append(res.Claims, c.Name)
		}
	default:
		res.Claims = slices.Clone(share)
	}
	if !deny {
		for _, c := range v.Claims {
			if c.Optional && !slices.Contains(res.Claims, c.Name) {
				res.Declined = append(res.Declined, c.Name)
			}
		}
	}
	ac := eid.ApprovalClaims{
		RegisteredClaims: a.registered(d, issuer),
		RequestID:        v.RequestID,
		MatchNumber:      match,
		Decision:         res.Decision,
		Mode:             mode,
		Claims:           res.Claims,
	}
	if !deny {
		ac.ClientID, ac.Purpose, ac.BindingMessage = v.ClientID, v.PurposeCode, v.BindingMessage
		ac.ActAs, res.ActAs = actAs, actAs
		for _, c := range v.Representations {
			if c.Ref == actAs && actAs != "" {
				res.ActAsName = c.Name
			}
		}
	}
	approval, err := d.sign(eid.TypeApproval, ac)
	if err != nil {
		return nil, err
	}
	auth, err := a.authorization(d, issuer)
	if err != nil {
		return nil, err
	}
	var out struct {
		Status    string `json:"status"`
		Reason    string `json:"reason"`
		ReturnURL string `json:"return_url"`
	}
	body := map[string]string{"approval": approval}
	u := issuer + loginRequestPath + url.PathEscape(id) + decisionSuffix
	if err := call(ctx, a.client(), http.MethodPost, u, auth, body, &out, http.StatusOK, http.StatusCreated, http.StatusNoContent); err != nil {
		return nil, fmt.Errorf("answer login request: %w", err)
	}
	res.Status, res.Reason = out.Status, out.Reason
	if out.ReturnURL != "" {
		// Only ever a page of the IdP the device is enrolled with.
		if err := sameOrigin(out.ReturnURL, issuer); err != nil {
			return nil, fmt.Errorf("answer login request: return URL: %w", err)
		}
		res.ReturnURL = out.ReturnURL
	}
	if res.Reason == eid.ReasonWrongMatch {
		return res, ErrWrongMatch
	}
	if res.Status == "" {
		res.Status = string(eid.StatusApproved)
		if deny {
			res.Status = string(eid.StatusDenied)
		}
	}
	return res, nil
}
