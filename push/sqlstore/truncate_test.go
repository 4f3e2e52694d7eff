package sqlstore

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// An error cut mid-character would be refused by PostgreSQL as text and
// fail the whole outcome's record.
func TestTruncateKeepsCharacters(t *testing.T) {
	for _, s := range []string{
		strings.Repeat("ả", 300),              // 2 bytes each: a cut at 500 falls between characters
		"x" + strings.Repeat("ả", 300),        // and here inside one
		"lỗi: " + strings.Repeat("\xff", 600), // a provider's answer that is not UTF-8
		strings.Repeat("😀", 200),              // 4 bytes each
		"short",
	} {
		got := truncate(s, 500)
		if len(got) > 500 || !utf8.ValidString(got) {
			t.Errorf("truncate(%.20q…, 500): %d bytes, valid %v", s, len(got), utf8.ValidString(got))
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); !strings.HasPrefix(want, got) || len(want)-len(got) > 0 && len(got) < 497 {
			t.Errorf("truncate(%.20q…, 500) = %d bytes, not the longest prefix", s, len(got))
		}
	}
}
