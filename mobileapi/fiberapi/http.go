package fiberapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/problem"
	"github.com/onedoor/onedoor/mobileapi"
)

// Problem types beyond idp/problem's.
const (
	typePrecondition = problem.TypePrefix + "precondition-failed"
	typeUnauthorized = problem.TypePrefix + "unauthorized"
	typeForbidden    = problem.TypePrefix + "forbidden"
	typeTooLarge     = problem.TypePrefix + "too-large"
	typeMediaType    = problem.TypePrefix + "unsupported-media-type"
	typeRateLimited  = problem.TypePrefix + "rate-limited"
)

// fieldError is one bad field of a problem: exactly one of Pointer (a body
// member) and Parameter (a query, path or header parameter).
type fieldError struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
	Message   string `json:"message"`
}

// apiProblem is a problem document with the fields the contract adds.
type apiProblem struct {
	problem.Problem
	Instance string       `json:"instance,omitempty"`
	Errors   []fieldError `json:"errors,omitempty"`
}

// badRequest is a request error the handler found itself; it carries the
// status and the fields to list.
type badRequest struct {
	status int
	typ    string
	title  text
	detail string
	errs   []fieldError
}

func (e *badRequest) Error() string { return e.detail }

func invalidParam(name, msg string) error {
	return &badRequest{status: http.StatusBadRequest, typ: problem.TypeInvalid, title: tInvalid,
		errs: []fieldError{{Parameter: name, Message: msg}}}
}

func invalidBody(pointer, msg string) error {
	return &badRequest{status: http.StatusBadRequest, typ: problem.TypeInvalid, title: tInvalid,
		errs: []fieldError{{Pointer: pointer, Message: msg}}}
}

func unprocessable(errs []fieldError) error {
	return &badRequest{status: http.StatusUnprocessableEntity, typ: problem.TypeInvalid, title: tUnprocessable,
		detail: fmt.Sprintf("%d", len(errs)), errs: errs}
}

// conflict is a 409 with an explanation that names no data.
func conflict(err error, detail string) error {
	if errors.Is(err, idp.ErrConflict) && !errors.Is(err, idp.ErrUnavailable) {
		return &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict, detail: detail}
	}
	return err
}

func forbidden(detail string) error {
	return &badRequest{status: http.StatusForbidden, typ: typeForbidden, title: tForbidden, detail: detail}
}

func tooLarge(detail string) error {
	return &badRequest{status: http.StatusRequestEntityTooLarge, typ: typeTooLarge, title: tTooLarge, detail: detail}
}

func unsupportedMedia(want string) error {
	return &badRequest{status: http.StatusUnsupportedMediaType, typ: typeMediaType, title: tMediaType,
		detail: "Content-Type must be " + want + "."}
}

// text is a server-written text in both languages.
type text = mobileapi.Text

var (
	tInvalid       = text{VI: "Yêu cầu không hợp lệ", EN: "Invalid request"}
	tUnprocessable = text{VI: "Dữ liệu chưa hợp lệ", EN: "Invalid data"}
	tForbidden     = text{VI: "Không được phép", EN: "Forbidden"}
	tTooLarge      = text{VI: "Nội dung quá lớn", EN: "Content too large"}
	tMediaType     = text{VI: "Kiểu nội dung không được hỗ trợ", EN: "Unsupported media type"}
	tPrecondition  = text{VI: "Phiên bản đã thay đổi", EN: "Precondition failed"}
	tNotFound      = text{VI: "Không tìm thấy", EN: "Not found"}
	tConflict      = text{VI: "Xung đột trạng thái", EN: "Conflict"}
	tUnavailable   = text{VI: "Dịch vụ tạm thời gián đoạn", EN: "Service temporarily unavailable"}
	tInternal      = text{VI: "Lỗi hệ thống", EN: "Internal error"}
	tUnauthorized  = text{VI: "Chưa xác thực", EN: "Unauthorized"}
	tRateLimited   = text{VI: "Quá nhiều yêu cầu", EN: "Too many requests"}
)

// lang is the language the client asked for: "en" when Accept-Language
// prefers English, else Vietnamese.
func lang(c *fiber.Ctx) string {
	if c.AcceptsLanguages("vi", "en") == "en" {
		return "en"
	}
	return "vi"
}

// fail writes err as a problem: the handler's own request errors as they
// are, the stores' sentinels through idp/problem. Causes of 5xx are logged,
// never sent.
func (s *Server) fail(c *fiber.Ctx, err error) error {
	l := lang(c)
	var br *badRequest
	if errors.As(err, &br) {
		p := apiProblem{Problem: problem.Problem{Type: br.typ, Title: br.title.In(l), Status: br.status, Detail: br.detail}, Errors: br.errs}
		if br.status == http.StatusUnprocessableEntity {
			p.Detail = fmt.Sprintf("%d %s", len(br.errs), map[string]string{"vi": "trường chưa hợp lệ.", "en": "invalid fields."}[l])
		}
		return s.sendProblem(c, p)
	}
	if errors.Is(err, mobileapi.ErrNotApplicant) && !errors.Is(err, idp.ErrUnavailable) {
		return s.fail(c, errNotApplicant)
	}
	if errors.Is(err, mobileapi.ErrPrecondition) && !errors.Is(err, idp.ErrUnavailable) {
		return s.sendProblem(c, apiProblem{Problem: problem.Problem{Type: typePrecondition, Title: tPrecondition.In(l), Status: http.StatusPreconditionFailed,
			Detail: "The application changed since the ETag in If-Match; fetch it again."}})
	}
	p := problem.From(err)
	switch p.Status {
	case http.StatusInternalServerError:
		s.cfg.Logger.Error("api handler", "route", c.Route().Path, "request_id", requestID(c), "err", err.Error())
		p.Title = tInternal.In(l)
	case http.StatusServiceUnavailable:
		s.outages.warn(c.Route().Path, requestID(c), err)
		p.Title = tUnavailable.In(l)
	case http.StatusNotFound:
		p.Title = tNotFound.In(l)
	case http.StatusConflict:
		p.Title = tConflict.In(l)
	case http.StatusBadRequest:
		p.Title = tInvalid.In(l)
	}
	return s.sendProblem(c, apiProblem{Problem: p})
}

func (s *Server) sendProblem(c *fiber.Ctx, p apiProblem) error {
	if p.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(p.RetryAfter/1e9)))
	}
	if p.Instance == "" {
		p.Instance = strings.Clone(c.Path())
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderETag, "") // a problem is never cached or revalidated
	c.Response().Header.Del(fiber.HeaderETag)
	return c.Status(p.Status).JSON(p, problem.ContentType)
}

// decodeJSON reads the body as exactly one JSON value of the given media
// type into v, refusing unknown members.
func decodeJSON(c *fiber.Ctx, mediaType string, v any) error {
	ct, _, _ := strings.Cut(c.Get(fiber.HeaderContentType), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), mediaType) {
		return unsupportedMedia(mediaType)
	}
	if err := checkJSON(c.Body()); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidBody("", jsonMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalidBody("", "The body must hold one JSON value.")
	}
	return nil
}

// maxJSONDepth bounds the nesting of a request body.
const maxJSONDepth = 64

// checkJSON refuses what encoding/json would accept silently: a member
// named twice in one object (readers disagree on which wins: SECURITY.md),
// NUL characters (PostgreSQL cannot store them in text) and deep nesting.
func checkJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && len(stack) == 0 {
			return nil
		}
		if err != nil {
			return invalidBody("", jsonMessage(err))
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				if len(stack) >= maxJSONDepth {
					return invalidBody("", "The body is nested too deeply.")
				}
				stack = append(stack, &frame{object: v == '{', keys: map[string]bool{}, key: v == '{'})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
			continue
		case string:
			if strings.IndexByte(v, 0) >= 0 {
				return invalidBody("", "NUL characters are not allowed.")
			}
			if top != nil && top.object && top.key {
				if top.keys[v] {
					return invalidBody("", fmt.Sprintf("Member %q appears twice in one object.", v))
				}
				top.keys[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

// jsonMessage describes a decoding error without echoing the input.
func jsonMessage(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("Member %q must be of type %s.", te.Field, te.Type.Kind())
	case errors.As(err, &se):
		return fmt.Sprintf("Malformed JSON at byte %d.", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "Unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ") + "."
	case errors.Is(err, io.EOF):
		return "The body is empty."
	}
	return "Malformed JSON."
}

// page reads the cursor and limit parameters.
func page(c *fiber.Ctx) (mobileapi.Page, error) {
	p := mobileapi.Page{Cursor: strings.Clone(c.Query("cursor"))}
	if len(p.Cursor) > 512 {
		return p, invalidParam("cursor", "The cursor is too long.")
	}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > mobileapi.MaxLimit {
			return p, invalidParam("limit", fmt.Sprintf("limit must be an integer from 1 to %d.", mobileapi.MaxLimit))
		}
		p.Limit = n
	}
	return p, nil
}

// cursorErr reports a store's refusal of a cursor as a bad parameter.
func cursorErr(err error) error {
	if errors.Is(err, idp.ErrInvalid) && !errors.Is(err, idp.ErrUnavailable) {
		return invalidParam("cursor", "The cursor is not valid; start again from the first page.")
	}
	return err
}

// nullable returns nil for "", so JSON has null.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// contentETag is the strong ETag fiber's etag middleware would give body
// (its length and a CRC-32 with the middleware's polynomial), for
// responses that keep their ETag beside a cached body: clients' held
// ETags stay valid whichever of the two computed them.
func contentETag(body []byte) string {
	return `"` + strconv.Itoa(len(body)) + "-" + strconv.FormatUint(uint64(crc32.Checksum(body, etagTable)), 10) + `"`
}

var etagTable = crc32.MakeTable(0xD5828281)

// appETag is an application's entity tag: its version, which every write
// increases.
func appETag(a *mobileapi.Application) string { return `"v` + strconv.FormatInt(a.Version, 10) + `"` }

// ifMatch returns the version If-Match names, 0 without the header. An
// ETag that is not one of ours is stale by definition: 412.
func ifMatch(c *fiber.Ctx) (int64, error) {
	h := strings.TrimSpace(c.Get(fiber.HeaderIfMatch))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	if v, ok := strings.CutPrefix(strings.Trim(h, `"`), "v"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, mobileapi.ErrPrecondition
}

// notModified answers 304 when If-None-Match names etag.
func notModified(c *fiber.Ctx, etag string) bool {
	inm := c.Get(fiber.HeaderIfNoneMatch)
	if inm == "" {
		return false
	}
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// idParam is a path identifier copied out of fiber's buffer. Identifiers
// are short visible ASCII; anything else names no record and is replaced
// by one that names none, rather than reaching the database (PostgreSQL
// refuses invalid UTF-8 as text).
func idParam(c *fiber.Ctx, name string) string {
	v := c.Params(name)
	if v == "" || len(v) > 64 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "-"
	}
	return strings.Clone(v)
}

// statusFilter reads the status parameter of a list: none, or one status
// (agencies never see drafts).
func statusFilter(c *fiber.Ctx, agency bool) ([]mobileapi.Status, error) {
	st := mobileapi.Status(c.Query("status"))
	switch {
	case st == "":
		return nil, nil
	case !st.Valid():
		return nil, invalidParam("status", "Unknown status.")
	case agency && st == mobileapi.StatusDraft:
		return nil, invalidParam("status", "Agencies never see drafts.")
	}
	return []mobileapi.Status{mobileapi.Status(strings.Clone(string(st)))}, nil
}
