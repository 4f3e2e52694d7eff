package push_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/push"
)

// newKeys returns a browser's keys encoded with enc.
func newKeys(t testing.TB, enc *base64.Encoding) (push.SubscriptionKeys, []byte, []byte) {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	pub := k.PublicKey().Bytes()
	return push.SubscriptionKeys{P256DH: enc.EncodeToString(pub), Auth: enc.EncodeToString(auth)}, pub, auth
}

func TestSubscription_ValidateAccepts(t *testing.T) {
	keys, _, _ := newKeys(t, base64.RawURLEncoding)
	tests := []struct {
		name     string
		endpoint string
		loopback bool
	}{
		{"fcm", "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b-x_y", false},
		{"port and query", "https://push.example:8443/p/abc?x=1", false},
		{"https loopback without the flag", "https://127.0.0.1:4443/push/x", false},
		{"http 127.0.0.1", "http://127.0.0.1:8080/push/x", true},
		{"http other loopback", "http://127.1.2.3/push/x", true},
		{"http ::1", "http://[::1]:8080/push/x", true},
		{"http localhost", "http://LocalHost:8080/push/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := push.Subscription{Endpoint: tt.endpoint, Keys: keys}
			if err := s.Validate(tt.loopback); err != nil {
				t.Errorf("Validate(%v) = %v, want nil", tt.loopback, err)
			}
		})
	}
}

// The W3C Push API serializes keys as unpadded base64url; the other three
// forms appear in hand-written pages and older libraries.
func TestSubscriptionKeys_DecodeEncodings(t *testing.T) {
	for _, enc := range []struct {
		name string
		enc  *base64.Encoding
	}{
		{"raw url", base64.RawURLEncoding},
		{"padded url", base64.URLEncoding},
		{"raw std", base64.RawStdEncoding},
		{"padded std", base64.StdEncoding},
	} {
		t.Run(enc.name, func(t *testing.T) {
			// Repeat so both alphabets' special characters show up.
			for range 20 {
				keys, pub, auth := newKeys(t, enc.enc)
				gotPub, gotAuth, err := keys.Decode()
				if err != nil {
					t.Fatalf("Decode() = %v", err)
				}
				if !bytes.Equal(gotPub.Bytes(), pub) || !bytes.Equal(gotAuth, auth) {
					t.Fatal("Decode() returned other keys than encoded")
				}
			}
		})
	}
}

func TestSubscription_ValidateRefuses(t *testing.T) {
	keys, pub, auth := newKeys(t, base64.RawURLEncoding)
	const ok = "https://push.example/p/subscriber-secret-id"
	compressed := append([]byte{2 | pub[64]&1}, pub[1:33]...)
	offCurve := bytes.Clone(pub)
	offCurve[64] ^= 1
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name     string
		endpoint string
		p256dh   string
		auth     string
		loopback bool
		field    string
	}{
		{name: "no endpoint", field: "subscription.endpoint"},
		{name: "relative", endpoint: "/push/abc", field: "subscription.endpoint"},
		{name: "no host", endpoint: "https:///push", field: "subscription.endpoint"},
		{name: "opaque", endpoint: "https:push.example", field: "subscription.endpoint"},
		{name: "ftp", endpoint: "ftp://push.example/p", field: "subscription.endpoint"},
		{name: "http", endpoint: "http://push.example/p", field: "subscription.endpoint"},
		{name: "http public with loopback allowed", endpoint: "http://push.example/p", loopback: true, field: "subscription.endpoint"},
		{name: "http loopback not allowed", endpoint: "http://127.0.0.1/p", field: "subscription.endpoint"},
		{name: "http localhost suffix", endpoint: "http://localhost.evil.example/p", loopback: true, field: "subscription.endpoint"},
		{name: "userinfo", endpoint: "https://user:pw@push.example/p", field: "subscription.endpoint"},
		{name: "fragment", endpoint: ok + "#frag", field: "subscription.endpoint"},
		{name: "empty fragment", endpoint: ok + "#", field: "subscription.endpoint"},
		{name: "space", endpoint: "https://push.example/p q", field: "subscription.endpoint"},
		{name: "utf-8", endpoint: "https://püsh.example/p", field: "subscription.endpoint"},
		{name: "too long", endpoint: ok + strings.Repeat("a", push.MaxEndpointLength), field: "subscription.endpoint"},
		{name: "no p256dh", endpoint: ok, p256dh: "-", field: "subscription.keys.p256dh"},
		{name: "p256dh not base64", endpoint: ok, p256dh: keys.P256DH[:40] + "!" + keys.P256DH[41:], field: "subscription.keys.p256dh"},
		{name: "p256dh with newline", endpoint: ok, p256dh: keys.P256DH[:40] + "\n" + keys.P256DH[40:], field: "subscription.keys.p256dh"},
		{name: "p256dh bad padding", endpoint: ok, p256dh: keys.P256DH + "==", field: "subscription.keys.p256dh"},
		{name: "p256dh compressed", endpoint: ok, p256dh: b64(compressed), field: "subscription.keys.p256dh"},
		{name: "p256dh off the curve", endpoint: ok, p256dh: b64(offCurve), field: "subscription.keys.p256dh"},
		{name: "p256dh truncated", endpoint: ok, p256dh: b64(pub[:64]), field: "subscription.keys.p256dh"},
		{name: "no auth", endpoint: ok, auth: "-", field: "subscription.keys.auth"},
		{name: "auth 15 bytes", endpoint: ok, auth: b64(auth[:15]), field: "subscription.keys.auth"},
		{name: "auth 17 bytes", endpoint: ok, auth: b64(append(bytes.Clone(auth), 1)), field: "subscription.keys.auth"},
		{name: "auth not base64", endpoint: ok, auth: "BTBZMqHH6r4Tts7J_aSIg$", field: "subscription.keys.auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := push.Subscription{Endpoint: tt.endpoint, Keys: keys}
			switch tt.p256dh {
			case "":
			case "-":
				s.Keys.P256DH = ""
			default:
				s.Keys.P256DH = tt.p256dh
			}
			switch tt.auth {
			case "":
			case "-":
				s.Keys.Auth = ""
			default:
				s.Keys.Auth = tt.auth
			}
			err := s.Validate(tt.loopback)
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			msg := err.Error()
			if !errors.Is(err, push.ErrInvalidSubscription) {
				t.Errorf("Validate() = %q, not ErrInvalidSubscription", msg)
			}
			if !strings.HasPrefix(msg, tt.field+": ") {
				t.Errorf("Validate() = %q, want it to name %s", msg, tt.field)
			}
			for _, secret := range []string{"subscriber-secret-id", s.Keys.P256DH, s.Keys.Auth} {
				if secret != "" && strings.Contains(msg, secret) {
					t.Errorf("Validate() = %q repeats the subscription's %q", msg, secret)
				}
			}
		})
	}
}

// FuzzSubscriptionValidate checks that Validate never panics, that an
// accepted subscription survives JSON and canonical re-encoding of its keys
// (to the same key bytes), and that an error never repeats a key.
func FuzzSubscriptionValidate(f *testing.F) {
	keys, _, _ := newKeys(f, base64.RawURLEncoding)
	f.Add("https://push.example/p/x", keys.P256DH, keys.Auth, false)
	f.Add("http://127.0.0.1:1/p", keys.P256DH+"=", keys.Auth+"==", true)
	f.Add("https://push.example/p#f", strings.NewReplacer("-", "+", "_", "/").Replace(keys.P256DH), keys.Auth, false)
	f.Add("https://u@push.example/", "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "BTBZMqHH6r4Tts7J_aSIgg", false)
	f.Add("http://[::1]/", "", "====", true)
	f.Fuzz(func(t *testing.T, endpoint, p256dh, auth string, loopback bool) {
		s := push.Subscription{Endpoint: endpoint, Keys: push.SubscriptionKeys{P256DH: p256dh, Auth: auth}}
		err := s.Validate(loopback)
		if err != nil {
			msg := err.Error()
			const fields = "subscription.keys.p256dh subscription.keys.auth subscription.endpoint"
			for _, key := range []string{p256dh, auth} {
				if len(key) >= 16 && strings.Contains(msg, key) && !strings.Contains(fields, key) {
					t.Fatalf("error %q repeats a key", msg)
				}
			}
			if !errors.Is(err, push.ErrInvalidSubscription) {
				t.Fatalf("error %q is not ErrInvalidSubscription", msg)
			}
			return
		}
		pub, secret, err := s.Keys.Decode()
		if err != nil {
			t.Fatalf("Validate accepted keys that Decode refuses: %v", err)
		}
		j, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back push.Subscription
		if err := json.Unmarshal(j, &back); err != nil {
			t.Fatal(err)
		}
		if back != s || back.Validate(loopback) != nil {
			t.Fatalf("JSON round trip changed or broke %+v", s)
		}
		canon := push.Subscription{Endpoint: endpoint, Keys: push.SubscriptionKeys{
			P256DH: base64.RawURLEncoding.EncodeToString(pub.Bytes()),
			Auth:   base64.RawURLEncoding.EncodeToString(secret),
		}}
		pub2, secret2, err := canon.Keys.Decode()
		if err != nil || canon.Validate(loopback) != nil {
			t.Fatalf("canonical form refused: %v", err)
		}
		if !pub2.Equal(pub) || !bytes.Equal(secret2, secret) {
			t.Fatal("canonical form decodes to other keys")
		}
	})
}
