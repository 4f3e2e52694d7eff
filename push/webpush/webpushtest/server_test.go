package webpushtest

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RFC 8291 Appendix A, "Push Message Encryption Example".
const (
	rfcPlaintext = "When I grow up, I want to be a watermelon"
	rfcUAPrivate = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
	rfcUAPublic  = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	rfcAuth      = "BTBZMqHH6r4Tts7J_aSIgg"
	rfcBody      = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return b
}

func rfcKey(t *testing.T) *ecdh.PrivateKey {
	t.Helper()
	ua, err := ecdh.P256().NewPrivateKey(b64(t, rfcUAPrivate))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(ua.PublicKey().Bytes()); got != rfcUAPublic {
		t.Fatalf("ua_public = %s, want %s", got, rfcUAPublic)
	}
	return ua
}

func TestDecrypt_RFC8291AppendixA(t *testing.T) {
	got, err := decrypt(b64(t, rfcBody), rfcKey(t), b64(t, rfcAuth))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != rfcPlaintext {
		t.Errorf("plaintext = %q, want %q", got, rfcPlaintext)
	}
}

func TestDecrypt_Refuses(t *testing.T) {
	ua, auth, body := rfcKey(t), b64(t, rfcAuth), b64(t, rfcBody)
	flip := func(i int) []byte {
		b := bytes.Clone(body)
		b[i] ^= 1
		return b
	}
	withRS := func(rs uint32) []byte {
		b := bytes.Clone(body)
		binary.BigEndian.PutUint32(b[16:20], rs)
		return b
	}
	otherAuth := bytes.Clone(auth)
	otherAuth[0] ^= 1
	tests := []struct {
		name string
		body []byte
		auth []byte
	}{
		{"tampered salt", flip(0), auth},
		{"tampered key id", flip(30), auth},
		{"tampered ciphertext", flip(len(body) - 20), auth},
		{"tampered tag", flip(len(body) - 1), auth},
		{"wrong auth secret", body, otherAuth},
		{"truncated header", body[:50], auth},
		{"no ciphertext", body[:86], auth},
		{"record size below 18", withRS(17), auth},
		{"record not shorter than rs", withRS(58 /* plaintext, delimiter and tag */), auth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := decrypt(tt.body, ua, tt.auth); err == nil {
				t.Errorf("decrypt() = %q, want an error", got)
			}
		})
	}
}

// vapidHeader signs a token the way a sender would, with claims changed by
// edit.
func vapidHeader(t *testing.T, key *ecdsa.PrivateKey, aud string, edit func(jwt.MapClaims)) string {
	t.Helper()
	claims := jwt.MapClaims{"aud": aud, "exp": time.Now().Add(12 * time.Hour).Unix(), "sub": "mailto:ops@onedoor.example"}
	if edit != nil {
		edit(claims)
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return "vapid t=" + signed + ", k=" + base64.RawURLEncoding.EncodeToString(pub)
}

// The server, given the RFC's user agent keys, accepts the RFC's body from
// a sender that follows RFC 8030 and RFC 8292, and refuses requests that
// break either.
func TestServer_ChecksRequests(t *testing.T) {
	s := NewServer(t)
	sub := s.Subscribe()
	// Give the subscription the RFC's keys, so the RFC's body decrypts.
	s.mu.Lock()
	for _, x := range s.subs {
		x.key, x.auth = rfcKey(t), b64(t, rfcAuth)
	}
	s.mu.Unlock()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := vapidHeader(t, key, s.Origin(), nil)
	post := func(h http.Header, body []byte) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, sub.Endpoint, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	headers := func(edit func(http.Header)) http.Header {
		h := http.Header{}
		h.Set("Content-Encoding", "aes128gcm")
		h.Set("TTL", "60")
		h.Set("Authorization", good)
		if edit != nil {
			edit(h)
		}
		return h
	}

	resp := post(headers(func(h http.Header) { h.Set("Urgency", "high"); h.Set("Topic", "case_42") }), b64(t, rfcBody))
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") == "" {
		t.Fatalf("RFC example: status %d, Location %q; want 201 with a Location", resp.StatusCode, resp.Header.Get("Location"))
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	if m := msgs[0]; string(m.Plaintext) != rfcPlaintext || m.TTL != 60 || m.Urgency != "high" || m.Topic != "case_42" || m.Subject != "mailto:ops@onedoor.example" || m.Endpoint != sub.Endpoint {
		t.Errorf("message = %+v", m)
	}

	setAuth := func(v string) func(http.Header) { return func(h http.Header) { h.Set("Authorization", v) } }
	tests := []struct {
		name   string
		edit   func(http.Header)
		body   []byte
		status int
	}{
		{"no authorization", func(h http.Header) { h.Del("Authorization") }, nil, 401},
		{"bearer scheme", setAuth("Bearer " + good[len("vapid "):]), nil, 401},
		{"other origin", setAuth(vapidHeader(t, key, "https://push.example", nil)), nil, 401},
		{"expired", setAuth(vapidHeader(t, key, s.Origin(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), nil, 401},
		{"no expiry", setAuth(vapidHeader(t, key, s.Origin(), func(c jwt.MapClaims) { delete(c, "exp") })), nil, 401},
		{"expiry beyond 24 hours", setAuth(vapidHeader(t, key, s.Origin(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(25 * time.Hour).Unix() })), nil, 401},
		{"no subject", setAuth(vapidHeader(t, key, s.Origin(), func(c jwt.MapClaims) { delete(c, "sub") })), nil, 401},
		{"plain subject", setAuth(vapidHeader(t, key, s.Origin(), func(c jwt.MapClaims) { c["sub"] = "ops@onedoor.example" })), nil, 401},
		{"k of another key", setAuth(good[:len(good)-87] + vapidHeader(t, other, s.Origin(), nil)[len(good)-87:]), nil, 401},
		{"no TTL", func(h http.Header) { h.Del("TTL") }, nil, 400},
		{"negative TTL", func(h http.Header) { h.Set("TTL", "-1") }, nil, 400},
		{"bad urgency", func(h http.Header) { h.Set("Urgency", "urgent") }, nil, 400},
		{"long topic", func(h http.Header) { h.Set("Topic", "abcdefghijklmnopqrstuvwxyz0123456") }, nil, 400},
		{"topic outside base64url", func(h http.Header) { h.Set("Topic", "a.b") }, nil, 400},
		{"aesgcm encoding", func(h http.Header) { h.Set("Content-Encoding", "aesgcm") }, nil, 415},
		{"too large", nil, make([]byte, MaxBody+1), 413},
		{"garbage body", nil, []byte("not encrypted"), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == nil {
				body = b64(t, rfcBody)
			}
			if resp := post(headers(tt.edit), body); resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages after refusals, want still 1", n)
	}

	t.Run("pinned key", func(t *testing.T) {
		s.RequireVAPIDKey(good[len(good)-87:])
		if resp := post(headers(setAuth(vapidHeader(t, other, s.Origin(), nil))), b64(t, rfcBody)); resp.StatusCode != 403 {
			t.Errorf("other key: status %d, want 403", resp.StatusCode)
		}
		if resp := post(headers(nil), b64(t, rfcBody)); resp.StatusCode != 201 {
			t.Errorf("pinned key: status %d, want 201", resp.StatusCode)
		}
		s.RequireVAPIDKey("")
	})
	t.Run("scripted failures", func(t *testing.T) {
		s.FailNext(2, http.StatusServiceUnavailable, 7*time.Second)
		for i := range 2 {
			resp := post(headers(nil), b64(t, rfcBody))
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != strconv.Itoa(7) {
				t.Errorf("post %d: status %d, Retry-After %q; want 503, 7", i, resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		}
		if resp := post(headers(nil), b64(t, rfcBody)); resp.StatusCode != 201 {
			t.Errorf("after the failures: status %d, want 201", resp.StatusCode)
		}
	})
	t.Run("unsubscribed", func(t *testing.T) {
		s.Unsubscribe(sub)
		if resp := post(headers(nil), b64(t, rfcBody)); resp.StatusCode != 410 {
			t.Errorf("status %d, want 410", resp.StatusCode)
		}
	})
	t.Run("unknown subscription", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, s.Origin()+"/push/nobody", bytes.NewReader(b64(t, rfcBody)))
		req.Header = headers(nil)
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
	})
}
