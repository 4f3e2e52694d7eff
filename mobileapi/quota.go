package mobileapi

import "errors"

// ErrQuota means a write would pass one of the quotas below. Stores check
// them inside the write's transaction, with the parent (the application,
// the agency) locked, so concurrent writers cannot pass them together.
var ErrQuota = errors.New("quota reached")

// Quotas on what one party may create: each bounds work every replica does
// for it (files stored and listed, deliveries fanned out per event, services
// held in every replica's search index).
const (
	MaxAttachments       = 20   // files one application holds
	MaxWebhooks          = 10   // webhooks of one agency
	MaxServicesPerAgency = 1000 // services one agency owns
)
