// Package mobileapi is the citizen app's API to every public service: the
// catalog, applications from submission to result, the agency side (services,
// decisions, work queue, webhooks) and the citizen's inbox and home screen.
//
// This file is its contract: the OpenAPI 3.1 document, written before the
// implementation, served at /v1/openapi.json and rendered at /v1/docs. Every
// response the server sends must match it.
package mobileapi

import _ "embed" // for go:embed

// OpenAPI is the OpenAPI 3.1 document of the mobile API (openapi.json): the
// routes under /v1 and /agency/v1, their schemas, security and problems.
// It is shared, not copied: callers must not modify it.
//
//go:embed openapi.json
var OpenAPI []byte
