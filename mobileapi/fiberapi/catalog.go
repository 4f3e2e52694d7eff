package fiberapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/crc32"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/form"
	"github.com/onedoor/onedoor/mobileapi/search"
)

var categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// searchServices searches the catalog (or lists it by code without q).
// The cursor is the offset into the ranked result, which is stable while
// the catalog does not change.
func (s *Server) searchServices(c *fiber.Ctx) error {
	q := strings.Clone(c.Query("q"))
	cat := strings.Clone(c.Query("category"))
	if len([]rune(q)) > 200 {
		return s.fail(c, invalidParam("q", "The search text is at most 200 characters."))
	}
	if cat != "" && !categoryRE.MatchString(cat) {
		return s.fail(c, invalidParam("category", "Unknown category format."))
	}
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	offset := 0
	if p.Cursor != "" {
		if offset, err = decodeOffset(p.Cursor); err != nil {
			return s.fail(c, err)
		}
	}
	limit := p.Limit
	if limit == 0 {
		limit = mobileapi.DefaultLimit
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	idx, err := s.cfg.Catalog.Index(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	hits := idx.Search(search.Query{Text: q, Category: cat, Lang: lang(c), Offset: offset, Limit: limit + 1})
	next := ""
	if len(hits) > limit {
		hits = hits[:limit]
		next = encodeOffset(offset + limit)
	}
	// The answer is written straight into fasthttp's pooled response
	// buffer: a search allocates no body of its own.
	enc := s.serviceJSON.of(idx)
	resp := c.Response()
	resp.ResetBody()
	resp.AppendBodyString(`{"items":[`)
	for i, h := range hits {
		sum, err := enc.summary(h.Service)
		if err != nil {
			resp.ResetBody()
			return s.fail(c, err)
		}
		if i > 0 {
			resp.AppendBodyString(",")
		}
		resp.AppendBody(sum)
	}
	resp.AppendBodyString(`],"next_cursor":`)
	if next == "" {
		resp.AppendBodyString("null")
	} else {
		resp.AppendBodyString(strconv.Quote(next)) // base64url: nothing to escape
	}
	resp.AppendBodyString("}")
	etag := searchETag(idx.Version(), resp.Body())
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	c.Set(fiber.HeaderETag, etag)
	if notModified(c, etag) {
		resp.ResetBody()
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return nil
}

// summaryCache holds the JSON of each service's summary, encoded once per
// search index: a search answers by joining bytes instead of encoding a
// page of structs on every request (profiles showed the encoding and the
// etag middleware's hash as most of a search after the DPoP proof).
type summaryCache struct {
	cur atomic.Pointer[encodedSummaries]
}

// encodedSummaries are the summaries of one index's services, keyed by
// the index's *mobileapi.Service (immutable while the index lives). They
// are kept up to summaryBudget bytes: agencies write the text, and JSON
// escaping can make it six times larger, so beyond the budget a summary
// is encoded per request instead of held.
type encodedSummaries struct {
	idx   *search.Index
	m     sync.Map
	bytes atomic.Int64
}

// summaryBudget bounds the encoded summaries one index keeps: the demo
// catalog's take about 200 KB, 5,000 typical services about 2.5 MB.
const summaryBudget = 16 << 20

// of returns the summaries of idx. A newer index (by catalog version)
// replaces the set held; a request still holding an older index gets a
// set of its own for this answer and leaves the newer one in place.
func (sc *summaryCache) of(idx *search.Index) *encodedSummaries {
	for {
		e := sc.cur.Load()
		if e != nil && e.idx == idx {
			return e
		}
		n := &encodedSummaries{idx: idx}
		if e != nil && idx.Version() < e.idx.Version() {
			return n
		}
		if sc.cur.CompareAndSwap(e, n) {
			return n
		}
	}
}

func (e *encodedSummaries) summary(s *mobileapi.Service) ([]byte, error) {
	if b, ok := e.m.Load(s); ok {
		return b.([]byte), nil
	}
	b, err := json.Marshal(serviceSummary(s))
	if err != nil {
		return nil, err
	}
	if e.bytes.Add(int64(len(b))) <= summaryBudget {
		e.m.Store(s, b)
	} else {
		e.bytes.Add(-int64(len(b)))
	}
	return b, nil
}

// searchETag is a strong ETag of a search answer: the catalog version it
// was answered from, its length and a CRC-32C, which the CPU computes in
// hardware (fiber's etag middleware uses a polynomial that Go hashes a
// byte at a time, the largest cost of a search answer after the proof).
// With the version, an agency that tunes its text to keep a page's CRC
// cannot keep clients on the page they held before its change.
func searchETag(version int64, body []byte) string {
	return `"v` + strconv.FormatInt(version, 10) + "-" + strconv.Itoa(len(body)) + "-c" +
		strconv.FormatUint(uint64(crc32.Checksum(body, castagnoli)), 10) + `"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeOffset(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(n)))
}

func decodeOffset(cur string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if err == nil {
		if v, ok := strings.CutPrefix(string(b), "o:"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < 1<<20 {
				return n, nil
			}
		}
	}
	return 0, invalidParam("cursor", "The cursor is not valid; start again from the first page.")
}

func (s *Server) getService(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	svc, err := s.cfg.Store.GetService(ctx, idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	refs, err := s.agencyRefs(c, svc.Handlers())
	if err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(serviceFull(svc, refs))
}

// agencyRefs names the agencies with the given codes.
func (s *Server) agencyRefs(c *fiber.Ctx, codes []string) ([]agencyRef, error) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	out := make([]agencyRef, 0, len(codes))
	for _, code := range codes {
		a, err := s.cfg.Store.GetAgency(ctx, code)
		if err != nil {
			return nil, err
		}
		out = append(out, agencyRef{Code: a.Code, Name: a.Name})
	}
	return out, nil
}

// maxServicesPerAgency bounds one agency's catalog.
const maxServicesPerAgency = mobileapi.MaxServicesPerAgency

// serviceInput is the body of PUT /agency/v1/services/{code}.
type serviceInput struct {
	Name              *mobileapi.Text              `json:"name"`
	Description       *mobileapi.Text              `json:"description"`
	Category          string                       `json:"category"`
	Fee               *mobileapi.Fee               `json:"fee"`
	ProcessingTime    *processingTime              `json:"processing_time"`
	RequiredDocuments []mobileapi.RequiredDocument `json:"required_documents"`
	HandlingAgencies  []string                     `json:"handling_agencies"`
	Schema            json.RawMessage              `json:"schema"`
	// Representation is "allowed" (the default) or "refused": whether an
	// application may be filed for someone else.
	Representation string `json:"representation"`
}

var serviceCodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
var docCodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// putService creates or updates one of the agency's services. A code
// another agency owns is 403, so agencies cannot take over each other's
// services.
func (s *Server) putService(c *fiber.Ctx) error {
	code := strings.Clone(c.Params("code"))
	if !serviceCodeRE.MatchString(code) {
		return s.fail(c, invalidParam("code", "A service code is 1 to 64 letters, digits, dots, underscores or hyphens."))
	}
	if len(c.Body()) > maxJSONBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	var in serviceInput
	if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
		return s.fail(c, err)
	}
	if errs := in.check(); len(errs) > 0 {
		return s.fail(c, unprocessable(errs))
	}
	if _, err := form.Compile(in.Schema); err != nil {
		var ve *form.ValidationError
		if errors.As(err, &ve) {
			return s.fail(c, unprocessable(fieldErrors("/schema", lang(c), ve)))
		}
		return s.fail(c, unprocessable([]fieldError{{Pointer: "/schema", Message: "The schema is not a valid JSON Schema 2020-12 document."}}))
	}
	ifv, err := ifMatch(c)
	if err != nil {
		return s.fail(c, err)
	}
	agency := agencyOf(c)
	ctx, cancel := s.ctx(c)
	defer cancel()
	cur, err := s.cfg.Store.GetServiceByCode(ctx, code)
	switch {
	case err == nil && cur.AgencyCode != agency:
		return s.fail(c, forbidden("Another agency owns this service code."))
	case errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable):
		// A new service: each agency's catalog is bounded, as every replica
		// indexes all of it.
		idx, err := s.cfg.Catalog.Index(ctx)
		if err != nil {
			return s.fail(c, err)
		}
		if idx.CountOwnedBy(agency) >= maxServicesPerAgency { // the store checks again, under its lock
			return s.fail(c, serviceQuota())
		}
	case err != nil:
		return s.fail(c, err)
	}
	svc := &mobileapi.Service{Code: code, Name: *in.Name, Description: *in.Description, AgencyCode: agency, Category: in.Category,
		Fee: *in.Fee, ProcessingDays: in.ProcessingTime.WorkingDays, RequiredDocuments: in.RequiredDocuments,
		HandlingAgencies: in.HandlingAgencies, Schema: in.Schema, Representation: in.Representation}
	created, err := s.cfg.Store.PutService(ctx, svc, int(ifv))
	if quotaReached(err) {
		return s.fail(c, serviceQuota())
	}
	if errors.Is(err, mobileapi.ErrNotOwner) && !errors.Is(err, idp.ErrUnavailable) {
		return s.fail(c, forbidden("Another agency owns this service code."))
	}
	if errors.Is(err, idp.ErrInvalid) && !errors.Is(err, idp.ErrUnavailable) {
		return s.fail(c, unprocessable([]fieldError{{Pointer: "/handling_agencies", Message: "Every handling agency must be a registered agency."}}))
	}
	if err != nil {
		return s.fail(c, err)
	}
	s.cfg.Catalog.Invalidate()
	refs, err := s.agencyRefs(c, svc.Handlers())
	if err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderETag, `"v`+strconv.Itoa(svc.Version)+`"`)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		c.Set(fiber.HeaderLocation, "/v1/services/"+svc.ID)
	}
	return c.Status(status).JSON(serviceFull(svc, refs))
}

// check lists every missing or malformed member.
func (in *serviceInput) check() []fieldError {
	var errs []fieldError
	bad := func(p, m string) { errs = append(errs, fieldError{Pointer: p, Message: m}) }
	text := func(p string, t *mobileapi.Text, limit int) {
		switch {
		case t == nil:
			bad(p, "Required.")
		case strings.TrimSpace(t.VI) == "" || strings.TrimSpace(t.EN) == "":
			bad(p, "Both vi and en are required.")
		case len(t.VI) > limit || len(t.EN) > limit:
			bad(p, "Too long.")
		}
	}
	text("/name", in.Name, 300)
	text("/description", in.Description, 4000)
	if !categoryRE.MatchString(in.Category) {
		bad("/category", "A category is a lowercase word of letters, digits and underscores.")
	}
	switch {
	case in.Fee == nil:
		bad("/fee", "Required.")
	case in.Fee.Amount < 0:
		bad("/fee/amount", "Must not be negative.")
	case !regexp.MustCompile(`^[A-Z]{3}$`).MatchString(in.Fee.Currency):
		bad("/fee/currency", "An ISO 4217 currency code.")
	}
	if in.ProcessingTime == nil {
		bad("/processing_time", "Required.")
	} else if in.ProcessingTime.WorkingDays < 0 || in.ProcessingTime.WorkingDays > 3650 {
		bad("/processing_time/working_days", "From 0 to 3650.")
	}
	if in.RequiredDocuments == nil {
		bad("/required_documents", "Required (may be empty).")
	}
	seen := map[string]bool{}
	for i, d := range in.RequiredDocuments {
		p := "/required_documents/" + strconv.Itoa(i)
		if !docCodeRE.MatchString(d.Code) {
			bad(p+"/code", "A document code is 1 to 64 letters, digits, dots, underscores or hyphens.")
		} else if seen[d.Code] {
			bad(p+"/code", "Duplicate document code.")
		}
		seen[d.Code] = true
		if strings.TrimSpace(d.Name.VI) == "" || strings.TrimSpace(d.Name.EN) == "" {
			bad(p+"/name", "Both vi and en are required.")
		}
	}
	if len(in.HandlingAgencies) > 200 {
		bad("/handling_agencies", "At most 200 agencies.")
	}
	if len(in.Schema) == 0 {
		bad("/schema", "Required.")
	}
	switch in.Representation {
	case "", mobileapi.RepresentationAllowed, mobileapi.RepresentationRefused:
	default:
		bad("/representation", "One of allowed, refused.")
	}
	return errs
}

// fieldErrors turns a form's validation errors into problem fields under
// prefix ("/form" or "/schema").
func fieldErrors(prefix, lang string, ve *form.ValidationError) []fieldError {
	out := make([]fieldError, 0, len(ve.Errors))
	for _, e := range ve.Errors {
		out = append(out, fieldError{Pointer: prefix + e.Pointer, Message: e.In(lang)})
	}
	if len(out) == 0 {
		out = append(out, fieldError{Pointer: prefix, Message: "Invalid."})
	}
	return out
}

// schemaCache keeps compiled forms by service id and version; a version
// never changes, so entries never go stale.
type schemaCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*form.Form
}

func newSchemaCache(size int) *schemaCache {
	return &schemaCache{max: size, m: map[string]*form.Form{}}
}

func (sc *schemaCache) get(svc *mobileapi.Service) (*form.Form, error) {
	k := svc.ID + "@" + strconv.Itoa(svc.Version)
	sc.mu.Lock()
	f, ok := sc.m[k]
	sc.mu.Unlock()
	if ok {
		return f, nil
	}
	f, err := form.Compile(svc.Schema)
	if err != nil {
		return nil, err
	}
	sc.mu.Lock()
	if len(sc.m) >= sc.max {
		clear(sc.m)
	}
	sc.m[k] = f
	sc.mu.Unlock()
	return f, nil
}
