package search

import (
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/onedoor/onedoor/mobileapi"
)

func svc(code, category, nameVI, nameEN, descVI, descEN string) *mobileapi.Service {
	return &mobileapi.Service{
		ID: "svc_" + code, Code: code, Category: category,
		Name:        mobileapi.Text{VI: nameVI, EN: nameEN},
		Description: mobileapi.Text{VI: descVI, EN: descEN},
	}
}

// catalog is a small demo catalog (fake codes).
func catalog() []*mobileapi.Service {
	return []*mobileapi.Service{
		svc("1.001193", "civil_status", "Đăng ký khai sinh", "Birth registration",
			"Đăng ký khai sinh cho trẻ em, liên thông cấp thẻ bảo hiểm y tế và đăng ký thường trú.",
			"Registers a child's birth, linked with the health-insurance card and permanent residence registration."),
		svc("2.000528", "civil_status", "Đăng ký khai sinh có yếu tố nước ngoài", "Birth registration with a foreign element",
			"Khai sinh cho trẻ có cha hoặc mẹ là người nước ngoài.", "For a child with a foreign parent."),
		svc("1.000656", "civil_status", "Đăng ký khai tử", "Death registration",
			"Đăng ký việc một người đã chết.", "Registers a death."),
		svc("1.004873", "civil_status", "Cấp bản sao trích lục khai sinh", "Certified copy of a birth certificate extract",
			"Cấp bản sao từ sổ hộ tịch.", "A copy from the civil status register."),
		svc("1.001255", "residence", "Đăng ký thường trú", "Permanent residence registration",
			"Đăng ký nơi thường trú của công dân.", "Registers a citizen's permanent residence."),
		svc("1.001976", "residence", "Đăng ký tạm trú", "Temporary residence registration",
			"Đăng ký nơi tạm trú.", "Registers a temporary residence."),
		svc("2.001417", "justice", "Cấp phiếu lý lịch tư pháp", "Judicial record certificate",
			"Cấp phiếu lý lịch tư pháp cho công dân Việt Nam.", "Issues a judicial record certificate."),
		svc("1.002804", "transport", "Cấp đổi giấy phép lái xe", "Driving licence exchange",
			"Đổi giấy phép lái xe do ngành Giao thông vận tải cấp.", "Exchanges a driving licence."),
		svc("1.010033", "identity", "Cấp lại thẻ căn cước", "Identity card re-issue",
			"Cấp lại thẻ căn cước khi bị mất.", "Re-issues a lost identity card."),
	}
}

func codes(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Service.Code
	}
	return out
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Đăng ký khai sinh":            "dang ky khai sinh",
		"  ĐĂNG   KÝ\tKHAI\nsinh  ":    "dang ky khai sinh",
		"dang ky khai sinh":            "dang ky khai sinh",
		"Phiếu lý lịch tư pháp":        "phieu ly lich tu phap",
		"Thường trú, tạm trú":          "thuong tru, tam tru",
		"Cấp lại thẻ căn cước":         "cap lai the can cuoc",
		"Nghĩa vụ quân sự":             "nghia vu quan su",
		"Ưu đãi người có công":         "uu dai nguoi co cong",
		"Đ đ D d":                      "d d d d",
		"Birth Registration":           "birth registration",
		"1.001193":                     "1.001193",
		"":                             "",
		"   ":                          "",
		"\u0110a\u0306ng ky\u0301":     "dang ky", // typed decomposed
		"Hồ Chí Minh\u00a0City":        "ho chi minh city",
		"Bảo hiểm xã hội một lần":      "bao hiem xa hoi mot lan",
		"Giấy chứng nhận QSDĐ":         "giay chung nhan qsdd",
		"İstanbul":                     "istanbul",
		"invalid \xff utf-8":           "invalid utf-8",
		"ab\xffcd":                     "ab cd",
		"Quyền sử dụng đất lần đầu.":   "quyen su dung dat lan dau.",
		"Hộ kinh doanh (cá thể)":       "ho kinh doanh (ca the)",
		"Trợ cấp thất nghiệp — BHXH":   "tro cap that nghiep — bhxh",
		"Xây dựng\u3000nhà ở riêng lẻ": "xay dung nha o rieng le",
	} {
		if got := fold(in); got != want {
			t.Errorf("fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokens(t *testing.T) {
	got := tokens(nil, fold("Hộ kinh doanh (cá thể), khai-sinh 2026"))
	want := []string{"ho", "kinh", "doanh", "ca", "the", "khai", "sinh", "2026"}
	if !slices.Equal(got, want) {
		t.Errorf("tokens = %q, want %q", got, want)
	}
}

func TestSearchExamples(t *testing.T) {
	ix := New(catalog())
	for _, tc := range []struct {
		text  string
		first string   // the best hit
		all   []string // when set, exactly these hits in this order
	}{
		{text: "dang ky khai sinh", all: []string{"1.001193", "2.000528"}},
		{text: "Đăng ký khai sinh", all: []string{"1.001193", "2.000528"}},
		{text: "ĐĂNG KÝ KHAI SINH", all: []string{"1.001193", "2.000528"}},
		{text: "đang ky khai sinh", all: []string{"1.001193", "2.000528"}}, // đ for d
		{text: "khai si", first: "1.001193"},                               // the last word a prefix
		{text: "khai sinh", all: []string{"1.001193", "1.004873", "2.000528"}},
		{text: "birth registration", all: []string{"1.001193", "2.000528"}},
		{text: "Birth", first: "1.001193"},
		{text: "1.001193", all: []string{"1.001193"}},
		{text: " 1.002804 ", all: []string{"1.002804"}},
		{text: "ly lich tu phap", all: []string{"2.001417"}},
		{text: "the can cuoc", all: []string{"1.010033"}},
		{text: "giay phep lai xe", all: []string{"1.002804"}},
		{text: "thuong tru", first: "1.001255"}, // also in the birth registration's description
		{text: "bao hiem y te", all: []string{"1.001193"}},
		{text: "driving licence", all: []string{"1.002804"}},
		{text: "khai sinh ket hon", all: []string{}},
		{text: "xyz", all: []string{}},
	} {
		got := codes(ix.Search(Query{Text: tc.text}))
		if tc.all != nil && !slices.Equal(got, tc.all) {
			t.Errorf("Search(%q) = %q, want %q", tc.text, got, tc.all)
		}
		if tc.first != "" && (len(got) == 0 || got[0] != tc.first) {
			t.Errorf("Search(%q) = %q, want %s first", tc.text, got, tc.first)
		}
	}
}

func TestSearchPrefixOnlyWhileTyping(t *testing.T) {
	ix := New(catalog())
	if got := codes(ix.Search(Query{Text: "khai si"})); !slices.Contains(got, "1.001193") {
		t.Errorf(`"khai si" = %q, want the birth registration`, got)
	}
	// A space after the last word means it is complete: "si" is no word.
	if got := ix.Search(Query{Text: "khai si "}); len(got) != 0 {
		t.Errorf(`"khai si " = %q, want nothing`, codes(got))
	}
	// Only the last word is a prefix.
	if got := ix.Search(Query{Text: "kha sinh"}); len(got) != 0 {
		t.Errorf(`"kha sinh" = %q, want nothing`, codes(got))
	}
}

func TestSearchRanking(t *testing.T) {
	ix := New([]*mobileapi.Service{
		svc("C1", "construction", "Cấp giấy phép xây dựng", "Building permit", "", ""),
		svc("C2", "construction", "Giấy phép xây dựng tạm thời", "Temporary building permit", "", ""),
		svc("C3", "construction", "Điều chỉnh giấy phép xây dựng", "Building permit amendment", "", ""),
		svc("C4", "construction", "Xây dựng: gia hạn giấy phép", "Building permit extension", "", ""),
		svc("C5", "construction", "Thẩm định thiết kế xây dựng", "Design appraisal",
			"Thẩm định trước khi cấp giấy phép.", ""),
		svc("C6", "construction", "Giấy phép xây dựng", "Building permit (general)", "", ""),
		svc("C7", "construction", "Thông báo khởi công", "Notice of commencement",
			"Báo giấy phép và xây dựng.", ""),
		svc("T1", "transport", "Cấp giấy phép lái xe", "Driving licence", "", ""),
	})
	hits := ix.Search(Query{Text: "giay phep xay dung"})
	// Name equal, name starts with the phrase, phrase inside (C1 before C3:
	// the phrase is more of its name), every word in the name, two words
	// in the name and the rest in the description, every word in the
	// description alone.
	want := []string{"C6", "C2", "C1", "C3", "C4", "C5", "C7"}
	if got := codes(hits); !slices.Equal(got, want) {
		t.Fatalf("order = %q, want %q", got, want)
	}
	scores := make([]float64, len(hits))
	for i, h := range hits {
		scores[i] = h.Score
	}
	wantScores := []float64{400, 350 + 40*4/6, 300 + 40*4/5, 300 + 40*4/6, 200 + 40*4/6, 125, 100}
	if !slices.Equal(scores, wantScores) {
		t.Errorf("scores = %v, want %v", scores, wantScores)
	}
}

func TestSearchTiesByNameThenCode(t *testing.T) {
	ix := New([]*mobileapi.Service{
		svc("B", "land", "Đăng ký đất đai", "Land registration", "", ""),
		svc("D", "land", "Đăng ký đất đai", "Land registration", "", ""),
		svc("A", "land", "Đăng ký đất đai", "Land registration", "", ""),
		svc("C", "land", "Đăng ký đất đại", "Land registration", "", ""),
	})
	// Same score: by folded name, then name (C's tone mark sorts it last),
	// then code.
	want := []string{"A", "B", "D", "C"}
	for range 5 { // and the same every time
		if got := codes(ix.Search(Query{Text: "dat dang"})); !slices.Equal(got, want) {
			t.Fatalf("order = %q, want %q", got, want)
		}
	}
}

func TestSearchCategoryAndListing(t *testing.T) {
	ix := New(catalog())
	got := codes(ix.Search(Query{Text: "dang ky", Category: "residence"}))
	if !slices.Equal(got, []string{"1.001976", "1.001255"}) { // tạm < thường
		t.Errorf("residence = %q", got)
	}
	// Without text: the category by Vietnamese name.
	got = codes(ix.Search(Query{Category: "civil_status"}))
	want := []string{"1.004873", "1.001193", "2.000528", "1.000656"}
	if !slices.Equal(got, want) {
		t.Errorf("civil_status by name = %q, want %q", got, want)
	}
	// ... by English name with Lang en.
	got = codes(ix.Search(Query{Category: "civil_status", Lang: "en"}))
	want = []string{"1.001193", "2.000528", "1.004873", "1.000656"}
	if !slices.Equal(got, want) {
		t.Errorf("civil_status by English name = %q, want %q", got, want)
	}
	// Punctuation alone is no text.
	if got := ix.Search(Query{Text: " ?! ", Category: "justice"}); len(got) != 1 || got[0].Score != 0 {
		t.Errorf("punctuation = %v", got)
	}
	if got := ix.Search(Query{Category: "nope"}); got != nil {
		t.Errorf("unknown category = %q", codes(got))
	}
	if got := ix.Search(Query{Text: "1.001193", Category: "residence"}); got != nil {
		t.Errorf("code in another category = %q", codes(got))
	}
	if got := len(ix.Search(Query{})); got != len(catalog()) {
		t.Errorf("everything = %d services", got)
	}
}

func TestSearchPaging(t *testing.T) {
	ix := New(catalog())
	for _, q := range []Query{{Text: "dang ky"}, {}, {Text: "d"}} {
		all := codes(ix.Search(q))
		var paged []string
		for off := 0; ; off += 2 {
			q.Offset, q.Limit = off, 2
			page := codes(ix.Search(q))
			paged = append(paged, page...)
			if len(page) < 2 {
				break
			}
		}
		if !slices.Equal(paged, all) {
			t.Errorf("%q: pages = %q, all = %q", q.Text, paged, all)
		}
		q.Offset, q.Limit = -3, 0
		if got := codes(ix.Search(q)); !slices.Equal(got, all) {
			t.Errorf("%q: negative offset = %q", q.Text, got)
		}
		q.Offset = len(all)
		if got := ix.Search(q); got != nil {
			t.Errorf("%q: past the end = %q", q.Text, codes(got))
		}
	}
}

func TestSearchManyWords(t *testing.T) {
	ix := New(catalog())
	text := ""
	for i := range 200 {
		text += string(rune('a'+i%26)) + string(rune('a'+i/26)) + " "
	}
	_ = ix.Search(Query{Text: text + "khai sinh"})
	if got := New(nil).Search(Query{Text: "khai"}); got != nil {
		t.Errorf("empty index = %v", got)
	}
	if ix.Len() != len(catalog()) || ix.Version() != 0 {
		t.Errorf("Len %d, Version %d", ix.Len(), ix.Version())
	}
}

func FuzzSearch(f *testing.F) {
	for _, s := range []string{"dang ky khai sinh", "Đăng ký", "khai si", "1.001193", " ", "\xff\xfe", "đ\u0301\u0300 Ð", "a b c d e f"} {
		f.Add(s, "", 0, 0)
	}
	f.Add("dang", "civil_status", 1, 2)
	ix := New(catalog())
	f.Fuzz(func(t *testing.T, text, category string, offset, limit int) {
		folded := fold(text)
		if !utf8.ValidString(folded) {
			t.Fatalf("fold(%q) = %q, not UTF-8", text, folded)
		}
		if again := fold(folded); again != folded {
			t.Fatalf("fold not idempotent on %q: %q then %q", text, folded, again)
		}
		if a, b := tokens(nil, folded), foldWords(nil, text, map[string]string{}); !slices.Equal(a, b) {
			t.Fatalf("words of %q: %q folded whole, %q word by word", text, a, b)
		}
		hits := ix.Search(Query{Text: text, Category: category, Offset: offset, Limit: limit})
		if limit > 0 && len(hits) > limit {
			t.Fatalf("%d hits, limit %d", len(hits), limit)
		}
		for i := 1; i < len(hits); i++ {
			if hits[i].Score > hits[i-1].Score {
				t.Fatalf("hits not ordered by score: %v", hits)
			}
		}
	})
}

func TestGet(t *testing.T) {
	s := &mobileapi.Service{ID: "svc_1", Code: "1.1", Name: mobileapi.Text{VI: "Đăng ký khai sinh", EN: "Birth registration"}}
	ix := New([]*mobileapi.Service{s, nil})
	if ix.Get("svc_1") != s || ix.Get("svc_2") != nil {
		t.Error("Get does not find services by id")
	}
}

func TestCountOwnedBy(t *testing.T) {
	ix := New([]*mobileapi.Service{{ID: "1", AgencyCode: "A"}, {ID: "2", AgencyCode: "B"}, {ID: "3", AgencyCode: "A"}})
	if ix.CountOwnedBy("A") != 2 || ix.CountOwnedBy("C") != 0 {
		t.Errorf("CountOwnedBy: %d, %d", ix.CountOwnedBy("A"), ix.CountOwnedBy("C"))
	}
}
