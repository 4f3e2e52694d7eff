package fiberapi

import (
	"errors"
	"fmt"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// quotaReached reports whether a store refused a write for a quota (the
// handlers' own checks are a fast path; the stores' are the guarantee).
func quotaReached(err error) bool {
	return errors.Is(err, mobileapi.ErrQuota) && !errors.Is(err, idp.ErrUnavailable)
}

func attachmentQuota() error {
	return unprocessable([]fieldError{{Pointer: "/file", Message: fmt.Sprintf("An application holds at most %d files.", mobileapi.MaxAttachments)}})
}

func webhookQuota() error {
	return unprocessable([]fieldError{{Pointer: "/url", Message: fmt.Sprintf("An agency has at most %d webhooks; delete one first.", mobileapi.MaxWebhooks)}})
}

func serviceQuota() error {
	return unprocessable([]fieldError{{Pointer: "", Message: fmt.Sprintf("An agency publishes at most %d services.", mobileapi.MaxServicesPerAgency)}})
}
