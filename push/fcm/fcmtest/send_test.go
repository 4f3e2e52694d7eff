package fcmtest

import (
	"regexp"
	"strings"
	"testing"
)

// FuzzParseRequest holds the fake's validation to what it promises for
// any body: no panic, and an accepted message is one FCM would accept.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"message":{"token":"t","notification":{"title":"a","body":"b"},"data":{"k":"v"},` +
		`"android":{"priority":"HIGH","collapse_key":"c","ttl":"60s"},"apns":{"headers":{"apns-priority":"10"}}}}`))
	f.Add([]byte(`{"message":{"token":"t","android":{"collapseKey":"c","ttl":"1.5s"}},"validateOnly":true}`))
	f.Add([]byte(`{"message":{"topic":"x"}}`))
	f.Add([]byte(`{"message":{"token":"t","data":{"google.a":"b"}}}`))
	f.Add([]byte(`[]`))
	ttl := regexp.MustCompile(`^[0-9]+(\.[0-9]{1,9})?s$`)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, _, v := parseRequest(body)
		if v != nil {
			if m != nil {
				t.Error("both a message and a violation")
			}
			return
		}
		if m.Token == "" {
			t.Error("accepted a message without a token")
		}
		if m.TTL != "" && !ttl.MatchString(m.TTL) {
			t.Errorf("accepted ttl %q", m.TTL)
		}
		if m.Priority != "" && m.Priority != "HIGH" && m.Priority != "NORMAL" {
			t.Errorf("accepted priority %q", m.Priority)
		}
		size := len(m.Title) + len(m.Body)
		for k, val := range m.Data {
			size += len(k) + len(val)
			if k == "from" || k == "gcm" || strings.HasPrefix(k, "google") {
				t.Errorf("accepted reserved data key %q", k)
			}
		}
		if size > maxPayload {
			t.Errorf("accepted %d bytes of payload", size)
		}
	})
}
