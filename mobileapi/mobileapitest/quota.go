package mobileapitest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// race runs n writers at once and counts those that succeeded; every
// other must have failed with ErrQuota.
func race(t *testing.T, n int, write func(i int) error) (won int) {
	t.Helper()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := write(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case !errors.Is(err, mobileapi.ErrQuota):
				t.Errorf("writer %d: %v, want success or ErrQuota", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	return won
}

// appsQuotaAttachments: concurrent uploads to one application never store
// more than MaxAttachments files, however they interleave.
func appsQuotaAttachments(e *appsEnv) {
	a := e.create(appsCitizenA, appsAgencyX)
	const before = mobileapi.MaxAttachments - 3
	for i := range before {
		_, err := e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, e.file(fmt.Sprintf("f%d.pdf", i)))
		e.must(err, "attach")
	}
	if won := race(e.t, 12, func(i int) error {
		_, err := e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, e.file(fmt.Sprintf("racer%d.pdf", i)))
		return err
	}); won != 3 {
		e.t.Errorf("%d concurrent uploads succeeded with room for 3", won)
	}
	if got := len(e.get(appsCitizen(appsCitizenA), a.ID).Attachments); got != mobileapi.MaxAttachments {
		e.t.Errorf("the application holds %d files, want %d", got, mobileapi.MaxAttachments)
	}
	// Another application has its own quota.
	b := e.create(appsCitizenA, appsAgencyX)
	_, err := e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), b.ID, 0, e.file("other.pdf"))
	e.must(err, "attach to another application")
}

// appsQuotaWebhooks: concurrent registrations never give an agency more
// than MaxWebhooks webhooks; another agency's are not counted.
func appsQuotaWebhooks(e *appsEnv) {
	const before = mobileapi.MaxWebhooks - 2
	for i := range before {
		e.must(e.s.CreateWebhook(e.ctx, &mobileapi.Webhook{AgencyCode: appsAgencyX, URL: fmt.Sprintf("https://hooks.example.test/x%d", i)}), "create webhook")
	}
	e.must(e.s.CreateWebhook(e.ctx, &mobileapi.Webhook{AgencyCode: appsAgencyY, URL: "https://hooks.example.test/y"}), "another agency's webhook")
	if won := race(e.t, 10, func(i int) error {
		return e.s.CreateWebhook(e.ctx, &mobileapi.Webhook{AgencyCode: appsAgencyX, URL: fmt.Sprintf("https://hooks.example.test/racer%d", i)})
	}); won != 2 {
		e.t.Errorf("%d concurrent registrations succeeded with room for 2", won)
	}
	ws, _, err := e.s.ListWebhooks(e.ctx, appsAgencyX, mobileapi.Page{Limit: mobileapi.MaxLimit})
	e.must(err, "list webhooks")
	if len(ws) != mobileapi.MaxWebhooks {
		e.t.Errorf("the agency has %d webhooks, want %d", len(ws), mobileapi.MaxWebhooks)
	}
}

// catQuotaServices: concurrent creations never give an agency more than
// MaxServicesPerAgency services; a new version of one it owns is no new
// service.
func catQuotaServices(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	const room = 4
	for i := range mobileapi.MaxServicesPerAgency - room {
		if _, err := s.PutService(t.Context(), catService(fmt.Sprintf("Q.%04d", i)), 0); err != nil {
			t.Fatalf("service %d: %v", i, err)
		}
	}
	if won := race(t, 10, func(i int) error {
		_, err := s.PutService(t.Context(), catService(fmt.Sprintf("RACER.%d", i)), 0)
		return err
	}); won != room {
		t.Errorf("%d concurrent creations succeeded with room for %d", won, room)
	}
	owned := 0
	all, err := s.ListServices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range all {
		if svc.AgencyCode == "BTP" {
			owned++
		}
	}
	if owned != mobileapi.MaxServicesPerAgency {
		t.Errorf("the agency owns %d services, want %d", owned, mobileapi.MaxServicesPerAgency)
	}
	upd := catService("Q.0000")
	upd.Description.EN = "A new version at the quota."
	if created, err := s.PutService(t.Context(), upd, 0); err != nil || created {
		t.Errorf("a new version at the quota: created %v, %v", created, err)
	}
}

// appsGetDocumentAndBlobReferences: an agency re-reads its own documents,
// published or not, and nobody else's; every file record names its blob
// until the record goes.
func appsGetDocumentAndBlobReferences(e *appsEnv) {
	t := e.t
	a := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	doc := e.file("result.pdf")
	e.must(e.s.AddDocument(e.ctx, appsAgencyX, a.ID, doc), "add document")
	got, err := e.s.GetDocument(e.ctx, appsAgencyX, a.ID, doc.ID)
	e.must(err, "get unpublished document")
	if !reflect.DeepEqual(got, doc) {
		t.Errorf("GetDocument = %+v, want %+v", got, doc)
	}
	_, err = e.s.GetDocument(e.ctx, appsAgencyY, a.ID, doc.ID)
	appsWantErr(t, err, idp.ErrNotFound, "another agency's document")
	other := e.reach(appsCitizenB, appsAgencyX, mobileapi.StatusSubmitted)
	_, err = e.s.GetDocument(e.ctx, appsAgencyX, other.ID, doc.ID)
	appsWantErr(t, err, idp.ErrNotFound, "the document under another application")

	draft := e.create(appsCitizenA, appsAgencyX)
	att := e.file("attachment.pdf")
	_, err = e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), draft.ID, 0, att)
	e.must(err, "attach")
	_, err = e.s.GetDocument(e.ctx, appsAgencyX, draft.ID, att.ID)
	appsWantErr(t, err, idp.ErrNotFound, "an attachment as a document")

	refs, ok := e.s.(mobileapi.BlobReferences)
	if !ok {
		t.Skip("the store does not implement mobileapi.BlobReferences")
	}
	used, err := refs.ReferencedBlobs(e.ctx, []string{doc.BlobKey, att.BlobKey, "applications/x/attachments/none"})
	e.must(err, "referenced blobs")
	if !reflect.DeepEqual(used, map[string]bool{doc.BlobKey: true, att.BlobKey: true}) {
		t.Errorf("ReferencedBlobs = %v, want the document's and the attachment's", used)
	}
	_, err = e.s.DeleteDraft(e.ctx, appsCitizen(appsCitizenA), draft.ID, 0)
	e.must(err, "delete draft")
	used, err = refs.ReferencedBlobs(e.ctx, []string{doc.BlobKey, att.BlobKey})
	e.must(err, "referenced blobs")
	if !reflect.DeepEqual(used, map[string]bool{doc.BlobKey: true}) {
		t.Errorf("ReferencedBlobs after the draft's deletion = %v, want the document's alone", used)
	}
}
