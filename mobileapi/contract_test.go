package mobileapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	highv3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/onedoor/onedoor/mobileapi"
)

const problemRef = "#/components/schemas/Problem"

// route is one operation issues 6 and 7 name, with what the contract must say of it.
type route struct {
	method, path string
	list         bool // cursor-paged: cursor and limit parameters, next_cursor in the 200 body
	creates      bool // a POST that creates something: Idempotency-Key
	ifMatch      bool // a write to an application (or a service): If-Match
	stream       bool // a live stream: no ETag, so no If-None-Match
}

var routes = []route{
	{method: http.MethodGet, path: "/v1/openapi.json"},
	{method: http.MethodGet, path: "/v1/docs"},
	{method: http.MethodGet, path: "/v1/home"},
	{method: http.MethodGet, path: "/v1/me"},
	{method: http.MethodGet, path: "/v1/services", list: true},
	{method: http.MethodGet, path: "/v1/services/{id}"},
	{method: http.MethodGet, path: "/v1/applications", list: true},
	{method: http.MethodPost, path: "/v1/applications", creates: true},
	{method: http.MethodGet, path: "/v1/applications/{id}"},
	{method: http.MethodPatch, path: "/v1/applications/{id}", ifMatch: true},
	{method: http.MethodDelete, path: "/v1/applications/{id}", ifMatch: true},
	{method: http.MethodPost, path: "/v1/applications/{id}/attachments", creates: true, ifMatch: true},
	{method: http.MethodPost, path: "/v1/applications/{id}/submit", ifMatch: true},
	{method: http.MethodPost, path: "/v1/applications/{id}/withdraw", ifMatch: true},
	{method: http.MethodGet, path: "/v1/applications/{id}/results/{result_id}"},
	{method: http.MethodGet, path: "/v1/inbox", list: true},
	{method: http.MethodPost, path: "/v1/inbox/{id}/read"},
	{method: http.MethodGet, path: "/v1/consents", list: true},
	{method: http.MethodGet, path: "/v1/consents/{id}"},
	{method: http.MethodDelete, path: "/v1/consents/{id}"},
	{method: http.MethodGet, path: "/v1/consents/{id}/receipts"},
	{method: http.MethodGet, path: "/v1/consents/{id}/receipts/{receipt_id}"},
	{method: http.MethodGet, path: "/v1/access-log", list: true},
	{method: http.MethodGet, path: "/v1/access-log/export"},
	{method: http.MethodGet, path: "/v1/access-log/proof"},
	{method: http.MethodPost, path: "/v1/access-log/{id}/flag"},
	{method: http.MethodPut, path: "/agency/v1/services/{code}", ifMatch: true},
	{method: http.MethodGet, path: "/agency/v1/applications", list: true},
	{method: http.MethodGet, path: "/agency/v1/applications/{id}"},
	{method: http.MethodGet, path: "/agency/v1/applications/{id}/attachments/{attachment_id}"},
	{method: http.MethodPost, path: "/agency/v1/applications/{id}/documents", creates: true},
	{method: http.MethodPost, path: "/agency/v1/applications/{id}/transitions", creates: true, ifMatch: true},
	{method: http.MethodPost, path: "/agency/v1/queue/leases"},
	{method: http.MethodPost, path: "/agency/v1/queue/leases/{lease_id}/ack"},
	{method: http.MethodGet, path: "/agency/v1/webhooks", list: true},
	{method: http.MethodPost, path: "/agency/v1/webhooks", creates: true},
	{method: http.MethodDelete, path: "/agency/v1/webhooks/{id}"},
	{method: http.MethodGet, path: "/agency/v1/webhooks/{id}/deliveries", list: true},
	{method: http.MethodPost, path: "/agency/v1/data-requests"},
	// Push (issue 8). A citizen has at most push.MaxInstallations devices,
	// so their list is one page.
	{method: http.MethodGet, path: "/v1/push-config"},
	{method: http.MethodGet, path: "/v1/devices", list: true},
	{method: http.MethodPost, path: "/v1/devices", creates: true},
	{method: http.MethodDelete, path: "/v1/devices/{id}"},
	{method: http.MethodGet, path: "/v1/notification-preferences"},
	{method: http.MethodPut, path: "/v1/notification-preferences"},
	{method: http.MethodGet, path: "/v1/notifications/{id}"},
	{method: http.MethodGet, path: "/v1/events", stream: true},
	{method: http.MethodGet, path: "/agency/v1/applications/{id}/notifications", list: true},
	// Representation (issue 10). Whom a citizen may act for is a handful
	// of parties: one page.
	{method: http.MethodGet, path: "/v1/representations"},
	{method: http.MethodGet, path: "/v1/mandates", list: true},
	{method: http.MethodPost, path: "/v1/mandates", creates: true},
	{method: http.MethodGet, path: "/v1/mandates/{id}"},
	{method: http.MethodPost, path: "/v1/mandates/{id}/accept"},
	{method: http.MethodDelete, path: "/v1/mandates/{id}"},
}

// public are the operations that take no token.
var public = map[string]bool{"GET /v1/openapi.json": true, "GET /v1/docs": true}

// model parses the embedded document once per test.
func model(t *testing.T) *highv3.Document {
	t.Helper()
	doc, err := libopenapi.NewDocument(mobileapi.OpenAPI)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if info := doc.GetSpecInfo(); info.SpecFormat != datamodel.OAS31 || info.Version != "3.1.0" {
		t.Fatalf("spec format %q version %q, want %q 3.1.0", info.SpecFormat, info.Version, datamodel.OAS31)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("build v3 model: %v", err)
	}
	return &m.Model
}

// operations lists the document's operations by "METHOD /path".
func operations(t *testing.T, d *highv3.Document) map[string]*highv3.Operation {
	t.Helper()
	ops := map[string]*highv3.Operation{}
	for path, item := range d.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

func TestOpenAPI_Routes(t *testing.T) {
	ops := operations(t, model(t))
	want := map[string]bool{}
	for _, r := range routes {
		key := r.method + " " + r.path
		want[key] = true
		if ops[key] == nil {
			t.Errorf("%s: missing from the document", key)
		}
	}
	for key := range ops {
		if !want[key] {
			t.Errorf("%s: in the document but not in the test's table of issue 6's routes", key)
		}
	}
}

func TestOpenAPI_Operations(t *testing.T) {
	d := model(t)
	ops := operations(t, d)
	ids := map[string]string{}
	for _, r := range routes {
		key := r.method + " " + r.path
		op := ops[key]
		if op == nil {
			continue // reported by TestOpenAPI_Routes
		}
		t.Run(key, func(t *testing.T) {
			if op.OperationId == "" {
				t.Error("no operationId")
			} else if other, dup := ids[op.OperationId]; dup {
				t.Errorf("operationId %q also used by %s", op.OperationId, other)
			}
			ids[op.OperationId] = key
			checkProblems(t, op)
			checkSecurity(t, key, r.path, op)
			checkParameters(t, r, op)
		})
	}
}

// checkProblems: at least one 4xx, and every 4xx and 5xx answers a Problem
// as application/problem+json.
func checkProblems(t *testing.T, op *highv3.Operation) {
	t.Helper()
	n4xx := 0
	for code, resp := range op.Responses.Codes.FromOldest() {
		if code[0] != '4' && code[0] != '5' {
			continue
		}
		if code[0] == '4' {
			n4xx++
		}
		if resp.Content == nil || resp.Content.Len() != 1 {
			t.Errorf("%s: want exactly one content type, application/problem+json", code)
			continue
		}
		mt, ok := resp.Content.Get("application/problem+json")
		if !ok || mt.Schema == nil || mt.Schema.GetReference() != problemRef {
			t.Errorf("%s: content is not application/problem+json with schema %s", code, problemRef)
		}
	}
	if n4xx == 0 {
		t.Error("no 4xx response")
	}
}

// checkSecurity: public operations take no token; /v1 takes citizenDPoP,
// /agency/v1 agencyToken with scope agency.
func checkSecurity(t *testing.T, key, path string, op *highv3.Operation) {
	t.Helper()
	if public[key] {
		for _, req := range op.Security {
			if req.Requirements.Len() > 0 {
				t.Errorf("public operation has a security requirement")
			}
		}
		return
	}
	// The eID app's tokens are always key-bound: citizen routes take them
	// with a DPoP proof only (RFC 9449). An agency's token may be a Bearer
	// token, or bound to a key with a DPoP proof.
	schemes, scope := []string{"citizenDPoP"}, ""
	if strings.HasPrefix(path, "/agency/v1/") {
		schemes, scope = []string{"agencyToken", "agencyDPoP"}, "agency"
	}
	if len(op.Security) != len(schemes) {
		t.Fatalf("%d security requirements, want %v", len(op.Security), schemes)
	}
	for i, scheme := range schemes {
		req := op.Security[i]
		scopes, ok := req.Requirements.Get(scheme)
		if !ok || req.Requirements.Len() != 1 || req.ContainsEmptyRequirement {
			t.Fatalf("security requirement %d is not %s alone", i, scheme)
		}
		if scope != "" && (len(scopes) != 1 || scopes[0] != scope) {
			t.Errorf("%s scopes %v, want [%s]", scheme, scopes, scope)
		}
	}
}

// checkParameters: lists are cursor-paged, creations take Idempotency-Key,
// application writes If-Match, reads If-None-Match with a 304, and every
// operation Accept-Language.
func checkParameters(t *testing.T, r route, op *highv3.Operation) {
	t.Helper()
	has := map[string]bool{}
	for _, p := range op.Parameters {
		has[p.In+" "+p.Name] = true
	}
	for _, c := range []struct {
		param string
		want  bool
	}{
		{"query cursor", r.list},
		{"query limit", r.list},
		{"header Idempotency-Key", r.creates},
		{"header If-Match", r.ifMatch},
		{"header If-None-Match", r.method == http.MethodGet && !r.stream},
		{"header Accept-Language", true},
	} {
		if has[c.param] != c.want {
			t.Errorf("parameter %s: got %v, want %v", c.param, has[c.param], c.want)
		}
	}
	if _, ok := op.Responses.Codes.Get("304"); ok != (r.method == http.MethodGet && !r.stream) {
		t.Errorf("304 response: got %v, want %v", ok, r.method == http.MethodGet && !r.stream)
	}
	ok, hasNext := op.Responses.Codes.Get("200")
	if hasNext && ok.Content != nil {
		mt, _ := ok.Content.Get("application/json")
		hasNext = mt != nil && mt.Schema != nil && hasProperty(mt.Schema.Schema(), "next_cursor")
	}
	if hasNext != r.list {
		t.Errorf("next_cursor in the 200 body: got %v, want %v", hasNext, r.list)
	}
}

func hasProperty(s *base.Schema, name string) bool {
	if s == nil || s.Properties == nil {
		return false
	}
	_, ok := s.Properties.Get(name)
	return ok
}

// TestOpenAPI_SchemasDocumented: every property of every component schema has
// a description and an example, so that the rendered reference is complete.
// A property that is only a $ref is documented by the schema it names.
func TestOpenAPI_SchemasDocumented(t *testing.T) {
	d := model(t)
	for name, proxy := range d.Components.Schemas.FromOldest() {
		s := proxy.Schema()
		if s == nil {
			t.Errorf("%s: does not build: %v", name, proxy.GetBuildError())
			continue
		}
		if s.Description == "" {
			t.Errorf("%s: no description", name)
		}
		if s.Properties == nil {
			continue
		}
		for prop, pp := range s.Properties.FromOldest() {
			if pp.IsReference() {
				continue
			}
			ps := pp.Schema()
			if ps == nil || ps.Description == "" || (len(ps.Examples) == 0 && ps.Example == nil) {
				t.Errorf("%s.%s: needs a description and an example", name, prop)
			}
		}
	}
	for _, name := range []string{"Problem", "Service", "Application", "InboxMessage", "Home", "Me"} {
		if _, ok := d.Components.Schemas.Get(name); !ok {
			t.Errorf("schema %s missing", name)
		}
	}
}
