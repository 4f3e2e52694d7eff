package fcm

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
)

// googleTokenURI is where a service account's assertion goes when its
// credentials file names no token_uri.
const googleTokenURI = "https://oauth2.googleapis.com/token" //nolint:gosec // a public URL, not a secret

// serviceAccount is the part of a Google service-account key file that the
// JWT assertion flow needs.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// parseCredentials reads a service-account key file. Its errors name the
// field at fault but never quote the file: it holds the private key.
func parseCredentials(b []byte) (*serviceAccount, error) {
	var sa serviceAccount
	if err := json.Unmarshal(b, &sa); err != nil {
		// encoding/json's messages quote the offending input; report
		// only where it went wrong.
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("fcm: credentials are not JSON (at byte %d)", syn.Offset)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("fcm: credentials field %q has the wrong type", typ.Field)
		default:
			return nil, errors.New("fcm: credentials are not a JSON object")
		}
	}
	switch {
	case sa.Type != "service_account":
		return nil, errors.New(`fcm: credentials are not a service-account key (type is not "service_account")`)
	case sa.ProjectID == "":
		return nil, errors.New("fcm: credentials have no project_id")
	case sa.ClientEmail == "":
		return nil, errors.New("fcm: credentials have no client_email")
	case sa.PrivateKey == "":
		return nil, errors.New("fcm: credentials have no private_key")
	}
	if sa.TokenURI == "" {
		sa.TokenURI = googleTokenURI
	}
	if err := checkURL(sa.TokenURI); err != nil {
		return nil, fmt.Errorf("fcm: credentials token_uri: %w", err)
	}
	if _, err := parseRSAKey([]byte(sa.PrivateKey)); err != nil {
		return nil, err
	}
	return &sa, nil
}

// parseRSAKey accepts what golang.org/x/oauth2/jwt signs with: an RSA key
// in a PEM block, PKCS#8 as Google issues it or PKCS#1.
func parseRSAKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("fcm: credentials private_key is not PEM")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("fcm: credentials private_key is not an RSA key")
		}
		return rk, nil
	}
	if rk, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return rk, nil
	}
	return nil, errors.New("fcm: credentials private_key is neither a PKCS#8 nor a PKCS#1 RSA key")
}

// checkURL admits https, and plain http to a loopback address only (a
// local fake): the token endpoint receives a signed assertion and the
// send endpoint a bearer token.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Host == "" {
		return errors.New("URL has no host")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("plain http is allowed to loopback addresses only")
	default:
		return fmt.Errorf("URL scheme %q is not https", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
