package web

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/oidc"
)

// discoveryDoc is the OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414).
type discoveryDoc struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	PAREndpoint                       string   `json:"pushed_authorization_request_endpoint"`
	RequirePAR                        bool     `json:"require_pushed_authorization_requests"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgs                []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethods          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethods  []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthAlgs     []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	RevocationEndpointAuthAlgs        []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethods              []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	ACRValuesSupported                []string `json:"acr_values_supported"`
	UILocalesSupported                []string `json:"ui_locales_supported"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	// RFC 9396: the one authorization details type /authorize and /par
	// accept (idp.AuthorizationDetailsType).
	AuthorizationDetailsTypes []string `json:"authorization_details_types_supported"`
	// OIDC Back-Channel Logout 1.0: logout tokens always carry sid.
	BackchannelLogoutSupported        bool `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported bool `json:"backchannel_logout_session_supported"`
	// RFC 9449 section 5.1: the algorithms of the DPoP proofs accepted.
	DPoPSigningAlgs []string `json:"dpop_signing_alg_values_supported"`
	// The security profiles a client may be held to (idp.ProfileFAPI2),
	// OneDoor's own member: the profile is per client, so
	// require_pushed_authorization_requests stays false here and is true
	// in each fapi2 client's registration.
	ProfilesSupported []string `json:"onedoor_profiles_supported"`
	// RFC 7591: where agencies register clients (with an operator's
	// initial access token); absent when self-registration is off.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// OpenID CIBA Core 1.0 section 4: poll and ping, no user code.
	BackchannelAuthenticationEndpoint string   `json:"backchannel_authentication_endpoint"`
	BackchannelTokenDeliveryModes     []string `json:"backchannel_token_delivery_modes_supported"`
	BackchannelUserCodeSupported      bool     `json:"backchannel_user_code_parameter_supported"`
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	iss := s.cfg.Issuer
	// Exactly what each endpoint accepts: all three share the token
	// endpoint's client authentication; introspection refuses public
	// clients (auth none).
	authMethods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	var assertionAlgs []string
	for _, a := range oidc.AssertionAlgs {
		assertionAlgs = append(assertionAlgs, string(a))
	}
	d := discoveryDoc{
		Issuer:                            iss,
		AuthorizationEndpoint:             iss + PathAuthorize,
		TokenEndpoint:                     iss + PathToken,
		UserinfoEndpoint:                  iss + PathUserinfo,
		JWKSURI:                           iss + PathJWKS,
		PAREndpoint:                       iss + PathPAR,
		IntrospectionEndpoint:             iss + PathIntrospect,
		RevocationEndpoint:                iss + PathRevoke,
		EndSessionEndpoint:                iss + PathLogout,
		ScopesSupported:                   []string{ScopeOpenID, ScopeProfile, ScopeAddress, ScopePhone, ScopeEID, ScopeOffline},
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               idp.GrantTypes,
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgs:                []string{"ES256", "RS256"},
		TokenEndpointAuthMethods:          append(slices.Clip(authMethods), "none"),
		TokenEndpointAuthSigningAlgs:      assertionAlgs,
		IntrospectionEndpointAuthMethods:  authMethods,
		IntrospectionEndpointAuthAlgs:     assertionAlgs,
		RevocationEndpointAuthMethods:     append(slices.Clip(authMethods), "none"),
		RevocationEndpointAuthAlgs:        assertionAlgs,
		CodeChallengeMethods:              []string{"S256"},
		ClaimsSupported:                   append([]string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "phone_number_verified"}, idp.KnownClaims...),
		ClaimsParameterSupported:          true,
		ACRValuesSupported:                []string{string(idp.LevelLow), string(idp.LevelSubstantial), string(idp.LevelHigh)},
		UILocalesSupported:                []string{"vi", "en"},
		AuthorizationResponseIssParameter: true,
		PromptValuesSupported:             []string{"none", "login", "consent", "select_account"},
		AuthorizationDetailsTypes:         []string{idp.AuthorizationDetailsType},
		DPoPSigningAlgs:                   dpop.Algs,
		ProfilesSupported:                 []string{idp.ProfileFAPI2},
		BackchannelAuthenticationEndpoint: iss + PathBCAuthorize,
		BackchannelTokenDeliveryModes:     []string{idp.CIBAModePoll, idp.CIBAModePing},
	}
	if s.cfg.Represent != nil {
		d.ScopesSupported = append(d.ScopesSupported, ScopeRepresentation)
		d.ClaimsSupported = append(d.ClaimsSupported, ClaimAct, ClaimRepresentation, ClaimOrganisation)
	}
	if s.cfg.Sessions != nil {
		d.BackchannelLogoutSupported, d.BackchannelLogoutSessionSupported = true, true
	}
	if s.cfg.Registration != nil {
		d.RegistrationEndpoint = iss + PathRegister
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSONCached(w, d)
}

// jwks publishes the signing keys: next, active and retired keys until every
// token they signed has expired.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	doc, err := s.keys.JWKS(r.Context())
	if err != nil {
		s.unavailable(w, "key store", err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.JWKSMaxAge.Seconds())))
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(doc)
}
