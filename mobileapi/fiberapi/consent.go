package fiberapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/problem"
	"github.com/onedoor/onedoor/mobileapi"
)

// consentErr maps the consent area's sentinels onto the ones problems are
// made from; an outage still wins over what it wraps.
func consentErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consent.ErrUnavailable):
		return errors.Join(err, idp.ErrUnavailable)
	case errors.Is(err, consent.ErrNotFound):
		return errors.Join(err, idp.ErrNotFound)
	case errors.Is(err, consent.ErrInvalid):
		return errors.Join(err, idp.ErrInvalid)
	case errors.Is(err, consent.ErrConflict):
		return errors.Join(err, idp.ErrConflict)
	}
	return err
}

// consentPage reads the cursor and limit parameters for the consent
// store's pages.
func consentPage(c *fiber.Ctx) (consent.Page, error) {
	p, err := page(c)
	return consent.Page{Cursor: p.Cursor, Limit: p.Limit}, err
}

type recipientView struct {
	ClientID string  `json:"client_id"`
	Agency   *string `json:"agency"`
	Name     string  `json:"name"`
}

type consentView struct {
	ID          string          `json:"id"`
	Recipient   recipientView   `json:"recipient"`
	Purpose     consent.Purpose `json:"purpose"`
	Items       []string        `json:"items"`
	Declined    []string        `json:"declined"`
	Basis       consent.Basis   `json:"basis"`
	Notice      string          `json:"notice"`
	Method      consent.Method  `json:"method"`
	Version     int64           `json:"version"`
	Active      bool            `json:"active"`
	GrantedAt   time.Time       `json:"granted_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
	WithdrawnAt *time.Time      `json:"withdrawn_at"`
	Receipts    string          `json:"receipts_href"`
}

func (s *Server) consentOf(r *consent.Record) consentView {
	return consentView{ID: r.ID, Recipient: recipientView{ClientID: r.ClientID, Agency: nullable(r.Agency), Name: r.Recipient},
		Purpose: r.Purpose, Items: nonNilStrings(r.Items), Declined: nonNilStrings(r.Declined), Basis: r.Basis, Notice: r.Notice,
		Method: r.Method, Version: r.Version, Active: r.Active(s.cfg.Now()), GrantedAt: r.GrantedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		ExpiresAt: r.ExpiresAt.UTC(), WithdrawnAt: utcPtr(r.WithdrawnAt), Receipts: "/v1/consents/" + r.ID + "/receipts"}
}

type receiptView struct {
	ID        string              `json:"id"`
	ConsentID string              `json:"consent_id"`
	Kind      consent.ReceiptKind `json:"kind"`
	Version   int64               `json:"version"`
	CreatedAt time.Time           `json:"created_at"`
	Href      string              `json:"href"`
	JWS       string              `json:"jws"`
}

func receiptOf(r *consent.Receipt) receiptView {
	return receiptView{ID: r.ID, ConsentID: r.ConsentID, Kind: r.Kind, Version: r.Version, CreatedAt: r.CreatedAt.UTC(),
		Href: "/v1/consents/" + r.ConsentID + "/receipts/" + r.ID, JWS: r.JWS}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (s *Server) listConsents(c *fiber.Ctx) error {
	p, err := consentPage(c)
	if err != nil {
		return s.fail(c, err)
	}
	q := consent.RecordQuery{CitizenID: citizenOf(c), Now: s.cfg.Now(), Page: p}
	switch c.Query("active") {
	case "":
	case "true":
		q.Active = true
	case "false":
	default:
		return s.fail(c, invalidParam("active", "true or false."))
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	recs, next, err := s.cfg.Consent.Store.ListRecords(ctx, q)
	if err != nil {
		return s.fail(c, cursorErr(consentErr(err)))
	}
	items := make([]consentView, 0, len(recs))
	for _, r := range recs {
		items = append(items, s.consentOf(r))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(items, next))
}

func (s *Server) getConsent(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	r, err := s.cfg.Consent.Store.GetRecord(ctx, citizenOf(c), idParam(c, "id"))
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(s.consentOf(r))
}

type withdrawnView struct {
	Consent consentView `json:"consent"`
	Receipt receiptView `json:"receipt"`
}

// withdrawConsent ends a consent at once: tokens derived from it are
// denied before the record changes, and data requests read the record on
// every call, so no replica releases anything under it afterwards.
func (s *Server) withdrawConsent(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	r, rc, err := s.cfg.Consent.Withdraw(ctx, citizenOf(c), idParam(c, "id"))
	if errors.Is(err, consent.ErrWithdrawn) && !errors.Is(err, consent.ErrUnavailable) {
		return s.fail(c, &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict,
			detail: "This consent was already withdrawn; its withdrawal receipt is listed under its receipts."})
	}
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(withdrawnView{Consent: s.consentOf(r), Receipt: receiptOf(rc)})
}

func (s *Server) listReceipts(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := idParam(c, "id")
	// The record first: another citizen's consent is a 404, never an empty
	// list.
	if _, err := s.cfg.Consent.Store.GetRecord(ctx, citizenOf(c), id); err != nil {
		return s.fail(c, consentErr(err))
	}
	rs, err := s.cfg.Consent.Store.Receipts(ctx, citizenOf(c), id)
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	out := struct {
		Items []receiptView `json:"items"`
	}{Items: make([]receiptView, 0, len(rs))}
	for _, r := range rs {
		out.Items = append(out.Items, receiptOf(r))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(out)
}

// mimeJOSE is the media type of a compact JWS (RFC 7515).
const mimeJOSE = "application/jose"

// getReceipt downloads one receipt: the bare JWS for Accept:
// application/jose, else JSON with the JWS inside.
func (s *Server) getReceipt(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	r, err := s.cfg.Consent.Store.GetReceipt(ctx, citizenOf(c), idParam(c, "receipt_id"))
	if err == nil && r.ConsentID != idParam(c, "id") {
		err = consent.ErrNotFound
	}
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+r.ID+`.jws"`)
	if c.Accepts(fiber.MIMEApplicationJSON, mimeJOSE) == mimeJOSE {
		c.Set(fiber.HeaderContentType, mimeJOSE)
		return c.SendString(r.JWS)
	}
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+r.ID+`.json"`)
	return c.JSON(receiptOf(r))
}

type actorView struct {
	Agency   *string `json:"agency"`
	ClientID *string `json:"client_id"`
	Operator *string `json:"operator"`
	Name     string  `json:"name"`
}

type entryView struct {
	ID          string          `json:"id"`
	At          time.Time       `json:"at"`
	Actor       actorView       `json:"actor"`
	Channel     consent.Channel `json:"channel"`
	Items       []string        `json:"items"`
	Purpose     string          `json:"purpose"`
	Basis       *consent.Basis  `json:"basis"`
	ConsentID   *string         `json:"consent_id"`
	Law         *string         `json:"law"`
	Outcome     consent.Outcome `json:"outcome"`
	Reason      *string         `json:"reason"`
	Description string          `json:"description"`
	FlaggedAt   *time.Time      `json:"flagged_at"`
	FlagNote    *string         `json:"flag_note"`
	OnBehalf    *onBehalfView   `json:"on_behalf"`
}

// onBehalfView names the representative who acted for the citizen.
type onBehalfView struct {
	Name      string  `json:"name"`
	Basis     string  `json:"basis"`
	MandateID *string `json:"mandate_id"`
}

// exportEntryView is an entry in the export, with what links it into the
// citizen's hash chain so the citizen can check it.
type exportEntryView struct {
	entryView
	Seq  int64  `json:"seq"`
	Prev []byte `json:"prev"`
	Hash []byte `json:"hash"`
}

// names resolves agency and client names for one response, each looked up
// once.
type names struct {
	s       *Server
	lang    string
	agency  map[string]string
	clients map[string]string
}

func (s *Server) names(l string) *names {
	return &names{s: s, lang: l, agency: map[string]string{}, clients: map[string]string{}}
}

func (n *names) agencyName(ctx context.Context, code string) (string, error) {
	if v, ok := n.agency[code]; ok {
		return v, nil
	}
	a, err := n.s.cfg.Store.GetAgency(ctx, code)
	switch {
	case errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable):
		n.agency[code] = code
	case err != nil:
		return "", err
	default:
		n.agency[code] = a.Name.In(n.lang)
	}
	return n.agency[code], nil
}

func (n *names) clientName(ctx context.Context, id string) (string, error) {
	if v, ok := n.clients[id]; ok {
		return v, nil
	}
	cl, err := n.s.cfg.Clients.GetClient(ctx, id)
	switch {
	case errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable):
		n.clients[id] = id // deleted since: its id is all there is
	case err != nil:
		return "", err
	default:
		n.clients[id] = cl.Name
	}
	return n.clients[id], nil
}

// who names the actor in the citizen's language: the agency and, when it
// has one, its client. An entry that recorded the names at the time of
// the release (consent.Names) is shown with those, so renaming a client or
// agency later does not rewrite the citizen's history; older entries
// recorded none and show the names of today.
func (n *names) who(ctx context.Context, a consent.Actor, at *consent.Names) (string, error) {
	var parts []string
	if a.Agency != "" {
		v := ""
		if at != nil {
			v = (mobileapi.Text{VI: at.AgencyVI, EN: at.AgencyEN}).In(n.lang)
		}
		if v == "" {
			var err error
			if v, err = n.agencyName(ctx, a.Agency); err != nil {
				return "", err
			}
		}
		parts = append(parts, v)
	}
	if a.ClientID != "" && a.ClientID != idp.EIDAppClientID {
		v := ""
		if at != nil {
			v = at.Client
		}
		if v == "" {
			var err error
			if v, err = n.clientName(ctx, a.ClientID); err != nil {
				return "", err
			}
		}
		if len(parts) > 0 {
			v = "(" + v + ")"
		}
		parts = append(parts, v)
	}
	if a.Operator != "" {
		parts = append(parts, map[string]string{"vi": "cán bộ vận hành ", "en": "operator "}[n.lang]+a.Operator)
	}
	if len(parts) == 0 {
		return map[string]string{"vi": "OneDoor", "en": "OneDoor"}[n.lang], nil
	}
	return strings.Join(parts, " "), nil
}

func (n *names) entry(ctx context.Context, e *consent.Entry) (entryView, error) {
	who, err := n.who(ctx, e.Actor, e.Names)
	if err != nil {
		return entryView{}, err
	}
	v := entryView{ID: e.ID, At: e.At.UTC(), Actor: actorView{Agency: nullable(e.Actor.Agency), ClientID: nullable(e.Actor.ClientID),
		Operator: nullable(e.Actor.Operator), Name: who}, Channel: e.Channel, Items: nonNilStrings(e.Items), Purpose: e.Purpose,
		ConsentID: nullable(e.ConsentID), Law: nullable(e.Law), Outcome: e.Outcome, Reason: nullable(e.Reason),
		Description: describe(n.lang, who, e), FlaggedAt: utcPtr(e.FlaggedAt), FlagNote: nullable(e.FlagNote)}
	if e.Basis != "" {
		b := e.Basis
		v.Basis = &b
	}
	if e.OnBehalf != nil {
		name, err := n.citizenName(ctx, e.OnBehalf.CitizenID)
		if err != nil {
			return entryView{}, err
		}
		v.OnBehalf = &onBehalfView{Name: name, Basis: e.OnBehalf.Basis, MandateID: nullable(e.OnBehalf.MandateID)}
	}
	return v, nil
}

// citizenName is a representative's name as the log shows it; one no
// longer registered is named as such rather than hiding the entry.
func (n *names) citizenName(ctx context.Context, id string) (string, error) {
	c, err := n.s.cfg.Citizens.GetCitizen(ctx, id)
	switch {
	case errors.Is(err, idp.ErrNotFound):
		return map[string]string{"vi": "(người không còn trong sổ đăng ký)", "en": "(no longer registered)"}[n.lang], nil
	case err != nil:
		return "", err
	}
	return c.Name(), nil
}

// itemNames are the data items as the citizen reads them.
var itemNames = map[string]text{
	"name":              {VI: "họ tên", EN: "full name"},
	"family_name":       {VI: "họ", EN: "family name"},
	"given_name":        {VI: "tên", EN: "given name"},
	"birthdate":         {VI: "ngày sinh", EN: "date of birth"},
	"gender":            {VI: "giới tính", EN: "gender"},
	"address":           {VI: "địa chỉ thường trú", EN: "registered address"},
	"phone_number":      {VI: "số điện thoại", EN: "phone number"},
	idp.ClaimPersonalID: {VI: "số định danh cá nhân", EN: "personal identification number"},
}

var channelNames = map[consent.Channel]text{
	consent.ChannelIDToken:     {VI: "khi bạn đăng nhập", EN: "when you signed in"},
	consent.ChannelUserInfo:    {VI: "qua dịch vụ thông tin người dùng", EN: "through the user information service"},
	consent.ChannelBroker:      {VI: "qua yêu cầu dữ liệu giữa các cơ quan", EN: "through an inter-agency data request"},
	consent.ChannelPrefill:     {VI: "để điền sẵn hồ sơ của bạn", EN: "to pre-fill your application"},
	consent.ChannelApplication: {VI: "khi xem hồ sơ bạn đã nộp", EN: "reading an application you submitted"},
	consent.ChannelOperator:    {VI: "khi cán bộ vận hành tra cứu", EN: "in an operator's look-up"},
}

// vnTime is the time the citizen reads (Viet Nam has no daylight saving).
var vnTime = time.FixedZone("ICT", 7*60*60)

func itemList(l string, items []string) string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if t, ok := itemNames[it]; ok {
			out = append(out, t.In(l))
		} else {
			out = append(out, it)
		}
	}
	and := map[string]string{"vi": " và ", "en": " and "}[l]
	if len(out) <= 1 {
		return strings.Join(out, "")
	}
	return strings.Join(out[:len(out)-1], ", ") + and + out[len(out)-1]
}

// describe says in one sentence who received (or asked for) which items,
// why, when and what happened.
func describe(l, who string, e *consent.Entry) string {
	when := e.At.In(vnTime)
	items := itemList(l, e.Items)
	how := channelNames[e.Channel].In(l)
	var why string
	switch {
	case e.Basis == consent.BasisConsent:
		why = map[string]string{"vi": "theo sự đồng ý của bạn", "en": "under your consent"}[l]
	case e.Basis.Legal():
		why = map[string]string{"vi": "theo quy định pháp luật (", "en": "under the law ("}[l] + e.Law + ")"
	case e.Basis == consent.BasisCitizenRequest:
		why = map[string]string{"vi": "theo yêu cầu của bạn", "en": "at your request"}[l]
	}
	if e.Channel == consent.ChannelPrefill && e.Outcome == consent.OutcomeReleased {
		// The agency receives nothing yet: the app filled in a draft.
		if l == "en" {
			return fmt.Sprintf("On %s, your %s were read from the register to pre-fill your application %q to %s, at your request.",
				when.Format("2 Jan 2006 at 15:04")+" (UTC+7)", items, e.Purpose, who)
		}
		return fmt.Sprintf("Lúc %s, %s của bạn được lấy từ cơ sở dữ liệu để điền sẵn hồ sơ “%s” gửi %s, theo yêu cầu của bạn.",
			when.Format("15:04 ngày 02/01/2006"), items, e.Purpose, who)
	}
	if l == "en" {
		at := when.Format("2 Jan 2006 at 15:04") + " (UTC+7)"
		if e.Outcome == consent.OutcomeRefused {
			return fmt.Sprintf("On %s, %s asked for your %s for purpose %q %s and was refused: no consent or legal basis covered it.", at, who, items, e.Purpose, how)
		}
		return fmt.Sprintf("On %s, %s received your %s for purpose %q %s, %s.", at, who, items, e.Purpose, how, why)
	}
	at := when.Format("15:04 ngày 02/01/2006")
	if e.Outcome == consent.OutcomeRefused {
		return fmt.Sprintf("Lúc %s, %s đã yêu cầu %s của bạn cho mục đích “%s” %s và bị từ chối: không có sự đồng ý hay căn cứ pháp luật.", at, who, items, e.Purpose, how)
	}
	return fmt.Sprintf("Lúc %s, %s đã nhận %s của bạn cho mục đích “%s” %s, %s.", at, who, items, e.Purpose, how, why)
}

func (s *Server) listAccessLog(c *fiber.Ctx) error {
	p, err := consentPage(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	es, next, err := s.cfg.Consent.Store.ListEntries(ctx, consent.EntryQuery{CitizenID: citizenOf(c), Page: p})
	if err != nil {
		return s.fail(c, cursorErr(consentErr(err)))
	}
	n := s.names(lang(c))
	items := make([]entryView, 0, len(es))
	for _, e := range es {
		v, err := n.entry(ctx, e)
		if err != nil {
			return s.fail(c, err)
		}
		items = append(items, v)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptLanguage)
	return c.JSON(newList(items, next))
}

// exportAccessLog downloads the citizen's whole log, newest first, with
// the hash chain.
func (s *Server) exportAccessLog(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	n := s.names(lang(c))
	out := struct {
		Subject     string            `json:"subject"`
		ExportedAt  time.Time         `json:"exported_at"`
		Entries     []exportEntryView `json:"entries"`
		OlderCursor *string           `json:"older_cursor"`
	}{Subject: citizenOf(c), ExportedAt: s.cfg.Now().UTC(), Entries: []exportEntryView{}}
	q := consent.EntryQuery{CitizenID: citizenOf(c), Page: consent.Page{Limit: consent.MaxLimit}}
	for {
		es, next, err := s.cfg.Consent.Store.ListEntries(ctx, q)
		if err != nil {
			return s.fail(c, consentErr(err))
		}
		for _, e := range es {
			v, err := n.entry(ctx, e)
			if err != nil {
				return s.fail(c, err)
			}
			out.Entries = append(out.Entries, exportEntryView{entryView: v, Seq: e.Seq, Prev: e.Prev, Hash: e.Hash})
		}
		if next == "" || len(es) == 0 {
			break
		}
		if len(out.Entries) >= maxExport {
			// One response stays bounded in memory however long the log
			// grows; the rest pages through GET /v1/access-log.
			out.OlderCursor = &next
			break
		}
		q.Page.Cursor = next
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptLanguage)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="onedoor-access-log.json"`)
	return c.JSON(out)
}

// maxExport bounds the entries of one export.
const maxExport = 10_000

type flagRequest struct {
	Note *string `json:"note"`
}

// maxFlagNote bounds the citizen's note on a flag.
const maxFlagNote = 1000

// flagEntry records the citizen's "this wasn't me", once.
func (s *Server) flagEntry(c *fiber.Ctx) error {
	var in flagRequest
	if len(c.Body()) > 0 {
		if len(c.Body()) > maxJSONBody {
			return s.fail(c, tooLarge("The body is too large."))
		}
		if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
			return s.fail(c, err)
		}
	}
	note := ""
	if in.Note != nil {
		note = strings.TrimSpace(*in.Note)
	}
	if len(note) > maxFlagNote {
		return s.fail(c, unprocessable([]fieldError{{Pointer: "/note", Message: fmt.Sprintf("At most %d bytes.", maxFlagNote)}}))
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := idParam(c, "id")
	cur, err := s.cfg.Consent.Store.GetEntry(ctx, citizenOf(c), id)
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	if cur.FlaggedAt != nil {
		return s.fail(c, &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict,
			detail: "This entry is already flagged; an operator will look at it."})
	}
	e, err := s.cfg.Consent.Store.FlagEntry(ctx, citizenOf(c), id, note, s.cfg.Now().UTC())
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	v, err := s.names(lang(c)).entry(ctx, e)
	if err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(v)
}

// The data broker.

type dataRequestIn struct {
	Subject    *string  `json:"subject"`
	PersonalID *string  `json:"personal_id"`
	Purpose    string   `json:"purpose"`
	Items      []string `json:"items"`
}

type dataRequestOut struct {
	ID         string                   `json:"id"`
	Subject    string                   `json:"subject"`
	Purpose    string                   `json:"purpose"`
	Basis      consent.Basis            `json:"basis"`
	ConsentID  *string                  `json:"consent_id"`
	Law        *string                  `json:"law"`
	Items      map[string]consent.Value `json:"items"`
	ReleasedAt time.Time                `json:"released_at"`
}

// validPurpose: a purpose code is short and plain (it is logged and shown
// to the citizen).
func validPurpose(p string) bool {
	return p != "" && len(p) <= 64 && !strings.ContainsFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:", r))
	})
}

func (in *dataRequestIn) validate() []fieldError {
	var errs []fieldError
	switch {
	case (in.Subject == nil) == (in.PersonalID == nil):
		errs = append(errs, fieldError{Pointer: "/subject", Message: "Name the citizen by exactly one of subject and personal_id."})
	case in.PersonalID != nil && !idp.ValidPersonalID(*in.PersonalID):
		errs = append(errs, fieldError{Pointer: "/personal_id", Message: "A 12-digit personal identification number."})
	case in.Subject != nil && (*in.Subject == "" || len(*in.Subject) > 64 ||
		strings.ContainsFunc(*in.Subject, func(r rune) bool { return r < 0x21 || r > 0x7e })):
		errs = append(errs, fieldError{Pointer: "/subject", Message: "The citizen's subject identifier, 1 to 64 visible ASCII characters."})
	}
	if !validPurpose(in.Purpose) {
		errs = append(errs, fieldError{Pointer: "/purpose", Message: "A purpose code: 1 to 64 letters, digits and . - _ :"})
	}
	if len(in.Items) == 0 || len(in.Items) > len(idp.KnownClaims) {
		errs = append(errs, fieldError{Pointer: "/items", Message: fmt.Sprintf("From 1 to %d data items.", len(idp.KnownClaims))})
	}
	for i, it := range in.Items {
		switch {
		case !slices.Contains(idp.KnownClaims, it):
			errs = append(errs, fieldError{Pointer: fmt.Sprintf("/items/%d", i), Message: "Unknown item; one of " + strings.Join(idp.KnownClaims, ", ") + "."})
		case slices.Index(in.Items, it) < i:
			errs = append(errs, fieldError{Pointer: fmt.Sprintf("/items/%d", i), Message: "Named twice."})
		}
	}
	return errs
}

// noBasis is what a refusal says of each item when the agency has neither
// consent nor a legal basis; the answer for an unknown citizen is the same
// (and is not logged: there is no citizen to log it for), so a refusal
// never tells an agency whether a personal id exists.
const noBasis = "no consent of the citizen and no legal basis registered for this agency and purpose"

// dataRequest is the data broker: items about a citizen for a purpose,
// released only under the client's own active consent for that purpose or
// a legal basis registered for the agency, read from the register (never
// kept here) and logged before the answer leaves. Each request is decided
// afresh: a replay after a withdrawal is refused, and every replay shows in
// the citizen's log.
func (s *Server) dataRequest(c *fiber.Ctx) error {
	if m, _ := c.Locals(localAgencyAuth).(string); m != idp.AuthPrivateKeyJWT {
		return s.fail(c, forbidden(fmt.Sprintf("Data requests take tokens of clients that authenticate with private_key_jwt (a key the agency holds, never sent); this client authenticates with %s. Register a client with --auth private_key_jwt.", orNone(m))))
	}
	if len(c.Body()) > maxJSONBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	var in dataRequestIn
	if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
		return s.fail(c, err)
	}
	if errs := in.validate(); len(errs) > 0 {
		return s.fail(c, unprocessable(errs))
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	var cit *idp.Citizen
	var err error
	if in.PersonalID != nil {
		cit, err = s.cfg.Citizens.GetCitizenByPersonalID(ctx, *in.PersonalID)
	} else {
		cit, err = s.cfg.Citizens.GetCitizen(ctx, *in.Subject)
	}
	if err != nil && (!errors.Is(err, idp.ErrNotFound) || errors.Is(err, idp.ErrUnavailable)) {
		return s.fail(c, err)
	}
	req := consent.Request{Actor: agencyActor(c), Channel: consent.ChannelBroker,
		Purpose: in.Purpose, Items: in.Items}
	if cit == nil {
		return s.unknownCitizen(ctx, c, req)
	}
	req.CitizenID = cit.ID
	vals, e, err := s.cfg.Consent.Fetch(ctx, s.cfg.Registry, req)
	var refused *consent.RefusedError
	if errors.As(err, &refused) {
		return s.refuse(c, in.Items, refused.Missing)
	}
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	out := dataRequestOut{ID: e.ID, Subject: cit.ID, Purpose: in.Purpose, Basis: e.Basis, ConsentID: nullable(e.ConsentID),
		Law: nullable(e.Law), Items: vals, ReleasedAt: e.At.UTC()}
	if out.Items == nil {
		out.Items = map[string]consent.Value{}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// unknownCitizen answers a request about nobody: the refusal every item
// would get for a citizen without consent, unless the agency has a legal
// basis covering it, which entitles it to learn that there is no such
// citizen.
func (s *Server) unknownCitizen(ctx context.Context, c *fiber.Ctx, req consent.Request) error {
	req.CitizenID = "-" // names nobody: no record can match
	d, err := s.cfg.Consent.Decide(ctx, req)
	if err != nil {
		return s.fail(c, consentErr(err))
	}
	if d.Allowed() {
		return s.fail(c, idp.ErrNotFound)
	}
	missing := map[string]string{}
	for _, it := range req.Items {
		missing[it] = noBasis
	}
	return s.refuse(c, req.Items, missing)
}

// refusedProblem is a refused data request: each item with the basis it
// lacked, in errors and as a map.
type refusedProblem struct {
	apiProblem
	Missing map[string]string `json:"missing"`
}

func (s *Server) refuse(c *fiber.Ctx, items []string, missing map[string]string) error {
	p := refusedProblem{apiProblem: apiProblem{Instance: strings.Clone(c.Path())}, Missing: missing}
	p.Type, p.Title, p.Status = typeForbidden, tForbidden.In(lang(c)), http.StatusForbidden
	p.Detail = fmt.Sprintf("%d of %d items have no basis for this agency and purpose.", len(missing), len(items))
	for i, it := range items {
		if why, ok := missing[it]; ok {
			p.Errors = append(p.Errors, fieldError{Pointer: fmt.Sprintf("/items/%d", i), Message: it + ": " + why})
		}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Response().Header.Del(fiber.HeaderETag)
	return c.Status(http.StatusForbidden).JSON(p, problem.ContentType)
}
