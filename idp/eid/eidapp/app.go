// Package eidapp is the reference eID app as a library: it enrolls a device
// key, answers QR-code login requests and obtains the app's own tokens with
// the JWT-bearer grant signed by the device key. cmd/eidsim wraps it in a
// CLI; end-to-end tests drive it directly.
package eidapp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Files in the app's home directory, both mode 0600.
const (
	DeviceFile = "device.json" // enrollment and the device's private key
	TokensFile = "tokens.json" // the app's own OIDC tokens
)

// ErrNotEnrolled means the home directory holds no device.json.
var ErrNotEnrolled = errors.New("eid app not enrolled")

// App is one installation of the eID app, kept in its home directory.
type App struct {
	Home string
	HTTP *http.Client     // default: a client with a 30 s timeout
	Now  func() time.Time // default time.Now
	// Platform and Model are what Enroll declares about this installation
	// (such as "android" and "Pixel 9"); both optional.
	Platform string
	Model    string

	dev *device
}

// Enrollment describes the enrolled device.
type Enrollment struct {
	IDP        string    `json:"idp"` // issuer URL, no trailing slash
	DeviceID   string    `json:"device_id"`
	PersonalID string    `json:"personal_id"`
	DeviceName string    `json:"device_name"`
	Level      string    `json:"level"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

// device is device.json: the enrollment and the ES256 key as PKCS#8 PEM.
type device struct {
	Enrollment
	PrivateKey string `json:"private_key"`

	key *ecdsa.PrivateKey
}

// Open loads the app kept in home. A home without device.json gives an
// app that can only Enroll.
func Open(home string) (*App, error) {
	if home == "" {
		return nil, errors.New("eid app: home directory required")
	}
	a := &App{Home: home}
	path := filepath.Join(home, DeviceFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eid app: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("eid app: %s holds a private key and must not be readable by others (chmod 600)", path)
	}
	b, err := os.ReadFile(path) //nolint:gosec // the home directory is the user's to choose
	if err != nil {
		return nil, fmt.Errorf("eid app: %w", err)
	}
	var d device
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("eid app: %s: %w", path, err)
	}
	if d.key, err = parseKey(d.PrivateKey); err != nil {
		return nil, fmt.Errorf("eid app: %s: %w", path, err)
	}
	if d.DeviceID == "" || d.IDP == "" {
		return nil, fmt.Errorf("eid app: %s: device_id and idp required", path)
	}
	a.dev = &d
	return a, nil
}

// Enrollment returns the enrolled device, or nil before Enroll.
func (a *App) Enrollment() *Enrollment {
	if a.dev == nil {
		return nil
	}
	e := a.dev.Enrollment
	return &e
}

func (a *App) device() (*device, error) {
	if a.dev == nil {
		return nil, fmt.Errorf("%w: run enroll first (%s)", ErrNotEnrolled, filepath.Join(a.Home, DeviceFile))
	}
	return a.dev, nil
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}

func (a *App) client() *http.Client {
	if a.HTTP != nil {
		return a.HTTP
	}
	return defaultClient
}

func (a *App) saveDevice(d *device) error {
	der, err := x509.MarshalPKCS8PrivateKey(d.key)
	if err != nil {
		return fmt.Errorf("encode device key: %w", err)
	}
	d.PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b, err := json.MarshalIndent(d, "", "  ") //nolint:gosec // device.json is where the key lives, mode 0600
	if err != nil {
		return fmt.Errorf("encode %s: %w", DeviceFile, err)
	}
	return writePrivate(filepath.Join(a.Home, DeviceFile), b)
}

func parseKey(p string) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("private_key is not a PKCS#8 PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("private_key is not an EC P-256 key")
	}
	return ek, nil
}

// writePrivate replaces path atomically with a 0600 file, so a crash never
// leaves half a key and the key is never readable by others.
func writePrivate(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// baseURL checks an IdP URL and drops a trailing slash, so URLs built from
// it and comparisons with issuers agree.
func baseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("IdP URL %q must be an absolute http(s) URL without query", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}
