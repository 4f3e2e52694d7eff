package eidapp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PushFile keeps, in the app's home (mode 0600), the installation's push
// token and the position of the last live event it received.
const PushFile = "push.json"

// pushState is PushFile.
type pushState struct {
	Token       string  `json:"token"`
	LastEventID eventID `json:"last_event_id,omitempty"`
}

// eventID is the live stream's opaque id. Homes written before the API
// sealed its ids hold a number; it is read as its decimal form, which the
// API still accepts once.
type eventID string

func (e *eventID) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*e = eventID(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("last_event_id: %w", err)
	}
	*e = eventID(s)
	return nil
}

// PushToken returns the installation's push registration token, made at
// first use and kept in PushFile. A phone gets its token from FCM or APNs;
// the reference app has neither, so it keeps a random one, stable across
// runs so that the API keeps one installation for it. The token is
// base64url: it fits FCM's token syntax.
func (a *App) PushToken() (string, error) {
	st, err := a.pushState()
	if err != nil {
		return "", err
	}
	if st.Token != "" {
		return st.Token, nil
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	st.Token = base64.RawURLEncoding.EncodeToString(b[:])
	if err := a.savePushState(st); err != nil {
		return "", err
	}
	return st.Token, nil
}

// LastEventID returns the id of the last live event the app received, ""
// before the first.
func (a *App) LastEventID() (string, error) {
	st, err := a.pushState()
	if err != nil {
		return "", err
	}
	return string(st.LastEventID), nil
}

// SetLastEventID records id as the last live event received, so that the
// next stream resumes after it.
func (a *App) SetLastEventID(id string) error {
	st, err := a.pushState()
	if err != nil {
		return err
	}
	st.LastEventID = eventID(id)
	return a.savePushState(st)
}

// pushState loads PushFile; no file is a fresh installation. Unlike the
// token cache, a damaged file is an error: starting afresh would register
// a second installation and replay nothing.
func (a *App) pushState() (*pushState, error) {
	path := filepath.Join(a.Home, PushFile)
	b, err := os.ReadFile(path) //nolint:gosec // the home directory is the user's to choose
	if errors.Is(err, fs.ErrNotExist) {
		return &pushState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eid app push state: %w", err)
	}
	var st pushState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("eid app push state: %s: %w", path, err)
	}
	return &st, nil
}

func (a *App) savePushState(st *pushState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode push state: %w", err)
	}
	return writePrivate(filepath.Join(a.Home, PushFile), b)
}
