package push

import (
	"errors"
	"testing"
	"time"

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
