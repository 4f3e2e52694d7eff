package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// Prompter sends a targeted login's approval request to the citizen's
// enrolled devices (cmd/onedoor: a login-approval push, generic text). It
// is told only the citizen and the request; the app fetches the rest over
// the authenticated eID API.
type Prompter interface {
	PromptLogin(ctx context.Context, citizenID string, lr *eid.LoginRequest) error
}

// promptWindow is the window of Limits.PromptsPerCitizen.
const promptWindow = 10 * time.Minute

// promptTimeout bounds sending a prompt, which runs after the page is
// answered so that its time tells nothing.
const promptTimeout = 10 * time.Second

// loginTarget is the citizen a login_hint named, with the prompt counted
// for them.
type loginTarget struct {
	citizenID string // or eid.Unmatched
	prompt    *eid.Prompt
}

// hintTarget reads login_hint (a personal id) or id_token_hint (an ID
// token this IdP issued to this client) and, within the citizen's prompt
// limit, returns whom to send the login to. The answer and its cost are
// the same whether or not a citizen has the personal id: an unknown one
// gets a target no device matches. Anything else (no hint, a bad hint,
// over the limit, a store error) is nil: the QR login as usual.
func (s *Server) hintTarget(ctx context.Context, ar fosite.AuthorizeRequester) *loginTarget {
	form := ar.GetRequestForm()
	var citizenID, key string
	switch hint, tokenHint := form.Get("login_hint"), form.Get("id_token_hint"); {
	case idp.ValidPersonalID(hint):
		key = s.subjectKey("personal-id", hint)
		c, err := s.store.GetCitizenByPersonalID(ctx, hint)
		switch {
		case err == nil:
			citizenID = c.ID
		case errors.Is(err, idp.ErrNotFound):
			citizenID = eid.Unmatched
		default:
			s.log.Warn("login_hint: citizen lookup", "err", err.Error())
			return nil
		}
	case tokenHint != "":
		sub, aud, _, err := s.provider.VerifyIDTokenHint(ctx, tokenHint)
		if err != nil || !slices.Contains(aud, ar.GetClient().GetID()) {
			return nil
		}
		c, err := s.store.GetCitizen(ctx, sub)
		switch {
		case err == nil:
			citizenID, key = c.ID, s.subjectKey("personal-id", c.PersonalID)
		case errors.Is(err, idp.ErrNotFound):
			citizenID, key = eid.Unmatched, s.subjectKey("citizen", sub)
		default:
			s.log.Warn("id_token_hint: citizen lookup", "err", err.Error())
			return nil
		}
	default:
		return nil
	}
	p, ok, err := s.eid.ReservePrompt(ctx, key, s.cfg.Limits.PromptsPerCitizen, promptWindow)
	if err != nil {
		s.log.Warn("login_hint: count prompts", "err", err.Error())
		return nil
	}
	if !ok {
		s.observe().PromptSuppressed()
		return nil // push fatigue: the QR code, silently
	}
	return &loginTarget{citizenID: citizenID, prompt: p}
}

// prompt lists lr for the target's devices and sends them the approval
// request, after the page is answered.
func (s *Server) prompt(ctx context.Context, lr *eid.LoginRequest, t *loginTarget) {
	// In the background, and the same steps for an unknown personal id
	// (whose index no device ever reads): the page's timing tells nothing.
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), promptTimeout)
		defer cancel()
		if err := s.eid.Index(ctx, lr, t.prompt); err != nil {
			s.log.Warn("targeted login: index", "err", err.Error())
			return
		}
		if t.citizenID == eid.Unmatched || s.cfg.Prompter == nil {
			return
		}
		if err := s.cfg.Prompter.PromptLogin(ctx, t.citizenID, lr); err != nil {
			s.log.Warn("targeted login: prompt devices", "err", err.Error())
		}
	}()
}

// appPendingLogins lists the login requests waiting for this device's
// citizen (GET /eid/v1/login-requests?pending), oldest first.
func (s *Server) appPendingLogins(w http.ResponseWriter, r *http.Request) {
	dev, ok := s.device(w, r)
	if !ok {
		return
	}
	if q := r.URL.Query(); !q.Has("pending") || len(q) != 1 {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "Only ?pending is supported.")
		return
	}
	lrs, err := s.eid.PendingFor(r.Context(), dev.CitizenID, s.cfg.Limits.PromptsPerCitizen, promptWindow)
	if err != nil {
		s.loginRequestError(w, err)
		return
	}
	out := make([]eid.AppView, 0, len(lrs))
	for _, lr := range lrs {
		v, err := s.appView(r.Context(), dev, lr)
		if errors.Is(err, idp.ErrNotFound) {
			continue
		}
		if err != nil {
			s.unavailable(w, "store", err)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"login_requests": out})
}
