package idp

import (
	"context"
	"errors"
	"fmt"

	"github.com/onedoor/onedoor/consent"
)

// RegisterName is the provenance of every item the citizen store holds: the
// demo stands in for the national population database.
const RegisterName = "Cơ sở dữ liệu quốc gia về dân cư (demo)"

// Registry reads items about a citizen straight from the citizen store,
// the one copy of the data: the data broker and form pre-fill go through
// it (consent.Registry) and keep nothing. Items are the claim names of
// KnownClaims.
type Registry struct {
	Citizens interface {
		GetCitizen(ctx context.Context, id string) (*Citizen, error)
	}
}

// RegistryItems reads each item from a citizen record.
var RegistryItems = map[string]func(*Citizen) string{
	"name":          (*Citizen).Name,
	"family_name":   func(c *Citizen) string { return c.FamilyName },
	"given_name":    func(c *Citizen) string { return c.GivenName },
	"birthdate":     func(c *Citizen) string { return c.Birthdate },
	"gender":        func(c *Citizen) string { return c.Gender },
	"address":       func(c *Citizen) string { return c.Address },
	"phone_number":  func(c *Citizen) string { return c.PhoneNumber },
	ClaimPersonalID: func(c *Citizen) string { return c.PersonalID },
}

// Read implements consent.Registry. An empty field is not held and is left
// out; the record's creation is its last update (the demo register is
// imported, never edited in place).
func (r Registry) Read(ctx context.Context, citizenID string, items []string) (map[string]consent.Value, error) {
	c, err := r.Citizens.GetCitizen(ctx, citizenID)
	switch {
	case errors.Is(err, ErrUnavailable):
		return nil, errors.Join(err, consent.ErrUnavailable)
	case errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("registry: citizen: %w", consent.ErrNotFound)
	case err != nil:
		return nil, err
	}
	out := make(map[string]consent.Value, len(items))
	for _, it := range items {
		get, ok := RegistryItems[it]
		if !ok {
			continue
		}
		if v := get(c); v != "" {
			out[it] = consent.Value{Value: v, Source: RegisterName, UpdatedAt: c.CreatedAt.UTC()}
		}
	}
	return out, nil
}
