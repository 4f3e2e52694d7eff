package main

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// A retried POST /v1/devices with its Idempotency-Key answers as the first
// request did: 201, the same installation and its Location.
func TestPushDevice_IdempotentReplayKeepsStatus(t *testing.T) {
	f := newPushFakes(t)
	e := startMain(t, f.option(t))
	cit := e.citizenAPI(t, e.app)
	body := []byte(`{"platform":"fcm","token":"fcm-` + randomHex(20) + `"}`)
	first := cit.must(http.StatusCreated, http.MethodPost, "/v1/devices", body, "Idempotency-Key", "k1")
	again := cit.do(http.MethodPost, "/v1/devices", body, "Idempotency-Key", "k1")
	if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" ||
		again.json(t)["id"] != first.json(t)["id"] || again.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("replay: %d %v %s, want 201 %s with Location %s", again.status, again.header, again.body, first.body, first.header.Get("Location"))
	}
	// Without the key, the same body is a re-registration: 200.
	cit.must(http.StatusOK, http.MethodPost, "/v1/devices", body)
}

// Registering a push token another citizen holds answers exactly as a
// fresh registration does, and the first citizen's installation is neither
// shown to the second nor changed (SECURITY.md 51: no registration oracle).
func TestPushDevice_TakenTokenIsNoOracle(t *testing.T) {
	f := newPushFakes(t)
	e := startMain(t, f.option(t))
	owner := e.citizenAPI(t, e.app)
	other := e.citizenAPI(t, e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh))
	taken := "fcm-" + randomHex(20)
	owned := owner.must(http.StatusCreated, http.MethodPost, "/v1/devices", []byte(`{"platform":"fcm","token":"`+taken+`","locale":"en"}`)).json(t)
	before := owner.must(http.StatusOK, http.MethodGet, "/v1/devices", nil).body

	shape := func(r apiResp) (int, []string, []string) {
		var hdr, keys []string
		for k := range r.header {
			switch k {
			case "Date", "X-Request-Id", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Content-Length":
			default:
				hdr = append(hdr, k)
			}
		}
		for k := range r.json(t) {
			keys = append(keys, k)
		}
		sort.Strings(hdr)
		sort.Strings(keys)
		return r.status, hdr, keys
	}
	fresh := other.do(http.MethodPost, "/v1/devices", []byte(`{"platform":"fcm","token":"fcm-`+randomHex(20)+`"}`))
	stolen := other.do(http.MethodPost, "/v1/devices", []byte(`{"platform":"fcm","token":"`+taken+`"}`))
	fs, fh, fk := shape(fresh)
	ss, sh, sk := shape(stolen)
	if fs != ss || !slices.Equal(fh, sh) || !slices.Equal(fk, sk) {
		t.Errorf("another citizen's token: %d %v %v, a fresh one: %d %v %v", ss, sh, sk, fs, fh, fk)
	}
	got := stolen.json(t)
	if ss != http.StatusCreated || got["id"] == owned["id"] || got["eid_device_id"] == owned["eid_device_id"] ||
		stolen.header.Get("Location") != "/v1/devices/"+got["id"].(string) {
		t.Errorf("another citizen's token: %d %s, want a new installation of their own", ss, stolen.body)
	}
	// Registering it again updates their own, as for any token of theirs.
	if again := other.do(http.MethodPost, "/v1/devices", []byte(`{"platform":"fcm","token":"`+taken+`","locale":"en"}`)); again.status != http.StatusOK ||
		again.json(t)["id"] != got["id"] {
		t.Errorf("registering it again: %d %s, want 200 and %s", again.status, again.body, got["id"])
	}
	for _, it := range other.must(http.StatusOK, http.MethodGet, "/v1/devices", nil).json(t)["items"].([]any) {
		if it.(map[string]any)["id"] == owned["id"] {
			t.Errorf("the other citizen lists the owner's installation: %v", it)
		}
	}
	if r := other.do(http.MethodDelete, "/v1/devices/"+owned["id"].(string), nil); r.status != http.StatusNotFound {
		t.Errorf("the other citizen deletes the owner's installation: %d, want 404", r.status)
	}
	if after := owner.must(http.StatusOK, http.MethodGet, "/v1/devices", nil).body; string(after) != string(before) {
		t.Errorf("the owner's installations changed: %s, were %s", after, before)
	}
}

// A live stream ends within seconds of the revocation of the eID device its
// token came from, long before the next heartbeat (an hour here), and the
// token cannot open another.
func TestEvents_EndWhenDeviceRevoked(t *testing.T) {
	f := newPushFakes(t)
	e := startMain(t, f.option(t), func(c *Config) { c.PushHeartbeat = time.Hour })
	second := e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	lost := e.citizenAPI(t, second)
	s := openEvents(t, lost, "")
	if err := e.app.RevokeDevice(context.Background(), second.Enrollment().DeviceID); err != nil {
		t.Fatal(err)
	}
	var end sseEvent
	wait := time.After(pushWait)
	for open := true; open; {
		select {
		case ev := <-s.events:
			end = ev
		case <-s.done:
			open = false
		case <-wait:
			t.Fatal("the revoked device's stream is still open")
		}
	}
	select { // the reader may have queued the last event as the stream closed
	case ev := <-s.events:
		end = ev
	default:
	}
	if end.event != "end" || end.data["reason"] != "token" {
		t.Errorf("last event %+v, want end (token)", end)
	}
	if r := lost.do(http.MethodGet, "/v1/events", nil); r.status != http.StatusUnauthorized {
		t.Errorf("reconnecting with the revoked device's token: %d, want 401", r.status)
	}
	// The citizen's other device still streams.
	openEvents(t, e.citizenAPI(t, e.app), "").close()
}
