// Package docs renders the mobile API's OpenAPI document for people at
// /v1/docs with Redoc, vendored into the binary (update.sh says how and
// which version): the page and its assets come from the server, never a CDN.
package docs

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
)

// AssetPrefix is the path the HTTP server serves Assets under.
const AssetPrefix = "/v1/docs/assets/"

// ContentSecurityPolicy is the policy to send with the page: scripts, the
// document and images from the server alone. Redoc needs inline styles
// (styled-components) and a blob: worker for its search; a blocked image
// (Redoc's own logo, from its CDN) just hides itself.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed assets
var embedded embed.FS

// Assets are the files the page loads, by name under AssetPrefix: Redoc's
// standalone bundle with its licenses, and the page's own script and style.
var Assets = mustSub(embedded, "assets")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // a constant, valid directory name
	}
	return sub
}

var page = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>OneDoor mobile API reference</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{.Prefix}}docs.css">
</head>
<body>
<noscript>This reference needs JavaScript. The OpenAPI document it renders is at <a href="{{.Spec}}">{{.Spec}}</a>.</noscript>
<div id="redoc" data-spec-url="{{.Spec}}"></div>
<script src="{{.Prefix}}redoc.standalone.js"></script>
<script src="{{.Prefix}}init.js"></script>
</body>
</html>
`))

// Page returns the HTML page that renders the OpenAPI document at specURL,
// which should be a path on the same server (the policy allows no other).
func Page(specURL string) []byte {
	var b bytes.Buffer
	if err := page.Execute(&b, struct{ Prefix, Spec string }{AssetPrefix, specURL}); err != nil {
		// Executing a parsed template into a buffer fails only on a bug.
		panic(err)
	}
	return b.Bytes()
}
