package eidapp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onedoor/onedoor/represent/evidence"
)

// The mobile API's representation routes, as the eID app calls them:
// whom the citizen may act for, and the mandates they grant (signed with
// the device key over their exact terms) and receive.

// Party is someone the citizen may act for.
type Party struct {
	Type       string  `json:"type"` // organisation or person
	ID         string  `json:"id"`
	TaxCode    *string `json:"tax_code"`
	PersonalID *string `json:"personal_id"`
	Name       string  `json:"name"`
}

// MandatePerson names a citizen party to a mandate.
type MandatePerson struct {
	PersonalID string `json:"personal_id"`
	Name       string `json:"name"`
}

// Representation is one party the citizen may act for now, and why.
type Representation struct {
	Party       Party          `json:"party"`
	Basis       string         `json:"basis"` // legal_representative, guardian or mandate
	Services    []string       `json:"services"`
	Categories  []string       `json:"categories"`
	MandateID   *string        `json:"mandate_id"`
	Grantor     *MandatePerson `json:"grantor"`
	Until       *time.Time     `json:"until"`
	MayDelegate bool           `json:"may_delegate"`
}

// Mandate is a mandate the citizen granted or received.
type Mandate struct {
	ID          string        `json:"id"`
	Direction   string        `json:"direction"` // granted or received
	State       string        `json:"state"`     // pending, upcoming, active, expired or revoked
	Party       Party         `json:"party"`
	Grantor     MandatePerson `json:"grantor"`
	Grantee     MandatePerson `json:"grantee"`
	Services    []string      `json:"services"`
	Categories  []string      `json:"categories"`
	ValidFrom   time.Time     `json:"valid_from"`
	ValidUntil  time.Time     `json:"valid_until"`
	MayDelegate bool          `json:"may_delegate"`
	ParentID    *string       `json:"parent_id"`
	CreatedAt   time.Time     `json:"created_at"`
	AcceptedAt  *time.Time    `json:"accepted_at"`
	RevokedAt   *time.Time    `json:"revoked_at"`
	RevokedBy   *string       `json:"revoked_by"`
	Evidence    string        `json:"evidence"`
}

// MandateTerms are what a grant asks: for an organisation (its tax code)
// or a person in the citizen's care (their personal id), the grantee's
// personal id, services and categories, and the validity.
type MandateTerms = evidence.Terms

// ProblemError is an error answer of the mobile API (RFC 9457), with every
// bad field it lists.
type ProblemError struct {
	StatusCode int
	Type       string
	Title      string
	Detail     string
	Fields     []ProblemField
}

// ProblemField is one bad field of a refused request.
type ProblemField struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
	Message   string `json:"message"`
}

func (e *ProblemError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "API answered %d", e.StatusCode)
	if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for _, f := range e.Fields {
		name := f.Pointer
		if name == "" {
			name = f.Parameter
		}
		fmt.Fprintf(&b, "\n  %s: %s", name, f.Message)
	}
	return b.String()
}

// Representations returns the parties the citizen may act for now.
func (a *App) Representations(ctx context.Context, api string) ([]Representation, error) {
	var out struct {
		Items []Representation `json:"items"`
	}
	if err := a.apiJSON(ctx, api, http.MethodGet, "/v1/representations", nil, nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// GrantMandate grants a mandate: it signs the terms with the device key
// (represent/evidence: for this API, now, once) and sends them with the
// signature, under a fresh Idempotency-Key. The mandate is pending until
// the grantee accepts it.
func (a *App) GrantMandate(ctx context.Context, api string, t MandateTerms) (*Mandate, error) {
	d, err := a.device()
	if err != nil {
		return nil, err
	}
	aud, err := resourceURL(api)
	if err != nil {
		return nil, err
	}
	// Whole seconds: what is signed and what is sent read the same.
	t.ValidUntil = t.ValidUntil.Truncate(time.Second)
	if t.ValidFrom != nil {
		f := t.ValidFrom.Truncate(time.Second)
		t.ValidFrom = &f
	}
	if t.Services == nil {
		t.Services = []string{}
	}
	if t.Categories == nil {
		t.Categories = []string{}
	}
	jws, err := evidence.Sign(d.key, evidence.Claims{Issuer: d.DeviceID, Audience: aud, IssuedAt: a.now().Unix(), ID: rand.Text(), Mandate: t})
	if err != nil {
		return nil, fmt.Errorf("sign the mandate: %w", err)
	}
	body := struct {
		MandateTerms
		Signature string `json:"signature"`
	}{t, jws}
	var m Mandate
	if err := a.apiJSON(ctx, aud, http.MethodPost, "/v1/mandates", body, []string{"Idempotency-Key", rand.Text()}, &m, http.StatusCreated); err != nil {
		return nil, err
	}
	return &m, nil
}

// Mandates returns the mandates the citizen granted and received, newest
// first, every page.
func (a *App) Mandates(ctx context.Context, api string) ([]Mandate, error) {
	var all []Mandate
	cursor := ""
	for range 1000 { // a bound, should the API keep answering a cursor
		path := "/v1/mandates?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Items      []Mandate `json:"items"`
			NextCursor *string   `json:"next_cursor"`
		}
		if err := a.apiJSON(ctx, api, http.MethodGet, path, nil, nil, &page, http.StatusOK); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == nil || *page.NextCursor == "" {
			return all, nil
		}
		cursor = *page.NextCursor
	}
	return nil, errors.New("the API's mandate list does not end")
}

// Mandate returns one of the citizen's mandates.
func (a *App) Mandate(ctx context.Context, api, id string) (*Mandate, error) {
	var m Mandate
	if err := a.apiJSON(ctx, api, http.MethodGet, "/v1/mandates/"+url.PathEscape(id), nil, nil, &m, http.StatusOK); err != nil {
		return nil, err
	}
	return &m, nil
}

// AcceptMandate accepts a mandate granted to the citizen.
func (a *App) AcceptMandate(ctx context.Context, api, id string) (*Mandate, error) {
	var m Mandate
	if err := a.apiJSON(ctx, api, http.MethodPost, "/v1/mandates/"+url.PathEscape(id)+"/accept", nil, nil, &m, http.StatusOK); err != nil {
		return nil, err
	}
	return &m, nil
}

// RevokeMandate revokes a mandate the citizen granted or received (and
// what was delegated from it).
func (a *App) RevokeMandate(ctx context.Context, api, id string) (*Mandate, error) {
	var m Mandate
	if err := a.apiJSON(ctx, api, http.MethodDelete, "/v1/mandates/"+url.PathEscape(id), nil, nil, &m, http.StatusOK); err != nil {
		return nil, err
	}
	return &m, nil
}

// apiJSON sends a JSON request to the mobile API with the citizen's token
// (DoAPI) and decodes a JSON answer into out when the status is one of ok;
// any other status becomes a *ProblemError.
func (a *App) apiJSON(ctx context.Context, api, method, path string, in any, hdr []string, out any, ok ...int) error {
	api, err := resourceURL(api)
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b) // sets GetBody: a refused cached token is retried
	}
	req, err := http.NewRequestWithContext(ctx, method, api+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.DoAPI(ctx, api, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
			}
			return nil
		}
	}
	return problemFrom(resp.StatusCode, raw)
}

func problemFrom(status int, body []byte) error {
	e := &ProblemError{StatusCode: status}
	var p struct {
		Type   string         `json:"type"`
		Title  string         `json:"title"`
		Detail string         `json:"detail"`
		Errors []ProblemField `json:"errors"`
	}
	if json.Unmarshal(body, &p) == nil {
		e.Type, e.Title, e.Detail = printable(p.Type), printable(p.Title), printable(p.Detail)
		for _, f := range p.Errors {
			e.Fields = append(e.Fields, ProblemField{Pointer: printable(f.Pointer), Parameter: printable(f.Parameter), Message: printable(f.Message)})
		}
	}
	if e.Title == "" {
		e.Title = http.StatusText(status)
	}
	return e
}
