package push

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/onedoor/onedoor/idp"
)

func TestQuietUntil(t *testing.T) {
	hcm, _ := time.LoadLocation("Asia/Ho_Chi_Minh") // UTC+7
	at := func(h, m int) time.Time { return time.Date(2026, 3, 10, h, m, 0, 0, hcm) }
	night := &Preferences{TimeZone: "Asia/Ho_Chi_Minh", Quiet: &QuietHours{Start: "22:00", End: "07:00"}}
	noon := &Preferences{TimeZone: "Asia/Ho_Chi_Minh", Quiet: &QuietHours{Start: "12:00", End: "13:30"}}
	for _, tc := range []struct {
		p    *Preferences
		t    time.Time
		want time.Time
	}{
		{night, at(21, 59), time.Time{}},
		{night, at(22, 0), at(7, 0).AddDate(0, 0, 1)},
		{night, at(23, 30), at(7, 0).AddDate(0, 0, 1)},
		{night, at(3, 0), at(7, 0)},
		{night, at(7, 0), time.Time{}},
		{noon, at(12, 15), at(13, 30)},
		{noon, at(13, 30), time.Time{}},
		{noon, at(11, 0), time.Time{}},
		{&Preferences{}, at(23, 0), time.Time{}},
		// UTC instants are read in the citizen's zone: 16:00 UTC is 23:00 in Hanoi.
		{night, time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC), at(7, 0).AddDate(0, 0, 1)},
	} {
		if got := tc.p.QuietUntil(tc.t); !got.Equal(tc.want) {
			t.Errorf("%v in %+v: %v, want %v", tc.t, tc.p.Quiet, got, tc.want)
		}
	}
}

func TestChannel(t *testing.T) {
	p := &Preferences{
		Kinds:    map[Kind]Channel{KindStatusChange: ChannelInbox, KindLoginApproval: ChannelOff},
		Services: map[string]ServicePreferences{"TAX": {Kinds: map[Kind]Channel{KindStatusChange: ChannelPush, KindResult: ChannelOff}}},
	}
	for _, tc := range []struct {
		kind    Kind
		service string
		want    Channel
	}{
		{KindStatusChange, "", ChannelInbox},
		{KindStatusChange, "TAX", ChannelPush},
		{KindResult, "TAX", ChannelOff},
		{KindResult, "LAND", ChannelPush},
		{KindLoginApproval, "", ChannelPush}, // a waiting login is never silenced
	} {
		if got := p.Channel(tc.kind, tc.service); got != tc.want {
			t.Errorf("Channel(%s, %q) = %s, want %s", tc.kind, tc.service, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		p       Preferences
		pointer string
	}{
		{Preferences{TimeZone: "Nowhere/City"}, "/time_zone"},
		{Preferences{TimeZone: "../../etc/passwd"}, "/time_zone"},
		{Preferences{TimeZone: "Local"}, "/time_zone"},
		{Preferences{Quiet: &QuietHours{Start: "25:00", End: "07:00"}}, "/quiet_hours/start"},
		{Preferences{Quiet: &QuietHours{Start: "22:00", End: "7:00"}}, "/quiet_hours/end"},
		{Preferences{Quiet: &QuietHours{Start: "22:00", End: "22:00"}}, "/quiet_hours/end"},
		{Preferences{Kinds: map[Kind]Channel{"gossip": ChannelPush}}, "/kinds/gossip"},
		{Preferences{Kinds: map[Kind]Channel{KindResult: "sms"}}, "/kinds/result"},
		{Preferences{Services: map[string]ServicePreferences{"S": {Kinds: map[Kind]Channel{KindResult: "loud"}}}}, "/services/S/kinds/result"},
	} {
		err := tc.p.Validate()
		var f *InvalidField
		if !errors.As(err, &f) || f.Pointer != tc.pointer || !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("%+v: %v, want a problem at %s", tc.p, err, tc.pointer)
		}
	}
	ok := Preferences{TimeZone: "Europe/Paris", Quiet: &QuietHours{Start: "22:00", End: "06:30"},
		Kinds: map[Kind]Channel{KindNotice: ChannelOff}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid preferences: %v", err)
	}
}

func TestComposeIsGenericUnlessOptedIn(t *testing.T) {
	m := &Message{ID: "ntf_1", Kind: KindResult, Title: Text{VI: "Giấy phép xây dựng: đã duyệt", EN: "Building permit: approved"}, Body: "Nguyen Van A"}
	for _, locale := range []string{"vi", "en"} {
		n := Compose(m, locale, false)
		if n.Title == m.Title.In(locale) || n.Body == m.Body || n.MessageID != "ntf_1" || n.Kind != "result" {
			t.Errorf("generic %s push carries the message's text: %+v", locale, n)
		}
	}
	if n := Compose(m, "en", true); n.Title != "Building permit: approved" || n.Body != "Nguyen Van A" {
		t.Errorf("full text: %+v", n)
	}
	if n := Compose(m, "en", false); n.Title != "Public services" {
		t.Errorf("English generic title: %q", n.Title)
	}
}

func TestQuietUntil_DaylightSavingNeverHoldsForever(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no zone data")
	}
	p := &Preferences{TimeZone: "America/New_York", Quiet: &QuietHours{Start: "22:00", End: "01:30"}}
	// 2026-11-01: 01:30 happens twice; at the second 01:15 (06:15Z) the
	// first 01:30 is already past.
	at := time.Date(2026, 11, 1, 6, 15, 0, 0, time.UTC)
	if until := p.QuietUntil(at); !until.IsZero() && !until.After(at) {
		t.Fatalf("QuietUntil(%v) = %v (%v), in the past", at, until, until.In(ny))
	}
}

func TestCompose_FullTextIsClipped(t *testing.T) {
	long := strings.Repeat("Quyết định số 123/QĐ-UBND về việc cấp phép. ", 200) // ~9 KB of multi-byte text
	n := Compose(&Message{ID: "ntf_1", Kind: KindResult, Title: Text{VI: long}, Body: long}, "vi", true)
	if len(n.Title) > maxTitle || len(n.Body) > maxBody || !utf8.ValidString(n.Title) || !utf8.ValidString(n.Body) || !strings.HasSuffix(n.Body, "…") {
		t.Fatalf("title %d bytes, body %d bytes, valid %v %v", len(n.Title), len(n.Body), utf8.ValidString(n.Title), utf8.ValidString(n.Body))
	}
}

func TestSafeError(t *testing.T) {
	bad := errors.New("malformed HTTP status \"Đ\xff\xfe\"" + strings.Repeat("ồ", 400))
	s := safeError(bad)
	if !utf8.ValidString(s) || len(s) > 300 {
		t.Fatalf("safeError: %d bytes, valid %v", len(s), utf8.ValidString(s))
	}
}

func TestValidate_PointersAreEscaped(t *testing.T) {
	err := (&Preferences{Services: map[string]ServicePreferences{"a/b~c": {Kinds: map[Kind]Channel{"x/y": ChannelPush}}}}).Validate()
	var f *InvalidField
	if !errors.As(err, &f) || f.Pointer != "/services/a~1b~0c/kinds/x~1y" {
		t.Fatalf("pointer %v", err)
	}
}
