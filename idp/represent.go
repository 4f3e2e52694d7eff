package idp

import (
	"context"
	"errors"
	"fmt"

	"github.com/onedoor/onedoor/represent"
)

// RepresentRegistry is the citizen store as representation reads it
// (represent.Registry): citizens by subject or personal id, and their
// guardianships. Errors come out as represent's sentinels.
type RepresentRegistry struct {
	Citizens CitizenStore
}

var _ represent.Registry = RepresentRegistry{}

func person(c *Citizen) *represent.Person {
	return &represent.Person{ID: c.ID, PersonalID: c.PersonalID, Name: c.Name(), Birthdate: c.Birthdate}
}

// Person implements represent.Registry.
func (r RepresentRegistry) Person(ctx context.Context, id string) (*represent.Person, error) {
	c, err := r.Citizens.GetCitizen(ctx, id)
	if err != nil {
		return nil, representErr("citizen", err)
	}
	return person(c), nil
}

// PersonByPersonalID implements represent.Registry.
func (r RepresentRegistry) PersonByPersonalID(ctx context.Context, personalID string) (*represent.Person, error) {
	c, err := r.Citizens.GetCitizenByPersonalID(ctx, personalID)
	if err != nil {
		return nil, representErr("citizen", err)
	}
	return person(c), nil
}

// Guardianships implements represent.Registry.
func (r RepresentRegistry) Guardianships(ctx context.Context, citizenID string) ([]represent.Guardianship, error) {
	gs, err := r.Citizens.Guardianships(ctx, citizenID)
	if err != nil {
		return nil, representErr("guardianships", err)
	}
	return gs, nil
}

// representErr keeps the store's error and adds represent's sentinel, so
// both areas' callers recognise it.
func representErr(op string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%s: %w", op, errors.Join(err, represent.ErrNotFound))
	case errors.Is(err, ErrUnavailable):
		return fmt.Errorf("%s: %w", op, errors.Join(err, represent.ErrUnavailable))
	case errors.Is(err, ErrInvalid):
		return fmt.Errorf("%s: %w", op, errors.Join(err, represent.ErrInvalid))
	}
	return fmt.Errorf("%s: %w", op, err)
}
