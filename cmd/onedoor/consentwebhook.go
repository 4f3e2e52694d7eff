package main

import (
	"context"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
)

// consentWithdrawn runs inside the consent store's withdrawal transaction:
// it queues a consent.withdrawn delivery, carrying the signed withdrawal
// receipt, for each webhook of the recipient's agency subscribed to it. A
// record whose client is bound to no agency notifies nobody.
func (m *Main) consentWithdrawn(ctx context.Context, q sqldb.Querier, rec *consent.Record, rc *consent.Receipt) error {
	if rec.Agency == "" {
		return nil
	}
	_, err := m.APIStore.EnqueueConsentWithdrawn(ctx, q, rec.Agency, mobileapi.ConsentEvent{
		ID: rec.ID, ClientID: rec.ClientID, Purpose: rec.Purpose.Code, Receipt: rc.JWS,
	}, *rec.WithdrawnAt)
	return err
}

// wakeWebhooks wakes the webhook worker, if it runs, after a withdrawal
// committed.
func (m *Main) wakeWebhooks() {
	if w := m.webhookWorker.Load(); w != nil {
		w.Notify()
	}
}
