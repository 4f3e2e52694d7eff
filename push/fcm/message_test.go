package fcm

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
)

func TestEncodeMessage_FieldNames(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	n := &push.Notification{
		MessageID: "m-1", Kind: "result", Title: "T", Body: "B", CollapseKey: "c",
		Priority: push.High, Expires: now.Add(90 * time.Minute), Data: map[string]string{"x": "y"},
	}
	b, err := encodeMessage("tok", n, now)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"message":{"token":"tok","notification":{"title":"T","body":"B"},` +
		`"data":{"kind":"result","message_id":"m-1","x":"y"},` +
		`"android":{"priority":"HIGH","collapse_key":"c","ttl":"5400s"},` +
		`"apns":{"headers":{"apns-collapse-id":"c","apns-expiration":"1700005400","apns-priority":"10"}}}}`
	if string(b) != want {
		t.Errorf("encodeMessage =\n%s\nwant\n%s", b, want)
	}
}

func TestEncodeMessage_TTLClampedToFourWeeks(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	n := &push.Notification{MessageID: "m", Kind: "notice", Expires: now.Add(60 * 24 * time.Hour)}
	b, err := encodeMessage("tok", n, now)
	if err != nil {
		t.Fatal(err)
	}
	var got sendRequest
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Message.Android.TTL != "2419200s" {
		t.Errorf("ttl = %q, want 2419200s", got.Message.Android.TTL)
	}
	if exp := got.Message.APNS.Headers["apns-expiration"]; exp != "1702419200" {
		t.Errorf("apns-expiration = %q, want 1702419200", exp)
	}
}

func FuzzEncodeMessage(f *testing.F) {
	f.Add("tok", "m-1", "result", "Title", "Body", "ck", "k", "v", int64(3600))
	f.Add("", "", "", "", "", "", "", "", int64(-5))
	f.Add("t\u2028", "\xff", "k\"", "<script>", "\x00", "ü", "message_id", "spoof", int64(1<<40))
	f.Fuzz(func(t *testing.T, token, id, kind, title, body, ck, dk, dv string, ttlSecs int64) {
		now := time.Unix(1_700_000_000, 0)
		n := &push.Notification{
			MessageID: id, Kind: kind, Title: title, Body: body, CollapseKey: ck,
			Data: map[string]string{dk: dv}, Expires: now.Add(time.Duration(ttlSecs) * time.Second),
		}
		b, err := encodeMessage(token, n, now)
		if err != nil {
			t.Fatal(err)
		}
		var got sendRequest
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("encoded message is not JSON: %v", err)
		}
		m := got.Message
		// encoding/json replaces invalid UTF-8, so compare what survives
		// a round trip of the input itself.
		rt := func(s string) string {
			var out string
			j, _ := json.Marshal(s)
			_ = json.Unmarshal(j, &out)
			return out
		}
		if m.Token != rt(token) || m.Data["message_id"] != rt(id) || m.Data["kind"] != rt(kind) {
			t.Errorf("token/message_id/kind did not survive encoding: %+v", m)
		}
		if m.Android.CollapseKey != rt(ck) {
			t.Errorf("collapse_key = %q, want %q", m.Android.CollapseKey, rt(ck))
		}
		digits, ok := strings.CutSuffix(m.Android.TTL, "s")
		secs, err := strconv.ParseInt(digits, 10, 64)
		if !ok || err != nil || secs < 0 || secs > int64(maxTTL/time.Second) {
			t.Errorf("ttl %q is not 0..4 weeks of seconds", m.Android.TTL)
		}
	})
}
