package eidapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode"
)

// Error is an error answer from the IdP, in OAuth form
// ({"error": "...", "error_description": "..."}).
type Error struct {
	StatusCode  int    // HTTP status; 0 for an error returned in a redirect
	Code        string // OAuth error code such as invalid_request
	Description string
}

func (e *Error) Error() string {
	s := "IdP answered"
	if e.StatusCode != 0 {
		s += fmt.Sprintf(" %d", e.StatusCode)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

const maxBody = 1 << 20

// call sends a JSON request (in may be nil) and decodes a JSON answer into
// out (may be nil) when the status is one of ok; any other status becomes
// an *Error.
func call(ctx context.Context, c *http.Client, method, url, auth string, in, out any, ok ...int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	return decode(resp, out, ok...)
}

// decode reads resp as JSON into out, or turns a status outside ok into an
// *Error.
func decode(resp *http.Response, out any, ok ...int) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read %s: %w", resp.Request.URL, err)
	}
	if !slices.Contains(ok, resp.StatusCode) {
		return errorFrom(resp.StatusCode, b)
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 { // callers check the fields they need
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", resp.Request.URL, err)
	}
	return nil
}

func errorFrom(status int, body []byte) error {
	e := &Error{StatusCode: status}
	var oe struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &oe) == nil && oe.Error != "" {
		e.Code, e.Description = oe.Error, oe.Description
	} else {
		e.Description = http.StatusText(status)
	}
	e.Description = printable(e.Description)
	e.Code = printable(e.Code)
	return e
}

// printable keeps IdP text from driving the terminal (escape sequences).
func printable(s string) string {
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) { // Cf: bidi overrides and other invisible marks
			return '?'
		}
		return r
	}, s)
}
