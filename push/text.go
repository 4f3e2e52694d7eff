package push

import "unicode/utf8"

// genericText is what a push says when the citizen did not opt its service
// into full text: enough to decide whether to open the app, nothing that
// names a person, an application or a result on a locked screen.
var genericText = map[Kind][2]struct{ title, body string }{
	KindStatusChange: {
		{"Cổng Dịch vụ công", "Hồ sơ của bạn có cập nhật mới."},
		{"Public services", "There is an update on your application."},
	},
	KindResult: {
		{"Cổng Dịch vụ công", "Đã có kết quả giải quyết hồ sơ của bạn."},
		{"Public services", "A result is ready for your application."},
	},
	KindLoginApproval: {
		{"Yêu cầu đăng nhập", "Mở ứng dụng để xác nhận hoặc từ chối đăng nhập."},
		{"Login request", "Open the app to approve or deny a login."},
	},
	KindNotice: {
		{"Cổng Dịch vụ công", "Bạn có thông báo mới."},
		{"Public services", "You have a new notice."},
	},
}

// Compose returns the notification a message becomes on one installation:
// the generic text in the installation's locale, or the message's own text
// when fullText is set and it has one.
func Compose(m *Message, locale string, fullText bool) *Notification {
	lang := 0
	if locale == "en" {
		lang = 1
	}
	t, ok := genericText[m.Kind]
	if !ok {
		t = genericText[KindNotice]
	}
	n := &Notification{
		MessageID:   m.ID,
		Kind:        string(m.Kind),
		Title:       t[lang].title,
		Body:        t[lang].body,
		CollapseKey: m.CollapseKey,
		Priority:    m.Priority,
		Expires:     m.ExpiresAt,
	}
	if title := m.Title.In(locale); fullText && title != "" {
		// Cut to what every provider's payload holds with room to spare
		// (Web Push fits 3993 bytes): the app shows the rest after unlock.
		n.Title, n.Body = clip(title, maxTitle), clip(m.Body, maxBody)
	}
	return n
}

// Full text is cut to these many bytes.
const (
	maxTitle = 200
	maxBody  = 1000
)

// clip cuts s to at most n bytes at a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "…"
	cut := n - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}
