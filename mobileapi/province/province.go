// Package province knows Vietnam's 34 provincial-level units, as they are
// since the merger of 12 June 2025 (Resolution 202/2025/QH15: 28 provinces
// and 6 centrally governed cities, from 63), and finds the one a free-text
// registry address names, so that an application goes to the competent
// agency.
//
// Codes are OneDoor's own short Latin abbreviations (HN, HCM, DN, ...),
// chosen to read well in agency codes such as "HN-HOANKIEM"; they are not
// the General Statistics Office's numeric codes. Where two names share
// initials the second takes a third letter: DN is Đà Nẵng and DNA Đồng
// Nai, TN Thái Nguyên and TNI Tây Ninh, QNI Quảng Ninh and QNG Quảng Ngãi,
// LC Lào Cai and LCH Lai Châu. The codes are stable: agencies and stored
// applications refer to them.
package province

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/onedoor/onedoor/mobileapi"
)

// Province is one provincial-level unit.
type Province struct {
	Code string
	// Name is the short name ("Hà Nội", "Hồ Chí Minh"; "Hanoi", "Ho Chi
	// Minh City").
	Name mobileapi.Text
	// City is true for the six centrally governed cities (thành phố trực
	// thuộc trung ương), false for provinces (tỉnh).
	City bool
	// Former are the pre-2025 provinces merged into this one, whose names
	// older registry addresses still carry.
	Former []string
	// Aliases are other ways addresses write the name: abbreviations,
	// unaccented and run-together spellings, older names.
	Aliases []string
}

// FullName is the name with its kind: "Thành phố Hà Nội" / "Hanoi City",
// "Tỉnh Lào Cai" / "Lao Cai Province".
func (p Province) FullName() mobileapi.Text {
	if p.City {
		return mobileapi.Text{VI: "Thành phố " + p.Name.VI, EN: strings.TrimSuffix(p.Name.EN, " City") + " City"}
	}
	return mobileapi.Text{VI: "Tỉnh " + p.Name.VI, EN: p.Name.EN + " Province"}
}

// provinces in the order of the resolution's list: the 11 units left as
// they were, then the 23 formed by merging.
var provinces = []Province{
	{Code: "HN", Name: mobileapi.Text{VI: "Hà Nội", EN: "Hanoi"}, City: true, Aliases: []string{"TP. Hà Nội", "HN", "TPHN", "Hà Tây"}},
	{Code: "HUE", Name: mobileapi.Text{VI: "Huế", EN: "Hue"}, City: true, Aliases: []string{"Thừa Thiên Huế", "Thừa Thiên - Huế", "TT Huế"}},
	{Code: "LCH", Name: mobileapi.Text{VI: "Lai Châu", EN: "Lai Chau"}},
	{Code: "DB", Name: mobileapi.Text{VI: "Điện Biên", EN: "Dien Bien"}},
	{Code: "SL", Name: mobileapi.Text{VI: "Sơn La", EN: "Son La"}},
	{Code: "LS", Name: mobileapi.Text{VI: "Lạng Sơn", EN: "Lang Son"}},
	{Code: "QNI", Name: mobileapi.Text{VI: "Quảng Ninh", EN: "Quang Ninh"}},
	{Code: "TH", Name: mobileapi.Text{VI: "Thanh Hóa", EN: "Thanh Hoa"}},
	{Code: "NA", Name: mobileapi.Text{VI: "Nghệ An", EN: "Nghe An"}},
	{Code: "HT", Name: mobileapi.Text{VI: "Hà Tĩnh", EN: "Ha Tinh"}},
	{Code: "CB", Name: mobileapi.Text{VI: "Cao Bằng", EN: "Cao Bang"}},

	{Code: "TQ", Name: mobileapi.Text{VI: "Tuyên Quang", EN: "Tuyen Quang"}, Former: []string{"Hà Giang"}},
	{Code: "LC", Name: mobileapi.Text{VI: "Lào Cai", EN: "Lao Cai"}, Former: []string{"Yên Bái"}},
	{Code: "TN", Name: mobileapi.Text{VI: "Thái Nguyên", EN: "Thai Nguyen"}, Former: []string{"Bắc Kạn"}, Aliases: []string{"Bắc Cạn"}},
	{Code: "PT", Name: mobileapi.Text{VI: "Phú Thọ", EN: "Phu Tho"}, Former: []string{"Vĩnh Phúc", "Hòa Bình"}},
	{Code: "BN", Name: mobileapi.Text{VI: "Bắc Ninh", EN: "Bac Ninh"}, Former: []string{"Bắc Giang"}},
	{Code: "HY", Name: mobileapi.Text{VI: "Hưng Yên", EN: "Hung Yen"}, Former: []string{"Thái Bình"}},
	{Code: "HP", Name: mobileapi.Text{VI: "Hải Phòng", EN: "Hai Phong"}, City: true, Former: []string{"Hải Dương"}, Aliases: []string{"Haiphong"}},
	{Code: "NB", Name: mobileapi.Text{VI: "Ninh Bình", EN: "Ninh Binh"}, Former: []string{"Hà Nam", "Nam Định"}},
	{Code: "QT", Name: mobileapi.Text{VI: "Quảng Trị", EN: "Quang Tri"}, Former: []string{"Quảng Bình"}},
	{Code: "DN", Name: mobileapi.Text{VI: "Đà Nẵng", EN: "Da Nang"}, City: true, Former: []string{"Quảng Nam"}, Aliases: []string{"Danang"}},
	{Code: "QNG", Name: mobileapi.Text{VI: "Quảng Ngãi", EN: "Quang Ngai"}, Former: []string{"Kon Tum"}, Aliases: []string{"Kontum"}},
	{Code: "GL", Name: mobileapi.Text{VI: "Gia Lai", EN: "Gia Lai"}, Former: []string{"Bình Định"}},
	{Code: "KH", Name: mobileapi.Text{VI: "Khánh Hòa", EN: "Khanh Hoa"}, Former: []string{"Ninh Thuận"}},
	{Code: "LD", Name: mobileapi.Text{VI: "Lâm Đồng", EN: "Lam Dong"}, Former: []string{"Đắk Nông", "Bình Thuận"}, Aliases: []string{"Daknong", "Đăk Nông"}},
	{Code: "DLK", Name: mobileapi.Text{VI: "Đắk Lắk", EN: "Dak Lak"}, Former: []string{"Phú Yên"}, Aliases: []string{"Daklak", "Đắc Lắc", "Đăk Lăk"}},
	{Code: "HCM", Name: mobileapi.Text{VI: "Hồ Chí Minh", EN: "Ho Chi Minh City"}, City: true,
		Former:  []string{"Bình Dương", "Bà Rịa - Vũng Tàu"},
		Aliases: []string{"TP. Hồ Chí Minh", "TP.HCM", "TPHCM", "HCM", "HCMC", "Hochiminh", "Sài Gòn", "Saigon", "Vũng Tàu", "Bà Rịa", "BRVT", "BR-VT"}},
	{Code: "DNA", Name: mobileapi.Text{VI: "Đồng Nai", EN: "Dong Nai"}, Former: []string{"Bình Phước"}},
	{Code: "TNI", Name: mobileapi.Text{VI: "Tây Ninh", EN: "Tay Ninh"}, Former: []string{"Long An"}},
	{Code: "CT", Name: mobileapi.Text{VI: "Cần Thơ", EN: "Can Tho"}, City: true, Former: []string{"Sóc Trăng", "Hậu Giang"}, Aliases: []string{"Cantho"}},
	{Code: "VL", Name: mobileapi.Text{VI: "Vĩnh Long", EN: "Vinh Long"}, Former: []string{"Bến Tre", "Trà Vinh"}},
	{Code: "DT", Name: mobileapi.Text{VI: "Đồng Tháp", EN: "Dong Thap"}, Former: []string{"Tiền Giang"}},
	{Code: "CM", Name: mobileapi.Text{VI: "Cà Mau", EN: "Ca Mau"}, Former: []string{"Bạc Liêu"}},
	{Code: "AG", Name: mobileapi.Text{VI: "An Giang", EN: "An Giang"}, Former: []string{"Kiên Giang"}},
}

// All returns the 34 units, each call a fresh copy.
func All() []Province {
	out := make([]Province, len(provinces))
	for i, p := range provinces {
		p.Former = slices.Clone(p.Former)
		p.Aliases = slices.Clone(p.Aliases)
		out[i] = p
	}
	return out
}

// Get returns the unit with the code (case-insensitive).
func Get(code string) (Province, bool) {
	for i := range provinces {
		if strings.EqualFold(provinces[i].Code, code) {
			p := provinces[i]
			p.Former = slices.Clone(p.Former)
			p.Aliases = slices.Clone(p.Aliases)
			return p, true
		}
	}
	return Province{}, false
}

// Fold brings text to the form names are compared in: lower case,
// diacritics removed (đ becomes d, which decomposition alone does not
// do), runs of white space made one space, trimmed. Invalid UTF-8 becomes
// U+FFFD. It is safe for concurrent use (no shared transformer state).
func Fold(s string) string {
	// Lower-casing first: it can make a letter that decomposes (the
	// Angstrom sign "Å" becomes "å"), and then NFD splits every letter
	// from its marks ("ế" is "e" and two marks), which go.
	s = norm.NFD.String(strings.ToLower(strings.ToValidUTF8(s, "\uFFFD")))
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.Is(unicode.Mn, r):
			return -1
		case r == 'đ' || r == 'ð':
			return 'd'
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// word is a run of letters and digits of folded text. glued is true when
// only spaces separate it from the word before: "Quân, Hà Nội" are three
// words, and "hà" is not glued to "quân".
type word struct {
	text  string
	glued bool
}

// words splits folded text into words; punctuation ("TP.HCM", "Hà Nội,",
// "(giả)") separates them.
func words(folded string) []word {
	var out []word
	glued := false
	start := -1
	for i, r := range folded {
		inWord := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case inWord && start < 0:
			start = i
		case !inWord && start >= 0:
			out = append(out, word{folded[start:i], glued})
			start, glued = -1, true
		}
		if !inWord && r != ' ' {
			glued = false
		}
	}
	if start >= 0 {
		out = append(out, word{folded[start:], glued})
	}
	return out
}

func texts(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out
}

// name is one way of writing a unit's name, as folded words; code "" marks
// a phrase that contains a unit's name without naming the unit.
type name struct {
	words []string
	code  string
}

// notProvinces are street names, written without "đường" or "phố", that
// hold a unit's name: "Điện Biên Phủ" streets are in every city, and
// "Nguyễn Huệ" is not Huế.
var notProvinces = []string{"Điện Biên Phủ", "Nguyễn Huệ"}

// lowerMarkers are words that, written right before a name, make it the
// name of a street or of a ward, commune or district rather than of a
// province: "đường Hòa Bình", "phố Huế", "xã Long An". "phố" does not
// count after "thành" (thành phố, city), nor "lộ" but after "đại" (đại lộ,
// avenue).
var lowerMarkers = map[string]bool{"duong": true, "pho": true, "lo": true, "ngo": true, "hem": true, "kiet": true,
	"phuong": true, "p": true, "xa": true, "quan": true, "q": true, "huyen": true}

// index maps a name's first word to the names starting with it, longest
// first.
var index = buildIndex()

func buildIndex() map[string][]name {
	idx := map[string][]name{}
	add := func(text, code string) {
		w := texts(words(Fold(text)))
		if len(w) == 0 {
			return
		}
		idx[w[0]] = append(idx[w[0]], name{words: w, code: code})
	}
	for _, p := range provinces {
		add(p.Name.VI, p.Code)
		add(p.Name.EN, p.Code)
		for _, s := range p.Former {
			add(s, p.Code)
		}
		for _, s := range p.Aliases {
			add(s, p.Code)
		}
	}
	for _, s := range notProvinces {
		add(s, "")
	}
	for _, ns := range idx {
		// Longest first, so that "Thừa Thiên Huế" is taken whole.
		slices.SortStableFunc(ns, func(a, b name) int { return len(b.words) - len(a.words) })
	}
	return idx
}

// FromAddress returns the code of the unit a free-text address names,
// comparing folded words (diacritics and case ignored). Vietnamese
// addresses end with the province, so when several units are named the
// one closest to the end wins: "Khu công nghiệp Hải Dương, Hà Nội" is HN,
// and an address naming a pre-2025 province ("Bình Dương") is the
// unit it merged into. A name right after "đường", "phố", "phường", "xã",
// "quận", ... (street or lower unit) does not count, nor do common street
// names holding a unit's name ("Nguyễn Huệ", "Điện Biên Phủ").
func FromAddress(addr string) (string, bool) {
	ws := words(Fold(addr))
	code := ""
	for i := 0; i < len(ws); {
		n, ok := longestAt(ws, i)
		if !ok {
			i++
			continue
		}
		if n.code != "" && !afterMarker(ws, i) {
			code = n.code
		}
		i += len(n.words)
	}
	return code, code != ""
}

// afterMarker reports whether ws[i] follows a lower marker word directly.
func afterMarker(ws []word, i int) bool {
	if i == 0 || !ws[i].glued {
		return false
	}
	m := ws[i-1].text
	if !lowerMarkers[m] {
		return false
	}
	before := ""
	if i >= 2 && ws[i-1].glued {
		before = ws[i-2].text
	}
	switch m {
	case "pho":
		return before != "thanh"
	case "lo":
		return before == "dai"
	}
	return true
}

// longestAt returns the longest name whose words start at ws[i].
func longestAt(ws []word, i int) (name, bool) {
	for _, n := range index[ws[i].text] {
		if len(n.words) > len(ws)-i {
			continue
		}
		if slices.EqualFunc(n.words, ws[i:i+len(n.words)], func(a string, b word) bool { return a == b.text }) {
			return n, true
		}
	}
	return name{}, false
}
