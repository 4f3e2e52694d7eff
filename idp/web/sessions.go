package web

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// Sessions and devices on the account page, and locking the account. The
// single sign-on session's durable index (idp/sso) finds a citizen's
// sessions; ending one queues back-channel logouts to every client it
// logged in to.
const (
	PathAccountLock          = "/account/lock"
	PathAccountRevokeDevice  = "/account/devices/{id}/revoke"
	PathAccountRevokeSession = "/account/sessions/{sid}/revoke"
)

// errSessionEnded means the session was ended (a logout, a lock, a revoked
// device) after the request read it.
var errSessionEnded = errors.New("single sign-on session ended")

func (s *Server) accountSessionRoutes(m *prefixMux) {
	m.HandleFunc("POST "+PathAccountLock, s.accountLock)
	m.HandleFunc("POST "+PathAccountRevokeDevice, s.accountRevokeDevice)
	m.HandleFunc("POST "+PathAccountRevokeSession, s.accountRevokeSession)
}

// indexSession records a new session in the durable index before its
// ephemeral entry exists, so no live session is missing from it.
func (s *Server) indexSession(ctx context.Context, bs *browserSession) error {
	if s.cfg.Sessions == nil {
		return nil
	}
	return s.cfg.Sessions.Start(ctx, &idp.Session{SID: bs.SID, CitizenID: bs.CitizenID, DeviceID: bs.DeviceID, Level: bs.Level,
		Key: bs.key, AuthTime: bs.AuthTime, ExpiresAt: bs.AuthTime.Add(s.cfg.SessionTTL)})
}

// touchIndex records the client in the durable index; errSessionEnded when
// the session has ended meanwhile. A session started before the index
// existed (an upgrade) is indexed now.
func (s *Server) touchIndex(ctx context.Context, bs *browserSession, clientID string) error {
	if s.cfg.Sessions == nil {
		return nil
	}
	err := s.cfg.Sessions.Touch(ctx, bs.SID, clientID)
	if errors.Is(err, idp.ErrNotFound) {
		if err := s.indexSession(ctx, bs); err != nil && !errors.Is(err, idp.ErrConflict) {
			return err
		}
		err = s.cfg.Sessions.Touch(ctx, bs.SID, clientID)
	}
	if errors.Is(err, idp.ErrExpired) {
		return errSessionEnded
	}
	return err
}

// endIndexed ends the session stored under key (the browser's cookie), if
// any, in the durable index: its back-channel logouts are queued.
func (s *Server) endIndexed(ctx context.Context, key string) error {
	if s.cfg.Sessions == nil {
		return nil
	}
	v, err := s.eph.Get(ctx, key)
	if errors.Is(err, idp.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var bs browserSession
	if json.Unmarshal(v, &bs) != nil || bs.SID == "" {
		return nil
	}
	_, err = s.cfg.Sessions.End(ctx, idp.SessionFilter{SID: bs.SID})
	return err
}

// securityView is the account page's devices and sessions sections.
type securityView struct {
	Enabled  bool
	Devices  []accountDevice
	Sessions []accountSession
	LockURL  string
	Notice   string
}

type accountDevice struct {
	ID        string
	Name      string
	Level     string
	Enrolled  string
	EnrolledV string
	// Describe is the platform and model the app declared ("Android ·
	// Pixel 9"); empty when it declared neither.
	Describe string
	// LastUsed (RFC 3339) and LastUsedV (Vietnam time) are its latest
	// recorded use or, if later, the latest live session it approved.
	LastUsed  string
	LastUsedV string
	Current   bool // it approved this browser's session
	Action    string
}

// describeDevice is the platform (by its label when known) and model an
// app declared, for the citizen to tell their devices apart.
func describeDevice(t map[string]string, d *idp.Device) string {
	p := d.Platform
	if l := t["platform."+p]; l != "" {
		p = l
	}
	switch {
	case p != "" && d.Model != "":
		return p + " · " + d.Model
	case p != "":
		return p
	}
	return d.Model
}

type accountSession struct {
	SID        string
	Clients    []string
	Started    string
	StartedV   string
	Level      string
	Current    bool
	Action     string
	DeviceName string
}

// security builds the devices and sessions sections for the signed-in
// citizen.
func (s *Server) security(ctx context.Context, r *http.Request, sess *browserSession, t map[string]string) (securityView, error) {
	var v securityView
	if s.cfg.Sessions == nil {
		return v, nil
	}
	v.Enabled = true
	v.LockURL = s.cfg.Issuer + PathAccountLock
	switch r.URL.Query().Get("revoked") {
	case "device":
		v.Notice = t["account.device_revoked"]
	case "session":
		v.Notice = t["account.session_revoked"]
	}
	sessions, err := s.cfg.Sessions.List(ctx, sess.CitizenID)
	if err != nil {
		return v, err
	}
	lastUsed := map[string]time.Time{}
	for _, x := range sessions {
		if x.AuthTime.After(lastUsed[x.DeviceID]) {
			lastUsed[x.DeviceID] = x.AuthTime
		}
	}
	devs, err := s.eid.Devices(ctx, sess.CitizenID)
	if err != nil {
		return v, err
	}
	names := map[string]string{}
	for _, d := range devs {
		if d.RevokedAt != nil {
			continue
		}
		names[d.ID] = d.Name
		dv := accountDevice{ID: d.ID, Name: d.Name, Level: t["level."+string(d.Level)], Enrolled: d.CreatedAt.UTC().Format(time.RFC3339),
			EnrolledV: d.CreatedAt.In(vietnam).Format("02/01/2006 15:04"), Current: d.ID == sess.DeviceID,
			Action: s.cfg.Issuer + "/account/devices/" + url.PathEscape(d.ID) + "/revoke"}
		if dv.Level == "" {
			dv.Level = string(d.Level)
		}
		dv.Describe = describeDevice(t, d)
		lu := lastUsed[d.ID]
		if d.LastUsedAt != nil && d.LastUsedAt.After(lu) {
			lu = *d.LastUsedAt
		}
		if !lu.IsZero() {
			dv.LastUsed, dv.LastUsedV = lu.UTC().Format(time.RFC3339), lu.In(vietnam).Format("02/01/2006 15:04")
		}
		v.Devices = append(v.Devices, dv)
	}
	for _, x := range sessions {
		sv := accountSession{SID: x.SID, Started: x.AuthTime.UTC().Format(time.RFC3339), StartedV: x.AuthTime.In(vietnam).Format("02/01/2006 15:04"),
			Level: t["level."+string(x.Level)], Current: x.SID == sess.SID, DeviceName: names[x.DeviceID],
			Action: s.cfg.Issuer + "/account/sessions/" + url.PathEscape(x.SID) + "/revoke"}
		if sv.Level == "" {
			sv.Level = string(x.Level)
		}
		for _, id := range x.Clients {
			name := id
			if c, err := s.store.GetClient(ctx, id); err == nil {
				name = c.Name
			} else if errors.Is(err, idp.ErrUnavailable) {
				return v, err
			}
			sv.Clients = append(sv.Clients, name)
		}
		v.Sessions = append(v.Sessions, sv)
	}
	return v, nil
}

// accountAction checks what every account form post needs: the page's own
// origin, a session and the CSRF token bound to it. On failure it has
// answered.
func (s *Server) accountAction(w http.ResponseWriter, r *http.Request) (*browserSession, bool) {
	if s.cfg.Sessions == nil {
		s.renderMessage(w, r, http.StatusNotFound, msgAccountNotFound)
		return nil, false
	}
	if !sameSite(r, s.cfg.Issuer) {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountForbidden)
		return nil, false
	}
	sess, err := s.browserSession(r.Context(), r)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return nil, false
	}
	if sess == nil {
		s.renderMessage(w, r, http.StatusUnauthorized, msgAccountSignedOut)
		return nil, false
	}
	got := r.PostFormValue("csrf")
	if got == "" || !hmac.Equal([]byte(got), []byte(s.accountCSRF(r))) {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountForbidden)
		return nil, false
	}
	return sess, true
}

type confirmPage struct {
	T         map[string]string
	Brand     brandView
	Lang      string
	Title     string
	Message   string
	Action    string
	CSRF      string
	Button    string
	CancelURL string
}

// confirm asks the citizen to confirm a destructive action: the first post
// shows this page, whose form posts again with confirm=yes.
func (s *Server) confirm(w http.ResponseWriter, r *http.Request, action, title, msg, button string) {
	lang := pickLang(r)
	t := s.t(lang)
	s.renderHTML(w, http.StatusOK, "account_confirm.html", confirmPage{T: t, Brand: s.cfg.Brand.view(lang), Lang: lang,
		Title: t[title], Message: msg, Action: action + "?lang=" + lang, CSRF: s.accountCSRF(r), Button: t[button],
		CancelURL: s.cfg.Issuer + PathAccount + "?lang=" + lang}, "")
}

func confirmed(r *http.Request) bool { return r.PostFormValue("confirm") == "yes" }

// signedOut ends this browser's session cookie and says why.
func (s *Server) signedOut(w http.ResponseWriter, r *http.Request, m message) {
	s.clearCookie(w, s.sessionCookieName())
	s.renderMessage(w, r, http.StatusOK, m)
}

// accountRevokeDevice revokes one of the citizen's devices, as the device
// that signed this browser in would (eid.Service.RevokeDeviceFrom: not one
// enrolled at a higher level), with everything it approved: its refresh
// tokens, access tokens, push installations and sessions, whose clients
// receive back-channel logouts. Revoking the device of this session signs
// this browser out.
func (s *Server) accountRevokeDevice(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, ok := s.accountAction(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	var target *idp.Device
	devs, err := s.eid.Devices(ctx, sess.CitizenID)
	if err != nil {
		s.unavailable(w, "durable store", err)
		return
	}
	for _, d := range devs {
		if d.ID == id && d.RevokedAt == nil {
			target = d
		}
	}
	if target == nil {
		// Another citizen's device looks exactly like none at all.
		s.renderMessage(w, r, http.StatusNotFound, msgAccountDeviceNotFound)
		return
	}
	if !confirmed(r) {
		t := s.t(pickLang(r))
		s.confirm(w, r, s.cfg.Issuer+"/account/devices/"+url.PathEscape(id)+"/revoke", "account.device_confirm_title",
			fmt.Sprintf(t["account.device_confirm"], target.Name), "account.device_revoke")
		return
	}
	by, err := s.revokingDevice(ctx, sess)
	if errors.Is(err, idp.ErrNotFound) {
		// Its device was revoked meanwhile: the session no longer signs in.
		s.clearCookie(w, s.sessionCookieName())
		s.renderMessage(w, r, http.StatusUnauthorized, msgAccountSignedOut)
		return
	}
	if err != nil {
		s.unavailable(w, "durable store", err)
		return
	}
	err = s.eid.RevokeDeviceFrom(ctx, by, id)
	switch {
	case errors.Is(err, eid.ErrLevelTooLow):
		s.renderMessage(w, r, http.StatusForbidden, msgAccountDeviceLevel)
		return
	case errors.Is(err, idp.ErrNotFound):
		s.renderMessage(w, r, http.StatusNotFound, msgAccountDeviceNotFound)
		return
	case err != nil:
		s.unavailable(w, "durable store", err)
		return
	}
	if _, err := s.cfg.Sessions.End(ctx, idp.SessionFilter{CitizenID: sess.CitizenID, DeviceID: id}); err != nil {
		s.unavailable(w, "store", err)
		return
	}
	if id == sess.DeviceID {
		s.signedOut(w, r, msgAccountDeviceSignedOut)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.cfg.Issuer+PathAccount+"?"+url.Values{"revoked": {"device"}, "lang": {pickLang(r)}}.Encode(), http.StatusSeeOther)
}

// revokingDevice is what revokes a device on behalf of the session: the
// device that signed it in or, for a passkey session (which has none), the
// citizen at the passkey's level, so that a citizen who lost their phone
// can revoke it from a passkey session, within the same level rule.
func (s *Server) revokingDevice(ctx context.Context, sess *browserSession) (*idp.Device, error) {
	if sess.PasskeyID != "" {
		return &idp.Device{CitizenID: sess.CitizenID, Level: sess.Level}, nil
	}
	return s.eid.ActiveDevice(ctx, sess.DeviceID)
}

// deletePasskeys removes every passkey of the citizen (a lock): a passkey
// would otherwise log in again whoever holds it.
func (s *Server) deletePasskeys(ctx context.Context, citizenID string) error {
	if s.cfg.PasskeyStore == nil {
		return nil
	}
	ids, err := idp.DeleteCitizenPasskeys(ctx, s.cfg.PasskeyStore, citizenID)
	for _, id := range ids {
		if err != nil || s.cfg.OnPasskeyRemoved == nil {
			break
		}
		err = s.cfg.OnPasskeyRemoved(ctx, id)
	}
	return err
}

// accountRevokeSession ends one of the citizen's sessions (a browser left
// signed in elsewhere); its clients receive back-channel logouts. Ending
// this browser's own session signs it out.
func (s *Server) accountRevokeSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, ok := s.accountAction(w, r)
	if !ok {
		return
	}
	sid := r.PathValue("sid")
	ended, err := s.cfg.Sessions.End(ctx, idp.SessionFilter{CitizenID: sess.CitizenID, SID: sid})
	if err != nil {
		s.unavailable(w, "store", err)
		return
	}
	if len(ended) == 0 {
		// Another citizen's session, or one already ended.
		s.renderMessage(w, r, http.StatusNotFound, msgAccountSessionNotFound)
		return
	}
	if sid == sess.SID {
		s.signedOut(w, r, msgLoggedOut)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.cfg.Issuer+PathAccount+"?"+url.Values{"revoked": {"session"}, "lang": {pickLang(r)}}.Encode(), http.StatusSeeOther)
}

// accountLock is "lock my account" from the account page: the device that
// signed this browser in is revoked (the phone the citizen fears for), every
// session of the citizen ends with back-channel logouts, and every refresh
// token is revoked with its access tokens. The citizen's other devices stay
// enrolled (each has its revoke button; an operator's `citizen lock`
// revokes them all). The browser is signed out.
func (s *Server) accountLock(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, ok := s.accountAction(w, r)
	if !ok {
		return
	}
	if !confirmed(r) {
		t := s.t(pickLang(r))
		s.confirm(w, r, s.cfg.Issuer+PathAccountLock, "account.lock_confirm_title", t["account.lock_confirm"], "account.lock")
		return
	}
	// The device that signed this browser in goes. Signed in with a
	// passkey, the citizen is most likely locking because the phone is
	// gone: every device goes.
	revoke := []string{sess.DeviceID}
	if sess.PasskeyID != "" {
		ds, err := s.eid.Devices(ctx, sess.CitizenID)
		if err != nil {
			s.unavailable(w, "durable store", err)
			return
		}
		revoke = revoke[:0]
		for _, d := range ds {
			if d.RevokedAt == nil {
				revoke = append(revoke, d.ID)
			}
		}
	}
	for _, id := range revoke {
		if err := s.eid.RevokeDevice(ctx, sess.CitizenID, id); err != nil && !errors.Is(err, idp.ErrNotFound) {
			s.unavailable(w, "durable store", err)
			return
		}
	}
	if err := s.deletePasskeys(ctx, sess.CitizenID); err != nil {
		s.unavailable(w, "passkey store", err)
		return
	}
	if _, err := s.cfg.Sessions.End(ctx, idp.SessionFilter{CitizenID: sess.CitizenID}); err != nil {
		s.unavailable(w, "store", err)
		return
	}
	if _, err := s.cfg.Sessions.RevokeGrants(ctx, sess.CitizenID); err != nil {
		s.unavailable(w, "durable store", err)
		return
	}
	s.log.Info("account locked by the citizen")
	s.signedOut(w, r, msgAccountLocked)
}

var (
	msgAccountDeviceNotFound  = message{"msg.account_device_not_found"}
	msgAccountSessionNotFound = message{"msg.account_session_not_found"}
	msgAccountDeviceLevel     = message{"msg.account_device_level"}
	msgAccountDeviceSignedOut = message{"msg.account_device_signed_out"}
	msgAccountLocked          = message{"msg.account_locked"}
)

// The strings of this file's pages, merged into texts.
func init() {
	add := map[string]map[string]string{
		"vi": {
			"account.devices":                     "Thiết bị của bạn",
			"account.devices_intro":               "Các ứng dụng định danh điện tử đã kích hoạt. Thu hồi một thiết bị bị mất: nó không thể đăng nhập nữa và mọi phiên, mã truy cập nó đã chấp thuận đều chấm dứt.",
			"account.device_enrolled":             "Kích hoạt lúc",
			"account.device_level":                "Mức đảm bảo",
			"account.device_last_used":            "Dùng gần nhất",
			"account.device_never_used":           "chưa dùng",
			"account.device_platform":             "Nền tảng, kiểu máy",
			"account.device_platform_unknown":     "không rõ",
			"platform.android":                    "Android",
			"platform.ios":                        "iOS",
			"platform.web":                        "Web",
			"account.device_current":              "đã đăng nhập trình duyệt này",
			"account.device_revoke":               "Thu hồi thiết bị",
			"account.device_revoke_for":           "Thu hồi thiết bị",
			"account.device_revoked":              "Đã thu hồi thiết bị. Các phiên và mã truy cập nó đã chấp thuận đã chấm dứt.",
			"account.device_confirm_title":        "Thu hồi thiết bị?",
			"account.device_confirm":              "Thiết bị “%s” sẽ không thể đăng nhập nữa; mọi phiên đăng nhập và quyền truy cập nó đã chấp thuận sẽ chấm dứt. Muốn dùng lại, bạn phải kích hoạt lại tại quầy.",
			"account.no_devices":                  "Không có thiết bị nào đang hoạt động.",
			"account.sessions":                    "Phiên đăng nhập đang hoạt động",
			"account.sessions_intro":              "Mỗi trình duyệt đã đăng nhập OneDoor, với các trang của cơ quan đã đăng nhập qua nó. Kết thúc một phiên sẽ đăng xuất trình duyệt đó khỏi OneDoor và khỏi các trang ấy.",
			"account.session_started":             "Bắt đầu lúc",
			"account.session_level":               "Mức đảm bảo",
			"account.session_sites":               "Trang đã đăng nhập",
			"account.session_no_sites":            "chưa có",
			"account.session_device":              "Thiết bị chấp thuận",
			"account.session_current":             "trình duyệt này",
			"account.session_revoke":              "Kết thúc phiên",
			"account.session_revoke_for":          "Kết thúc phiên bắt đầu lúc",
			"account.session_revoked":             "Đã kết thúc phiên. Các trang của cơ quan đã được thông báo.",
			"account.lock_title":                  "Khóa tài khoản",
			"account.lock_intro":                  "Mất điện thoại hoặc nghi ngờ có người dùng tài khoản của bạn? Khóa tài khoản sẽ thu hồi thiết bị đã đăng nhập trình duyệt này, kết thúc mọi phiên đăng nhập và thu hồi mọi quyền truy cập đã cấp cho các cơ quan.",
			"account.lock":                        "Khóa tài khoản của tôi",
			"account.lock_confirm_title":          "Khóa tài khoản?",
			"account.lock_confirm":                "Thiết bị đã đăng nhập trình duyệt này sẽ bị thu hồi, mọi phiên đăng nhập sẽ kết thúc và mọi quyền truy cập của các cơ quan sẽ bị thu hồi. Bạn sẽ bị đăng xuất.",
			"account.cancel":                      "Hủy",
			"level.urn:onedoor:loa:low":           "thấp",
			"level.urn:onedoor:loa:substantial":   "đáng kể",
			"level.urn:onedoor:loa:high":          "cao",
			"msg.account_device_not_found.title":  "Không tìm thấy",
			"msg.account_device_not_found":        "Không tìm thấy thiết bị đang hoạt động này trong tài khoản của bạn.",
			"msg.account_session_not_found.title": "Không tìm thấy",
			"msg.account_session_not_found":       "Không tìm thấy phiên đăng nhập đang hoạt động này trong tài khoản của bạn.",
			"msg.account_device_level.title":      "Không thể thu hồi",
			"msg.account_device_level":            "Thiết bị này được kích hoạt ở mức đảm bảo cao hơn thiết bị đã đăng nhập trình duyệt này. Hãy đăng nhập bằng thiết bị đó, hoặc liên hệ tổng đài.",
			"msg.account_device_signed_out.title": "Đã thu hồi thiết bị",
			"msg.account_device_signed_out":       "Đã thu hồi thiết bị đã đăng nhập trình duyệt này; bạn đã được đăng xuất.",
			"msg.account_locked.title":            "Đã khóa tài khoản",
			"msg.account_locked":                  "Đã thu hồi thiết bị, kết thúc mọi phiên đăng nhập và thu hồi mọi quyền truy cập. Bạn đã được đăng xuất. Liên hệ tổng đài nếu cần hỗ trợ.",
		},
		"en": {
			"account.devices":                     "Your devices",
			"account.devices_intro":               "Your enrolled eID apps. Revoke a lost device: it can no longer sign in, and every session and access token it approved ends.",
			"account.device_enrolled":             "Enrolled",
			"account.device_level":                "Assurance level",
			"account.device_last_used":            "Last used",
			"account.device_never_used":           "never",
			"account.device_platform":             "Platform, model",
			"account.device_platform_unknown":     "unknown",
			"platform.android":                    "Android",
			"platform.ios":                        "iOS",
			"platform.web":                        "Web",
			"account.device_current":              "signed this browser in",
			"account.device_revoke":               "Revoke device",
			"account.device_revoke_for":           "Revoke device",
			"account.device_revoked":              "Device revoked. The sessions and access tokens it approved have ended.",
			"account.device_confirm_title":        "Revoke this device?",
			"account.device_confirm":              "The device “%s” will no longer sign in, and every session and access it approved will end. To use it again you must activate it again at a desk.",
			"account.no_devices":                  "No active devices.",
			"account.sessions":                    "Active sessions",
			"account.sessions_intro":              "Each browser signed in to OneDoor, with the agency sites it signed in to. Ending a session signs that browser out of OneDoor and of those sites.",
			"account.session_started":             "Started",
			"account.session_level":               "Assurance level",
			"account.session_sites":               "Sites signed in to",
			"account.session_no_sites":            "none yet",
			"account.session_device":              "Approved by",
			"account.session_current":             "this browser",
			"account.session_revoke":              "End session",
			"account.session_revoke_for":          "End session started at",
			"account.session_revoked":             "Session ended. The agency sites have been told.",
			"account.lock_title":                  "Lock my account",
			"account.lock_intro":                  "Lost your phone, or think someone else uses your account? Locking revokes the device that signed this browser in, ends every session and revokes all access granted to agencies.",
			"account.lock":                        "Lock my account",
			"account.lock_confirm_title":          "Lock your account?",
			"account.lock_confirm":                "The device that signed this browser in will be revoked, every session will end and all agencies' access will be revoked. You will be signed out.",
			"account.cancel":                      "Cancel",
			"level.urn:onedoor:loa:low":           "low",
			"level.urn:onedoor:loa:substantial":   "substantial",
			"level.urn:onedoor:loa:high":          "high",
			"msg.account_device_not_found.title":  "Not found",
			"msg.account_device_not_found":        "This active device was not found in your account.",
			"msg.account_session_not_found.title": "Not found",
			"msg.account_session_not_found":       "This active session was not found in your account.",
			"msg.account_device_level.title":      "Cannot revoke",
			"msg.account_device_level":            "This device was enrolled at a higher assurance level than the one that signed this browser in. Sign in with that device, or call the helpline.",
			"msg.account_device_signed_out.title": "Device revoked",
			"msg.account_device_signed_out":       "The device that signed this browser in was revoked; you have been signed out.",
			"msg.account_locked.title":            "Account locked",
			"msg.account_locked":                  "Your device was revoked, every session ended and all access revoked. You have been signed out. Call the helpline if you need help.",
		},
	}
	for lang, m := range add {
		for k, v := range m {
			texts[lang][k] = v
		}
	}
}
