package fcmtest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

const (
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType = "type.googleapis.com/google.rpc.BadRequest"
	// maxPayload is FCM's limit on a message's data and notification
	// text, keys included.
	maxPayload = 4096
	// maxTTLSeconds is four weeks, FCM's longest time to live.
	maxTTLSeconds = 2419200
)

var ttlPattern = regexp.MustCompile(`^([0-9]+)(\.[0-9]{1,9})?s$`)

// serveSend is POST /v1/projects/{project}/messages:send.
func (s *Server) serveSend(w http.ResponseWriter, r *http.Request) {
	project, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	if ok {
		project, ok = strings.CutSuffix(project, "/messages:send")
	}
	if !ok || strings.Contains(project, "/") || r.Method != http.MethodPost {
		http.NotFound(w, r) // Google answers unknown URLs with a plain 404 page
		return
	}
	if live, present := s.checkBearer(r); !live {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
		msg := "The request has no OAuth 2 access token."
		if present {
			msg = "The request's OAuth 2 access token is invalid or expired."
		}
		writeStatus(w, http.StatusUnauthorized, msg)
		return
	}
	if project != s.projectID {
		writeStatus(w, http.StatusForbidden,
			"Permission 'cloudmessaging.messages.create' denied on the project, or it does not exist.")
		return
	}
	if f, ok := s.nextFailure(); ok {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		var details []any
		if f.ErrorCode != "" {
			details = append(details, fcmError(f.ErrorCode))
		}
		status := f.HTTPStatus
		if status < 100 || status > 599 {
			status = http.StatusInternalServerError
		}
		writeStatus(w, status, "Scripted failure.", details...)
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		writeStatus(w, http.StatusBadRequest, "The request body is too large or unreadable.")
		return
	}
	m, validateOnly, v := parseRequest(buf.Bytes())
	if v != nil {
		v.write(w)
		return
	}

	s.mu.Lock()
	if s.unregistered[m.Token] {
		s.mu.Unlock()
		writeStatus(w, http.StatusNotFound, "Requested entity was not found.", fcmError("UNREGISTERED"))
		return
	}
	n := len(s.messages)
	if !validateOnly {
		s.messages = append(s.messages, *m)
	}
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client went away; the message stays delivered
			t.Stop()
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"name": fmt.Sprintf("projects/%s/messages/0:%d%%%s", s.projectID, n+1, s.keyID[:16]),
	})
}

func (s *Server) nextFailure() (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) == 0 {
		return Failure{}, false
	}
	f := s.failures[0]
	s.failures = s.failures[1:]
	return f, true
}

// violation is a 400 INVALID_ARGUMENT: shape errors carry a BadRequest
// detail naming the field, semantic ones an FcmError like FCM's.
type violation struct {
	field, desc string
	semantic    bool
}

func (v *violation) write(w http.ResponseWriter) {
	if v.semantic {
		writeStatus(w, http.StatusBadRequest, v.desc, fcmError("INVALID_ARGUMENT"))
		return
	}
	msg := "Invalid JSON payload received. " + v.desc
	writeStatus(w, http.StatusBadRequest, msg, map[string]any{
		"@type":           badRequestType,
		"fieldViolations": []map[string]string{{"field": v.field, "description": msg}},
	})
}

func shapeError(field, format string, args ...any) *violation {
	return &violation{field: field, desc: fmt.Sprintf(format, args...)}
}

func semanticError(field, format string, args ...any) *violation {
	return &violation{field: field, desc: fmt.Sprintf(format, args...), semantic: true}
}

// The messages:send body as FCM's v1 API admits it. Proto JSON accepts a
// field under its proto name and its lowerCamel name, so a field whose two
// names differ appears twice (the C suffix), and naming both is refused.
// Objects the fake does not look into are kept raw.
type (
	wireRequest struct {
		Message       *wireMessage `json:"message"`
		ValidateOnly  *bool        `json:"validate_only"`
		ValidateOnlyC *bool        `json:"validateOnly"`
	}
	wireMessage struct {
		Name         string            `json:"name"`
		Data         map[string]string `json:"data"`
		Notification *wireNotification `json:"notification"`
		Android      *wireAndroid      `json:"android"`
		Webpush      jsontext.Value    `json:"webpush"`
		APNS         *wireAPNs         `json:"apns"`
		FCMOptions   jsontext.Value    `json:"fcm_options"`
		FCMOptionsC  jsontext.Value    `json:"fcmOptions"`
		Token        string            `json:"token"`
		Topic        string            `json:"topic"`
		Condition    string            `json:"condition"`
	}
	wireNotification struct {
		Title string `json:"title"`
		Body  string `json:"body"`
		Image string `json:"image"`
	}
	wireAndroid struct {
		CollapseKey             string            `json:"collapse_key"`
		CollapseKeyC            string            `json:"collapseKey"`
		Priority                string            `json:"priority"`
		TTL                     string            `json:"ttl"`
		RestrictedPackageName   string            `json:"restricted_package_name"`
		RestrictedPackageNameC  string            `json:"restrictedPackageName"`
		Data                    map[string]string `json:"data"`
		Notification            jsontext.Value    `json:"notification"`
		FCMOptions              jsontext.Value    `json:"fcm_options"`
		FCMOptionsC             jsontext.Value    `json:"fcmOptions"`
		DirectBootOK            *bool             `json:"direct_boot_ok"`
		DirectBootOKC           *bool             `json:"directBootOk"`
		BandwidthConstrainedOK  *bool             `json:"bandwidth_constrained_ok"`
		BandwidthConstrainedOKC *bool             `json:"bandwidthConstrainedOk"`
		RestrictedSatelliteOK   *bool             `json:"restricted_satellite_ok"`
		RestrictedSatelliteOKC  *bool             `json:"restrictedSatelliteOk"`
	}
	wireAPNs struct {
		Headers            map[string]string `json:"headers"`
		Payload            jsontext.Value    `json:"payload"`
		FCMOptions         jsontext.Value    `json:"fcm_options"`
		FCMOptionsC        jsontext.Value    `json:"fcmOptions"`
		LiveActivityToken  string            `json:"live_activity_token"`
		LiveActivityTokenC string            `json:"liveActivityToken"`
	}
)

// decodeOptions make the decoder as strict as Google's: exact-case names,
// no unknown or duplicate members, valid UTF-8.
var decodeOptions = jsonv2.RejectUnknownMembers(true)

func parseRequest(body []byte) (*Message, bool, *violation) {
	var req wireRequest
	if err := jsonv2.Unmarshal(body, &req, decodeOptions); err != nil {
		return nil, false, decodeViolation(err)
	}
	if req.ValidateOnly != nil && req.ValidateOnlyC != nil {
		return nil, false, twice("", "validate_only")
	}
	if req.Message == nil {
		return nil, false, semanticError("message", "The request has no message.")
	}
	m, v := checkMessage(req.Message)
	validateOnly := (req.ValidateOnly != nil && *req.ValidateOnly) || (req.ValidateOnlyC != nil && *req.ValidateOnlyC)
	return m, validateOnly, v
}

// decodeViolation describes a body the decoder refused, naming the field
// the way Google's BadRequest does (dotted, map keys left out).
func decodeViolation(err error) *violation {
	var se *jsonv2.SemanticError
	if !errors.As(err, &se) {
		return shapeError("", "The body is not valid JSON.")
	}
	if errors.Is(se.Err, jsonv2.ErrUnknownName) {
		at := fieldPath(se.JSONPointer.Parent())
		return shapeError(at, "Unknown field %q at '%s'.", se.JSONPointer.LastToken(), at)
	}
	at := fieldPath(se.JSONPointer)
	return shapeError(at, "Invalid value at '%s'.", at)
}

func fieldPath(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
		if tok == "data" || tok == "headers" {
			break // what follows is a map key
		}
	}
	return strings.Join(parts, ".")
}

func twice(path, name string) *violation {
	return shapeError(path, "Field %q is given under both of its names at '%s'.", name, path)
}

// isObject admits an absent value, null, or an object.
func isObject(v jsontext.Value) bool {
	return len(v) == 0 || v.Kind() == '{' || v.Kind() == 'n'
}

func checkMessage(w *wireMessage) (*Message, *violation) {
	const path = "message"
	m := &Message{Token: w.Token, Data: w.Data}
	switch targets := btoi(w.Token != "") + btoi(w.Topic != "") + btoi(w.Condition != ""); {
	case targets == 0:
		return nil, semanticError(path, "Recipient of the message is not set.")
	case targets > 1:
		return nil, semanticError(path, "Exactly one of token, topic or condition must be set.")
	case w.Token == "":
		return nil, semanticError(path, "fcmtest accepts messages to a registration token only.")
	}
	if len(w.FCMOptions) > 0 && len(w.FCMOptionsC) > 0 {
		return nil, twice(path, "fcm_options")
	}
	for name, v := range map[string]jsontext.Value{"webpush": w.Webpush, "fcm_options": w.FCMOptions, "fcmOptions": w.FCMOptionsC} {
		if !isObject(v) {
			return nil, shapeError(path+"."+name, "Invalid value at '%s.%s'.", path, name)
		}
	}
	size := 0
	for k, val := range w.Data {
		if k == "from" || k == "gcm" || strings.HasPrefix(k, "google") {
			return nil, semanticError(path+".data", "Invalid data payload key: %s.", k)
		}
		size += len(k) + len(val)
	}
	if n := w.Notification; n != nil {
		m.Title, m.Body = n.Title, n.Body
		size += len(n.Title) + len(n.Body)
	}
	if size > maxPayload {
		return nil, semanticError(path, "Message is too big: %d bytes of data and notification text, %d allowed.", size, maxPayload)
	}
	if w.Android != nil {
		if v := checkAndroid(w.Android, m); v != nil {
			return nil, v
		}
	}
	if w.APNS != nil {
		if v := checkAPNs(w.APNS, m); v != nil {
			return nil, v
		}
	}
	return m, nil
}

func checkAndroid(a *wireAndroid, m *Message) *violation {
	const path = "message.android"
	switch {
	case a.CollapseKey != "" && a.CollapseKeyC != "":
		return twice(path, "collapse_key")
	case a.RestrictedPackageName != "" && a.RestrictedPackageNameC != "":
		return twice(path, "restricted_package_name")
	case len(a.FCMOptions) > 0 && len(a.FCMOptionsC) > 0:
		return twice(path, "fcm_options")
	case a.DirectBootOK != nil && a.DirectBootOKC != nil:
		return twice(path, "direct_boot_ok")
	case a.BandwidthConstrainedOK != nil && a.BandwidthConstrainedOKC != nil:
		return twice(path, "bandwidth_constrained_ok")
	case a.RestrictedSatelliteOK != nil && a.RestrictedSatelliteOKC != nil:
		return twice(path, "restricted_satellite_ok")
	case !isObject(a.Notification) || !isObject(a.FCMOptions) || !isObject(a.FCMOptionsC):
		return shapeError(path, "Invalid value at '%s': expected an object.", path)
	}
	m.CollapseKey = a.CollapseKey + a.CollapseKeyC // at most one is set
	// Enum names; the API also takes them lower-case.
	switch m.Priority = strings.ToUpper(a.Priority); m.Priority {
	case "", "NORMAL", "HIGH":
	default:
		return shapeError(path+".priority", "Invalid value at '%s.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority).", path)
	}
	if m.TTL = a.TTL; m.TTL != "" {
		sm := ttlPattern.FindStringSubmatch(m.TTL)
		if sm == nil {
			return shapeError(path+".ttl", "Invalid value at '%s.ttl' (type.googleapis.com/google.protobuf.Duration).", path)
		}
		if secs, err := strconv.ParseInt(sm[1], 10, 64); err != nil || secs > maxTTLSeconds {
			return semanticError(path+".ttl", "The TTL is longer than four weeks.")
		}
	}
	return nil
}

func checkAPNs(a *wireAPNs, m *Message) *violation {
	const path = "message.apns"
	switch {
	case len(a.FCMOptions) > 0 && len(a.FCMOptionsC) > 0:
		return twice(path, "fcm_options")
	case a.LiveActivityToken != "" && a.LiveActivityTokenC != "":
		return twice(path, "live_activity_token")
	case !isObject(a.Payload) || !isObject(a.FCMOptions) || !isObject(a.FCMOptionsC):
		return shapeError(path, "Invalid value at '%s': expected an object.", path)
	}
	m.APNsHeaders = a.Headers
	for k, val := range a.Headers {
		switch strings.ToLower(k) {
		case "apns-priority":
			if val != "1" && val != "5" && val != "10" {
				return semanticError(path+".headers", "Invalid apns-priority.")
			}
		case "apns-expiration":
			if _, err := strconv.ParseUint(val, 10, 64); err != nil {
				return semanticError(path+".headers", "Invalid apns-expiration.")
			}
		case "apns-collapse-id":
			if len(val) > 64 {
				return semanticError(path+".headers", "apns-collapse-id is longer than 64 bytes.")
			}
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// canonical maps an HTTP status to its google.rpc.Code name.
func canonical(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusInternalServerError:
		return "INTERNAL"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	default:
		return "UNKNOWN"
	}
}

func fcmError(code string) map[string]string {
	return map[string]string{"@type": fcmErrorType, "errorCode": code}
}

// writeStatus answers with a google.rpc.Status in Google's error envelope.
func writeStatus(w http.ResponseWriter, status int, msg string, details ...any) {
	e := map[string]any{"code": status, "message": msg, "status": canonical(status)}
	if len(details) > 0 {
		e["details"] = details
	}
	writeJSON(w, status, map[string]any{"error": e})
}
