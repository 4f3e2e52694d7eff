package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

// stdin is where BODY @- is read from.
var stdin io.Reader = os.Stdin

// callAPI is `eidsim api`: one request to the mobile API with the citizen's
// token for it. The body goes to stdout as it came, so a document can be
// redirected to a file; a non-2xx answer is an error (exit 1) after it.
func callAPI(ctx context.Context, app *eidapp.App, o *options, stdout io.Writer) error {
	api := strings.TrimRight(o.api, "/")
	var body []byte
	if o.hasBody {
		var err error
		if body, err = readBody(o.body); err != nil {
			return err
		}
	}
	var rd io.Reader
	if o.hasBody {
		rd = bytes.NewReader(body) // sets GetBody, so a refused cached token can be retried
	}
	req, err := http.NewRequestWithContext(ctx, o.method, api+o.path, rd) //nolint:gosec // the user's own request; DoAPI keeps it beneath the API URL
	if err != nil {
		return fmt.Errorf("%s %s: %w", o.method, o.path, err)
	}
	if o.hasBody {
		ct := "application/json"
		if o.method == http.MethodPatch {
			ct = "application/merge-patch+json"
		}
		req.Header.Set("Content-Type", ct)
	}
	applyHeaders(req, o.headers)
	resp, err := app.DoAPI(ctx, api, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if o.include {
		if err := writeHead(stdout, resp); err != nil {
			return err
		}
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", o.method, o.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %s", o.method, o.path, clean(resp.Status))
	}
	return nil
}

// readBody reads BODY: inline, or @FILE, or @- for standard input.
func readBody(arg string) ([]byte, error) {
	name, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return []byte(arg), nil
	}
	if name == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read the body from standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name) //nolint:gosec // the user names the file to send on their own command line
	if err != nil {
		return nil, fmt.Errorf("read the body: %w", err)
	}
	return b, nil
}

// applyHeaders applies -H in order: the first occurrence of a name replaces
// the default, later ones add values, and an empty value removes the header.
func applyHeaders(req *http.Request, hs []header) {
	seen := map[string]bool{}
	for _, h := range hs {
		key := http.CanonicalHeaderKey(h.name)
		switch {
		case h.value == "":
			req.Header.Del(key)
		case seen[key]:
			req.Header.Add(key, h.value)
		default:
			req.Header.Set(key, h.value)
		}
		seen[key] = true
		if key == "Host" {
			req.Host = h.value
		}
	}
}

// writeHead prints the status line and the headers, sorted by name, as
// curl --include does.
func writeHead(w io.Writer, resp *http.Response) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", resp.Proto, clean(resp.Status))
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", clean(k), clean(v))
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
