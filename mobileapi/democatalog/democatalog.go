// Package democatalog is the demo catalog a fresh deployment can be seeded
// with: a tree of agencies (ministries, six provinces with their
// departments, police, social security and a few wards) and 27 services
// modelled on the national public service portal's online services, each
// with its form as a JSON Schema 2020-12 document. The agencies are real
// institutions; the procedure codes, fees, processing times, documents and
// forms are illustrative demo data, not the portal's.
//
// Codes. Ministries go by their usual Vietnamese abbreviation (BTP Bộ Tư
// pháp, BCA Bộ Công an, BXD Bộ Xây dựng, BTC Bộ Tài chính, BNNMT Bộ Nông
// nghiệp và Môi trường, BNV Bộ Nội vụ; BHXH Bảo hiểm xã hội Việt Nam, under
// BTC). A province's people's committee is UBND-<province>, a body serving
// one province <province>-<body> (HN-STP Sở Tư pháp, HN-SXD Sở Xây dựng,
// HN-SNNMT Sở Nông nghiệp và Môi trường, HN-SNV Sở Nội vụ under UBND-HN;
// HN-CA the city police under BCA; HN-BHXH under BHXH), a ward
// <province>-<ward name without marks or spaces> (HN-HOANKIEM) under its
// province's committee.
//
// Province codes (Agency.ProvinceCode) are short Latin abbreviations of
// the province's name: HN Hà Nội, HCM Thành phố Hồ Chí Minh, DN Đà Nẵng,
// HP Hải Phòng, CT Cần Thơ, HUE Huế.
//
// A national service is owned by its ministry and handled, per province,
// by the bodies that do the work there: wards for civil status, business
// households and house building permits, the provincial police for
// residence, identity cards, judicial records and driving licences (both
// moved to the Ministry of Public Security in 2025), the provincial
// departments and social security for the rest.
//
// Form fields the citizen registry holds carry "x-prefill":
// "citizen.<field>", field one of personal_id, full_name, family_name,
// given_name, birthdate, gender, address, phone_number.
package democatalog

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"

	"github.com/onedoor/onedoor/mobileapi"
)

//go:embed agencies.json services.json
var files embed.FS

type agencyFile struct {
	Note     string       `json:"note"`
	Agencies []agencyJSON `json:"agencies"`
}

type agencyJSON struct {
	Code         string         `json:"code"`
	Name         mobileapi.Text `json:"name"`
	ParentCode   string         `json:"parent_code"`
	ProvinceCode string         `json:"province_code"`
}

type serviceFile struct {
	Note     string        `json:"note"`
	Services []serviceJSON `json:"services"`
}

type serviceJSON struct {
	Code              string                       `json:"code"`
	AgencyCode        string                       `json:"agency_code"`
	Category          string                       `json:"category"`
	Name              mobileapi.Text               `json:"name"`
	Description       mobileapi.Text               `json:"description"`
	Fee               mobileapi.Fee                `json:"fee"`
	ProcessingDays    int                          `json:"processing_days"`
	RequiredDocuments []mobileapi.RequiredDocument `json:"required_documents"`
	HandlingAgencies  []string                     `json:"handling_agencies"`
	Schema            json.RawMessage              `json:"schema"`
	// Representation is "refused" for a service one must apply for in
	// person (an identity card); empty allows it.
	Representation string `json:"representation"`
}

// Load returns the demo agencies, parents before their children so that
// they can be created in order, and the demo services. IDs, versions and
// times are left for the store to assign. Every call returns new values.
func Load() (agencies []*mobileapi.Agency, services []*mobileapi.Service, err error) {
	var af agencyFile
	if err := decode("agencies.json", &af); err != nil {
		return nil, nil, err
	}
	var sf serviceFile
	if err := decode("services.json", &sf); err != nil {
		return nil, nil, err
	}
	known := make(map[string]bool, len(af.Agencies))
	for _, a := range af.Agencies {
		if a.Code == "" || known[a.Code] {
			return nil, nil, fmt.Errorf("democatalog: agency %q is empty or repeated", a.Code)
		}
		if a.ParentCode != "" && !known[a.ParentCode] {
			return nil, nil, fmt.Errorf("democatalog: agency %s comes before its parent %s", a.Code, a.ParentCode)
		}
		known[a.Code] = true
		agencies = append(agencies, &mobileapi.Agency{
			Code: a.Code, Name: a.Name, ParentCode: a.ParentCode, ProvinceCode: a.ProvinceCode,
		})
	}
	codes := make(map[string]bool, len(sf.Services))
	for _, s := range sf.Services {
		if s.Code == "" || codes[s.Code] {
			return nil, nil, fmt.Errorf("democatalog: service %q is empty or repeated", s.Code)
		}
		codes[s.Code] = true
		for _, a := range append([]string{s.AgencyCode}, s.HandlingAgencies...) {
			if !known[a] {
				return nil, nil, fmt.Errorf("democatalog: service %s names an unknown agency %q", s.Code, a)
			}
		}
		var schema bytes.Buffer
		if err := json.Compact(&schema, s.Schema); err != nil {
			return nil, nil, fmt.Errorf("democatalog: schema of service %s: %w", s.Code, err)
		}
		services = append(services, &mobileapi.Service{
			Code:              s.Code,
			Name:              s.Name,
			Description:       s.Description,
			AgencyCode:        s.AgencyCode,
			Category:          s.Category,
			Fee:               s.Fee,
			ProcessingDays:    s.ProcessingDays,
			RequiredDocuments: s.RequiredDocuments,
			HandlingAgencies:  s.HandlingAgencies,
			Schema:            schema.Bytes(),
			Representation:    s.Representation,
		})
	}
	return agencies, services, nil
}

// decode reads an embedded file strictly: a misspelt member is an error,
// not a silently missing value.
func decode(name string, v any) error {
	b, err := files.ReadFile(name)
	if err != nil {
		return fmt.Errorf("democatalog: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("democatalog: %s: %w", name, err)
	}
	return nil
}
