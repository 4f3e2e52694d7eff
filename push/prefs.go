package push

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// ErrQuota is returned when a citizen has MaxInstallations already.
var ErrQuota = errors.New("push: too many installations")

// Channel is how one kind of notification reaches the citizen.
type Channel string

// Channels. The inbox keeps the record of every decision whatever the
// channel: a preference governs interruptions, not the record.
const (
	ChannelPush  Channel = "push"  // a push, the live stream and the inbox
	ChannelInbox Channel = "inbox" // the inbox and the live stream only
	ChannelOff   Channel = "off"   // no push and no live event
)

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool { return c == ChannelPush || c == ChannelInbox || c == ChannelOff }

// DefaultTimeZone is where quiet hours are counted when a citizen set none.
const DefaultTimeZone = "Asia/Ho_Chi_Minh"

// MaxServicePreferences bounds the services one citizen sets preferences
// for, so the stored document stays small.
const MaxServicePreferences = 200

// Preferences are a citizen's choices about notifications.
type Preferences struct {
	CitizenID string
	// TimeZone is an IANA zone name; quiet hours are in it.
	TimeZone string
	// Quiet, when set, holds back pushes (login approvals excepted) from
	// Start until End, local time; End before Start spans midnight.
	Quiet *QuietHours
	// Kinds sets the channel per kind; a kind left out is pushed.
	Kinds map[Kind]Channel
	// Services overrides Kinds per service code.
	Services  map[string]ServicePreferences
	UpdatedAt time.Time
}

// QuietHours are "HH:MM" local times.
type QuietHours struct {
	Start string
	End   string
}

// ServicePreferences are a citizen's choices for one service.
type ServicePreferences struct {
	Kinds map[Kind]Channel
	// FullText lets the service's pushes carry the message's own text
	// instead of the generic one.
	FullText bool
}

// DefaultPreferences are what a citizen who chose nothing gets: every kind
// pushed, generic text, no quiet hours.
func DefaultPreferences(citizenID string) *Preferences {
	return &Preferences{CitizenID: citizenID, TimeZone: DefaultTimeZone}
}

// Validate checks p, naming the bad field (as a JSON Pointer) in the error,
// which wraps idp.ErrInvalid.
func (p *Preferences) Validate() error {
	if p.TimeZone != "" {
		if _, err := time.LoadLocation(p.TimeZone); err != nil || strings.Contains(p.TimeZone, "..") || p.TimeZone == "Local" {
			return invalid("/time_zone", "not an IANA time zone")
		}
	}
	if q := p.Quiet; q != nil {
		if _, ok := clock(q.Start); !ok {
			return invalid("/quiet_hours/start", "not an HH:MM time")
		}
		if _, ok := clock(q.End); !ok {
			return invalid("/quiet_hours/end", "not an HH:MM time")
		}
		if q.Start == q.End {
			return invalid("/quiet_hours/end", "equals start")
		}
	}
	for k, c := range p.Kinds {
		if !k.Valid() {
			return invalid("/kinds/"+PointerToken(string(k)), "unknown kind")
		}
		if !c.Valid() {
			return invalid("/kinds/"+PointerToken(string(k)), "unknown channel")
		}
	}
	if len(p.Services) > MaxServicePreferences {
		return invalid("/services", fmt.Sprintf("at most %d services", MaxServicePreferences))
	}
	for code, sp := range p.Services {
		if code == "" || len(code) > 64 {
			return invalid("/services", "a service code is 1 to 64 characters")
		}
		for k, c := range sp.Kinds {
			if !k.Valid() {
				return invalid("/services/"+PointerToken(code)+"/kinds/"+PointerToken(string(k)), "unknown kind")
			}
			if !c.Valid() {
				return invalid("/services/"+PointerToken(code)+"/kinds/"+PointerToken(string(k)), "unknown channel")
			}
		}
	}
	return nil
}

// InvalidField is a preference that Validate refused.
type InvalidField struct {
	Pointer string // JSON Pointer into the preferences document
	Message string
}

func (e *InvalidField) Error() string { return e.Pointer + ": " + e.Message }

// Unwrap makes the error an idp.ErrInvalid.
func (e *InvalidField) Unwrap() error { return idp.ErrInvalid }

func invalid(pointer, msg string) error { return &InvalidField{Pointer: pointer, Message: msg} }

// PointerToken is a member name as a JSON Pointer token (RFC 6901), cut to 64
// bytes: the names come from the request.
func PointerToken(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "")
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// Channel returns how a message of kind about service reaches the citizen.
// Login approvals are always pushed: the citizen is waiting for one.
func (p *Preferences) Channel(kind Kind, service string) Channel {
	if kind == KindLoginApproval {
		return ChannelPush
	}
	if sp, ok := p.Services[service]; ok && service != "" {
		if c, ok := sp.Kinds[kind]; ok {
			return c
		}
	}
	if c, ok := p.Kinds[kind]; ok {
		return c
	}
	return ChannelPush
}

// FullText reports whether service's pushes may carry their own text.
func (p *Preferences) FullText(service string) bool {
	return service != "" && p.Services[service].FullText
}

// QuietUntil returns when the quiet hours that hold t end, or the zero time
// when t is not in quiet hours. Login approvals ignore quiet hours; the
// caller checks the kind.
func (p *Preferences) QuietUntil(t time.Time) time.Time {
	if p.Quiet == nil {
		return time.Time{}
	}
	start, ok1 := clock(p.Quiet.Start)
	end, ok2 := clock(p.Quiet.End)
	if !ok1 || !ok2 || start == end {
		return time.Time{}
	}
	loc, err := time.LoadLocation(p.TimeZone)
	if err != nil || p.TimeZone == "" {
		loc, _ = time.LoadLocation(DefaultTimeZone)
		if loc == nil {
			loc = time.UTC
		}
	}
	lt := t.In(loc)
	now := lt.Hour()*60 + lt.Minute()
	midnight := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
	at := func(day, minute int) time.Time {
		d := midnight.AddDate(0, 0, day)
		return time.Date(d.Year(), d.Month(), d.Day(), minute/60, minute%60, 0, 0, loc)
	}
	var until time.Time
	switch {
	case start < end: // 13:00–15:00
		if now >= start && now < end {
			until = at(0, end)
		}
	case now >= start: // 22:00–07:00, before midnight
		until = at(1, end)
	case now < end: // after midnight
		until = at(0, end)
	}
	if !until.After(t) {
		// The end falls in a repeated or skipped hour (a daylight-saving
		// change): time.Date picked an instant already past. Not holding
		// back beats holding back forever.
		return time.Time{}
	}
	return until
}

// clock parses "HH:MM" into minutes after midnight.
func clock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}
