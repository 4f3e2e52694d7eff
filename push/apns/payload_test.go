package apns

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/onedoor/onedoor/push"
)

func TestEncodePayload_Limit(t *testing.T) {
	n := &push.Notification{MessageID: "m1", Kind: "result", Title: "t"}
	empty, err := encodePayload(n)
	if err != nil {
		t.Fatal(err)
	}
	// "body":"" is left out, so a body of k bytes adds len(`,"body":""`)+k.
	room := MaxPayloadSize - len(empty) - len(`,"body":""`)
	n.Body = strings.Repeat("é", room/2) + strings.Repeat("x", room%2)
	b, err := encodePayload(n)
	if err != nil || len(b) != MaxPayloadSize {
		t.Fatalf("a payload of exactly %d bytes: got %d bytes, %v", MaxPayloadSize, len(b), err)
	}
	n.Body += "x"
	if _, err := encodePayload(n); !errors.Is(err, errPayloadTooLarge) {
		t.Errorf("a payload of %d bytes: got %v, want errPayloadTooLarge", MaxPayloadSize+1, err)
	}
}

func TestEncodePayload_NoHTMLEscaping(t *testing.T) {
	b, err := encodePayload(&push.Notification{MessageID: "m1", Kind: "notice", Body: "<b>&</b>"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"body":"<b>&</b>"`) {
		t.Errorf("payload %s escapes HTML, which wastes bytes of the 4 KB", b)
	}
}

// FuzzEncodePayload checks that any notification either encodes within
// APNs' limit to JSON that gives back its text, ids and data, or is refused
// as too large only when it is.
func FuzzEncodePayload(f *testing.F) {
	f.Add("msg-1", "login_approval", "Sign-in request", "Open OneDoor", "case", "42")
	f.Add("", "", "", "", "aps", "x")
	f.Add("m", "k", "<\u2028>", "\"\\", "message_id", "forged")
	f.Add("m", "k", strings.Repeat("é", 2100), "", "", "")
	f.Fuzz(func(t *testing.T, messageID, kind, title, body, key, value string) {
		for _, s := range []string{messageID, kind, title, body, key, value} {
			if !utf8.ValidString(s) {
				return // encoding/json replaces invalid UTF-8, so it cannot round-trip
			}
		}
		n := &push.Notification{MessageID: messageID, Kind: kind, Title: title, Body: body, Data: map[string]string{key: value}}
		b, err := encodePayload(n)
		if errors.Is(err, errPayloadTooLarge) {
			if len(title)+len(body)+len(key)+len(value)+len(messageID)+len(kind) < MaxPayloadSize-200 {
				t.Errorf("refused %+v as too large", n)
			}
			return
		}
		if err != nil {
			t.Fatalf("encodePayload: %v", err)
		}
		if len(b) > MaxPayloadSize {
			t.Fatalf("payload of %d bytes, over the limit", len(b))
		}
		var got struct {
			APS struct {
				Alert          alert  `json:"alert"`
				Sound          string `json:"sound"`
				MutableContent int    `json:"mutable-content"`
			} `json:"aps"`
			MessageID string `json:"message_id"`
			Kind      string `json:"kind"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("payload %s is not JSON: %v", b, err)
		}
		if got.APS.Alert != (alert{Title: title, Body: body}) || got.APS.Sound != "default" || got.APS.MutableContent != 1 ||
			got.MessageID != messageID || got.Kind != kind {
			t.Errorf("payload %s does not give back %+v", b, n)
		}
		var all map[string]any
		if err := json.Unmarshal(b, &all); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"aps": true, "message_id": true, "kind": true}
		if !want[key] {
			want[key] = true
			if all[key] != value {
				t.Errorf("payload %s: data %q = %v, want %q", b, key, all[key], value)
			}
		}
		if len(all) != len(want) {
			t.Errorf("payload %s has %d keys, want %v", b, len(all), slices.Sorted(maps.Keys(want)))
		}
	})
}
