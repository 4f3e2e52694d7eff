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
	Token       string `json:"token"`
	LastEventID int64  `json:"last_event_id,omitempty"`
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

// LastEventID returns the position of the last live event the app
// received, 0 before the first.
func (a *App) LastEventID() (int64, error) {
	st, err := a.pushState()
	if err != nil {
		return 0, err
	}
	return st.LastEventID, nil
}

// SetLastEventID records seq as the position of the last live event
// received, so that the next stream resumes after it.
func (a *App) SetLastEventID(seq int64) error {
	if seq < 0 {
		return fmt.Errorf("last event id %d: negative", seq)
	}
	st, err := a.pushState()
	if err != nil {
		return err
	}
	st.LastEventID = seq
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
