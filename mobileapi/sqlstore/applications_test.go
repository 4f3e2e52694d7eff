package sqlstore_test

import (
	"testing"
	"time"

	"github.com/onedoor/onedoor/mobileapi/mobileapitest"
	"github.com/onedoor/onedoor/mobileapi/sqlstore"
)

func TestApplications(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			mobileapitest.RunApplications(t, func(t *testing.T, now func() time.Time) mobileapitest.ApplicationStores {
				return open(t, b.open, sqlstore.WithNow(now))
			})
		})
	}
}
