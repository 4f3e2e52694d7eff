// Package webhook delivers agency events to the agencies' webhook endpoints:
// signed, retried with backoff, at least once.
//
// # Request
//
// Each delivery is an HTTP POST of the event as JSON (WebhookEvent in
// openapi.json: id, type, occurred_at, agency_code, then application_id,
// service_id, service_code and href for an application event, or consent
// {id, client_id, purpose, receipt} for consent.withdrawn, whose receipt is
// the withdrawal receipt JWS the identity provider signed, verifiable
// against its JWKS like the grant receipt) with these headers:
//
//	Content-Type: application/json
//	User-Agent: OneDoor-Webhook/1
//	OneDoor-Event-Id: <the event's id, the same in every attempt>
//	OneDoor-Signature: <JWS, below>
//
// Any 2xx response acknowledges the event. Anything else, a redirect
// included (redirects are not followed), or no response within 10 seconds
// is retried: up to 12 attempts in all, the n-th retry after a random delay
// of up to 10 s × 2^(n-1) capped at one hour ("full jitter"), or later when
// the response carries Retry-After (seconds or an HTTP date, at most an
// hour). A receiver may therefore see an event more than once, and should
// de-duplicate by its id.
//
// # Signature
//
// OneDoor-Signature is a JSON Web Signature (RFC 7515) in compact
// serialization with a detached payload (RFC 7515 Appendix F):
// BASE64URL(protected header) + ".." + BASE64URL(signature). The payload it
// signs is the request body, byte for byte, base64url-encoded as usual for
// the signing input (no "b64" extension). The signature is ES256 (ECDSA
// P-256 with SHA-256) by OneDoor's current signing key, the key the identity
// provider signs tokens with, and the protected header is:
//
//	{
//	  "alg": "ES256",
//	  "kid": "<id of the signing key>",
//	  "typ": "onedoor-webhook+jws",
//	  "cty": "application/json",
//	  "iat": <signing time, Unix seconds>,
//	  "url": "<the endpoint URL as registered>",
//	  "onedoor_webhook": "<the webhook's id, whk_...>"
//	}
//
// To verify, a receiver:
//
//  1. fetches OneDoor's JSON Web Key Set from the identity provider's
//     jwks_uri (/jwks), caching it and fetching again when a kid is unknown
//     (keys rotate; a new key is published before it signs);
//  2. checks the signature over the exact body bytes with the key named by
//     kid, accepting ES256 alone;
//  3. checks typ, that iat is within the last 5 minutes (and not more than
//     a minute ahead), and that onedoor_webhook (or url) is its own
//     webhook's, so a delivery cannot be replayed later or to another
//     endpoint.
//
// Verify does all of this for Go receivers (and the tests).
//
// # Network
//
// Deliveries go directly to the endpoint, never through a proxy, and the
// worker's dialer refuses addresses that are not public (loopback, private,
// link-local, CGNAT, documentation and other special ranges), checked on
// the resolved address of every connection so DNS cannot steer a delivery
// into the platform's own network. Worker.AllowPrivate lifts that for tests
// and the demo, whose endpoints are on loopback; production must leave it
// off.
package webhook

import (
	"time"

	"github.com/onedoor/onedoor/mobileapi"
)

// HTTP headers of a delivery.
const (
	HeaderSignature = "OneDoor-Signature"
	HeaderEventID   = "OneDoor-Event-Id"
	UserAgent       = "OneDoor-Webhook/1"
)

// Protected header parameters of the signature beside alg and kid.
const (
	SignatureType  = "onedoor-webhook+jws" // typ
	ContentType    = "application/json"    // cty
	ParamIssuedAt  = "iat"
	ParamURL       = "url"
	ParamWebhookID = "onedoor_webhook"
)

// Event is the body of a delivery, WebhookEvent in openapi.json.
type Event struct {
	ID         string              `json:"id"`
	Type       mobileapi.EventType `json:"type"`
	OccurredAt time.Time           `json:"occurred_at"`
	AgencyCode string              `json:"agency_code"`
	// The application fields are absent from a consent.withdrawn event,
	// which carries Consent instead.
	ApplicationID string                  `json:"application_id,omitempty"`
	ServiceID     string                  `json:"service_id,omitempty"`
	ServiceCode   string                  `json:"service_code,omitempty"`
	Href          string                  `json:"href,omitempty"`
	Consent       *mobileapi.ConsentEvent `json:"consent,omitempty"`
}

// NewEvent returns the JSON form of e.
func NewEvent(e mobileapi.Event) Event {
	if e.Consent != nil {
		c := *e.Consent
		return Event{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt.UTC(), AgencyCode: e.AgencyCode, Consent: &c}
	}
	return Event{
		ID:            e.ID,
		Type:          e.Type,
		OccurredAt:    e.OccurredAt.UTC(),
		AgencyCode:    e.AgencyCode,
		ApplicationID: e.ApplicationID,
		ServiceID:     e.ServiceID,
		ServiceCode:   e.ServiceCode,
		Href:          "/agency/v1/applications/" + e.ApplicationID,
	}
}
