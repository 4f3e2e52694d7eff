package web

import (
	"errors"
	"net/url"
	"testing"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
)

func TestRequiredLevel(t *testing.T) {
	low, sub, high := string(idp.LevelLow), string(idp.LevelSubstantial), string(idp.LevelHigh)
	tests := []struct {
		name, acrValues, claims string
		want                    idp.Level
		unmet                   bool
	}{
		{name: "nothing asked", want: idp.LevelLow},
		{name: "acr_values: the highest named", acrValues: sub + " " + high, want: idp.LevelHigh},
		{name: "acr_values: unknown names ignored", acrValues: "urn:x substantial", want: idp.LevelSubstantial},
		{name: "essential value", claims: `{"id_token":{"acr":{"essential":true,"value":"` + high + `"}}}`, want: idp.LevelHigh},
		{name: "essential values: the least listed", claims: `{"id_token":{"acr":{"essential":true,"values":["` + high + `","` + sub + `"]}}}`, want: idp.LevelSubstantial},
		{name: "essential below acr_values keeps acr_values", acrValues: high, claims: `{"id_token":{"acr":{"essential":true,"values":["` + low + `"]}}}`, want: idp.LevelHigh},
		{name: "voluntary acr is a preference", claims: `{"id_token":{"acr":{"values":["` + high + `"]}}}`, want: idp.LevelLow},
		{name: "essential without values", claims: `{"id_token":{"acr":{"essential":true}}}`, want: idp.LevelLow},
		{name: "essential unknown only", claims: `{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:4"]}}}`, unmet: true},
		{name: "essential unknown and known", claims: `{"id_token":{"acr":{"essential":true,"values":["urn:x","` + sub + `"]}}}`, want: idp.LevelSubstantial},
		{name: "acr under userinfo is not the login's", claims: `{"userinfo":{"acr":{"essential":true,"value":"` + high + `"}}}`, want: idp.LevelLow},
		{name: "malformed spec", claims: `{"id_token":{"acr":{"essential":"yes","values":"high"}}}`, want: idp.LevelLow},
		{name: "malformed claims", claims: `[`, want: idp.LevelLow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requiredLevel(url.Values{"acr_values": {tt.acrValues}, "claims": {tt.claims}})
			if tt.unmet {
				var re *fosite.RFC6749Error
				if !errors.As(err, &re) || re.ErrorField != "unmet_authentication_requirements" {
					t.Fatalf("err = %v, want unmet_authentication_requirements", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("requiredLevel = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
