package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// fold reduces text to the form the index compares: lower case, without
// diacritics (NFD, combining marks dropped, đ and Đ as d, which Unicode does
// not decompose), runs of white space as one space, trimmed. Vietnamese
// typed without tone marks, as many people type it on a phone, then equals
// the text with them: fold("Đăng  ký") == fold("dang ky") == "dang ky".
func fold(s string) string {
	if isFolded(s) {
		return s // the common typed query: no allocation
	}
	// Lower case first: a few capitals lower to letters with marks that
	// NFD then takes apart, which keeps fold idempotent.
	s = norm.NFD.String(strings.ToLower(s))
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r) || r == utf8.RuneError:
			// Invalid UTF-8 separates words like a space rather than
			// becoming U+FFFD, which garbage elsewhere would match.
			space = b.Len() > 0
			continue
		case r == 'đ' || r == 'Đ':
			r = 'd'
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// isFolded reports whether fold would return s unchanged because it is
// printable ASCII in lower case with single spaces between words.
func isFolded(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') || c < ' ' || c == 0x7f {
			return false
		}
		if c == ' ' && (i == 0 || i == len(s)-1 || s[i-1] == ' ') {
			return false
		}
	}
	return true
}

// tokens appends the words of folded text to dst: runs of letters and
// digits, everything else separating them ("khai-sinh, 2026" has three).
func tokens(dst []string, folded string) []string {
	start := -1
	for i, r := range folded {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			dst = append(dst, folded[start:i])
			start = -1
		}
	}
	if start >= 0 {
		dst = append(dst, folded[start:])
	}
	return dst
}

// foldWords appends the words of fold(text) to dst, as tokens(dst,
// fold(text)) does, but folds word by word through memo, which pays when
// the same words recur, as they do in a catalog. A word's marks stay with
// it when splitting, and separators are never marks, so the words are the
// same either way.
func foldWords(dst []string, text string, memo map[string]string) []string {
	start := -1
	flush := func(end int) {
		w := text[start:end]
		f, ok := memo[w]
		if !ok {
			f = fold(w)
			memo[w] = f
		}
		dst = tokens(dst, f)
		start = -1
	}
	for i, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			flush(i)
		}
	}
	if start >= 0 {
		flush(len(text))
	}
	return dst
}
