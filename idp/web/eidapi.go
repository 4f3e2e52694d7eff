package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/represent"
)

// Paths of the eID app's API.
const (
	PathEnrollments   = "/eid/v1/enrollments"
	PathLoginRequests = "/eid/v1/login-requests/"
	PathDevices       = "/eid/v1/devices"
)

func (s *Server) eidRoutes(m *prefixMux) {
	m.HandleFunc("POST "+PathEnrollments, s.enroll)
	m.HandleFunc("GET "+PathLoginRequests+"{id}", s.appLoginRequest)
	m.HandleFunc("GET "+strings.TrimSuffix(PathLoginRequests, "/"), s.appPendingLogins)
	m.HandleFunc("POST "+PathLoginRequests+"{id}/decision", s.appDecision)
	m.HandleFunc("GET "+PathDevices, s.appDevices)
	m.HandleFunc("DELETE "+PathDevices+"/{id}", s.appRevokeDevice)
}

// decodeStrict reads a JSON body, rejecting unknown fields, duplicate
// trailing documents and bodies over 64 KiB.
func decodeStrict(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return errors.New("Content-Type must be application/json")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("the body is not the expected JSON object")
	}
	if dec.More() {
		return errors.New("the body has more than one JSON value")
	}
	return nil
}

type enrollBody struct {
	PersonalID     string          `json:"personal_id"`
	ActivationCode string          `json:"activation_code"`
	PublicKey      json.RawMessage `json:"public_key"`
	DeviceName     string          `json:"device_name"`
	Platform       string          `json:"platform"`
	Model          string          `json:"model"`
}

// enroll binds a new eID app installation to a citizen with the one-time
// activation code from identity proofing.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	if !s.allow(r.Context(), w, s.limitEnrollAddr(), s.clientKey(r)) {
		return
	}
	var b enrollBody
	if err := decodeStrict(r, &b); err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	// Counted whether or not a citizen has this personal id, so the limit
	// reveals nothing either.
	if idp.ValidPersonalID(b.PersonalID) && !s.allow(r.Context(), w, s.limitEnrollPID(), s.subjectKey("personal-id", b.PersonalID)) {
		return
	}
	d, err := s.eid.Enroll(r.Context(), eid.EnrollRequest{
		PersonalID: b.PersonalID, ActivationCode: b.ActivationCode, PublicKey: b.PublicKey, DeviceName: b.DeviceName,
		Platform: b.Platform, Model: b.Model,
	})
	switch {
	case errors.Is(err, idp.ErrUnavailable):
		s.unavailable(w, "store", err)
		return
	case errors.Is(err, eid.ErrEnrollmentFailed):
		// One message for every cause: nothing reveals whether the personal
		// id exists or which part was wrong.
		writeJSONError(w, http.StatusBadRequest, "enrollment_failed", "The personal ID and activation code do not match a valid activation.")
		return
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The enrollment request is not valid.")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"device_id": d.ID, "level": d.Level})
}

// device authenticates the app by the device-signed JWT in the
// Authorization header ("DeviceJWT <token>"), through eid.AuthenticateHeader.
func (s *Server) device(w http.ResponseWriter, r *http.Request) (*idp.Device, bool) {
	d, err := s.eid.AuthenticateHeader(r.Context(), r.Header.Get("Authorization"), s.cfg.Issuer)
	switch {
	case err == nil:
		if !s.allow(r.Context(), w, s.limitDevice(), d.ID) {
			return nil, false
		}
		return d, true
	case errors.Is(err, idp.ErrUnavailable):
		s.unavailable(w, "store", err)
	case errors.Is(err, eid.ErrNoDeviceToken):
		w.Header().Set("WWW-Authenticate", eid.DeviceAuthScheme+` realm="onedoor-eid"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_token", "A device token is required.")
	default:
		w.Header().Set("WWW-Authenticate", eid.DeviceAuthScheme+` realm="onedoor-eid", error="invalid_token"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The device token is not valid.")
	}
	return nil, false
}

// appLoginRequest shows the app what a login request asks for.
func (s *Server) appLoginRequest(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	lr, err := s.eid.Login(r.Context(), r.PathValue("id"))
	if err == nil && !lr.For(dev) {
		// Sent to another citizen (login_hint): as if it did not exist.
		err = idp.ErrNotFound
	}
	if err != nil {
		s.loginRequestError(w, err)
		return
	}
	view, err := s.appView(r.Context(), dev, lr)
	if errors.Is(err, idp.ErrNotFound) {
		writeJSONError(w, http.StatusNotFound, "not_found", "The login request does not exist or has expired.")
		return
	}
	if err != nil {
		s.unavailable(w, "store", err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// appView is what dev's app is shown of lr; idp.ErrNotFound when its
// client is gone.
func (s *Server) appView(ctx context.Context, dev *idp.Device, lr *eid.LoginRequest) (eid.AppView, error) {
	view := s.eid.AppView(lr)
	if lr.ClientID == AccountClientID {
		// The citizen signing in to their own account page: no client, no
		// claims, nothing released.
		view.Claims = nil
		return view, nil
	}
	// The request was planned when it started; an operator may have
	// narrowed the client since: the app shows only what may be released.
	client, err := s.store.GetClient(ctx, lr.ClientID)
	if err != nil {
		return view, err
	}
	allowed := client.AllowedClaims()
	view.Claims = slices.DeleteFunc(view.Claims, func(c eid.ClaimRequest) bool { return !slices.Contains(allowed, c.Name) })
	// What this citizen already agreed to share with this client for this
	// purpose: the app asks only for the approval, not those claims.
	plan := &idp.ReleasePlan{Purpose: consent.Purpose{Code: lr.PurposeCode, Text: lr.Purpose}, Recipient: lr.ClientName, Claims: view.Claims}
	agr, err := s.release.Silent(ctx, dev.CitizenID, client, plan)
	if err != nil {
		return view, err
	}
	view.Agreed = agr.Agreed
	if lr.Representation && s.cfg.Represent != nil {
		// Only now is the citizen known: the device that fetches the view.
		rs, err := s.cfg.Represent.Representations(ctx, dev.CitizenID)
		if errors.Is(err, represent.ErrNotFound) {
			rs, err = nil, nil // not in the registry representation reads: nobody to act for
		}
		if err != nil {
			return view, representErr(err)
		}
		view.Representations = eid.Choices(rs)
	}
	return view, nil
}

func (s *Server) loginRequestError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, idp.ErrUnavailable):
		s.unavailable(w, "store", err)
	case errors.Is(err, idp.ErrNotFound), errors.Is(err, idp.ErrExpired):
		writeJSONError(w, http.StatusNotFound, "not_found", "The login request does not exist or has expired.")
	case errors.Is(err, idp.ErrConflict):
		writeJSONError(w, http.StatusConflict, "already_decided", "The login request has already been answered.")
	case errors.Is(err, eid.ErrLevelTooLow):
		writeJSONError(w, http.StatusForbidden, "insufficient_level", "This device's level of assurance is too low for the request.")
	case errors.Is(err, idp.ErrInvalid):
		writeJSONError(w, http.StatusBadRequest, "invalid_request", publicReason(err))
	default:
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The request could not be processed.")
	}
}

// publicReason keeps validation messages (which name fields, never data) and
// drops anything else.
func publicReason(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

type decisionBody struct {
	Approval string `json:"approval"`
}

// appDecision records the citizen's answer, signed by the device key.
func (s *Server) appDecision(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	var b decisionBody
	if err := decodeStrict(r, &b); err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	d, err := s.eid.DecideAs(r.Context(), r.PathValue("id"), dev, b.Approval, s.actAs())
	if err != nil {
		s.loginRequestError(w, err)
		return
	}
	s.cibaDecided(r.Context(), r.PathValue("id"))
	resp := decisionResponse{Status: eid.StatusDenied, Reason: d.Reason}
	if d.Approved {
		resp.Status = eid.StatusApproved
	}
	if d.Reason == eid.ReasonWrongMatch {
		// A relayed login (someone else's browser shows the number) or a
		// slip; the citizen starts again. Nothing personal in the log.
		client := ""
		if lr, _, err := s.eid.Lookup(r.Context(), r.PathValue("id")); err == nil && lr != nil {
			client = lr.ClientID
		}
		s.log.Warn("eid approval picked the wrong match number: login denied",
			"request_hash", hashHex(r.PathValue("id"))[:16], "client_id", client)
	}
	if d.ReturnCode != "" {
		// Same device: the app opens this in the phone's browser, and only
		// the browser that started the login continues with it.
		resp.ReturnURL = s.cfg.Issuer + PathContinue + "?id=" + url.QueryEscape(r.PathValue("id")) + "&code=" + url.QueryEscape(d.ReturnCode)
	}
	writeJSON(w, http.StatusOK, resp)
}

// decisionResponse is the answer to an app's decision.
type decisionResponse struct {
	Status eid.Status `json:"status"`
	// Reason is why the IdP denied an approval: eid.ReasonWrongMatch.
	Reason string `json:"reason,omitempty"`
	// ReturnURL returns the citizen to the browser after a same-device
	// approval, with the one-time return code.
	ReturnURL string `json:"return_url,omitempty"`
}

type deviceView struct {
	ID         string     `json:"device_id"`
	Name       string     `json:"name"`
	Platform   string     `json:"platform,omitempty"`
	Model      string     `json:"model,omitempty"`
	Level      idp.Level  `json:"level"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Current    bool       `json:"current"`
}

// appDevices lists the citizen's devices to the app.
func (s *Server) appDevices(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	ds, err := s.eid.Devices(r.Context(), dev.CitizenID)
	if err != nil {
		s.loginRequestError(w, err)
		return
	}
	out := make([]deviceView, 0, len(ds))
	for _, d := range ds {
		out = append(out, deviceView{ID: d.ID, Name: d.Name, Platform: d.Platform, Model: d.Model, Level: d.Level,
			CreatedAt: d.CreatedAt, LastUsedAt: d.LastUsedAt, RevokedAt: d.RevokedAt, Current: d.ID == dev.ID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
}

// appRevokeDevice lets the citizen revoke one of their devices (a lost phone)
// from another.
func (s *Server) appRevokeDevice(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	if err := s.eid.RevokeDeviceFrom(r.Context(), dev, r.PathValue("id")); err != nil {
		s.loginRequestError(w, err)
		return
	}
	s.log.Info("device revoked by the citizen", "device", r.PathValue("id"), "from_device", dev.ID)
	w.WriteHeader(http.StatusNoContent)
}
