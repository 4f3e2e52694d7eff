package province

import (
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestAll(t *testing.T) {
	all := All()
	if len(all) != 34 {
		t.Fatalf("%d units, want 34", len(all))
	}
	codes, names, cities := map[string]bool{}, map[string]string{}, 0
	formers := 0
	for _, p := range all {
		if !regexp.MustCompile(`^[A-Z]{2,3}$`).MatchString(p.Code) || codes[p.Code] {
			t.Errorf("bad or repeated code %q", p.Code)
		}
		codes[p.Code] = true
		if p.Name.VI == "" || p.Name.EN == "" {
			t.Errorf("%s: name %+v", p.Code, p.Name)
		}
		if p.City {
			cities++
		}
		formers += len(p.Former)
		// No name of one unit may be the name of another.
		for _, n := range append(append([]string{p.Name.VI, p.Name.EN}, p.Former...), p.Aliases...) {
			f := Fold(n)
			if other, ok := names[f]; ok && other != p.Code {
				t.Errorf("%q names both %s and %s", n, other, p.Code)
			}
			names[f] = p.Code
			// Every name routes to its unit, alone and at the end of an
			// address.
			for _, addr := range []string{n, "Số 1, Phường Mẫu, " + n, "Xóm Demo, " + n + " (địa chỉ giả)"} {
				if got, ok := FromAddress(addr); !ok || got != p.Code {
					t.Errorf("FromAddress(%q) = %q, %v; want %s", addr, got, ok, p.Code)
				}
			}
		}
		if got, ok := Get(strings.ToLower(p.Code)); !ok || got.Code != p.Code {
			t.Errorf("Get(%s) = %+v, %v", p.Code, got, ok)
		}
	}
	// 6 centrally governed cities; 63 before the merger = 34 + 29 merged in.
	if cities != 6 || formers != 29 {
		t.Errorf("%d cities, %d former provinces; want 6 and 29", cities, formers)
	}
	// All returns copies.
	all[0].Aliases[0] = "changed"
	all[0].Code = "XX"
	if p := All()[0]; p.Code != "HN" || p.Aliases[0] == "changed" {
		t.Error("All shares its data")
	}
	if _, ok := Get("XX"); ok {
		t.Error("Get(XX) found something")
	}
}

func TestFullName(t *testing.T) {
	for code, want := range map[string][2]string{
		"HN":  {"Thành phố Hà Nội", "Hanoi City"},
		"HCM": {"Thành phố Hồ Chí Minh", "Ho Chi Minh City"},
		"LC":  {"Tỉnh Lào Cai", "Lao Cai Province"},
	} {
		p, _ := Get(code)
		if got := p.FullName(); got.VI != want[0] || got.EN != want[1] {
			t.Errorf("%s: %+v, want %q", code, got, want)
		}
	}
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Hà Nội":                  "ha noi",
		"  TP.  Hồ   Chí\tMinh\n": "tp. ho chi minh",
		"ĐÀ NẴNG":                 "da nang",
		"Đắk Lắk":                 "dak lak",
		"Thanh Hoá":               "thanh hoa", // tone on the other vowel
		"Thanh Hóa":               "thanh hoa",
		"Nghệ An":                 "nghe an",
		"Bà Rịa - Vũng Tàu":       "ba ria - vung tau",
		"Thừa Thiên Huế":          "thua thien hue",
		"Ha\u0300 N\u00f4\u0323i": "ha noi", // decomposed input
		"Ångström Ⅻ":              "angstrom ⅻ",
		"":                        "",
		"\xffHà":                  "\ufffdha",
		"ỹ ỵ ỷ ữ ự ử ừ ứ ư ợ ở ờ ớ ơ ộ ổ": "y y y u u u u u u o o o o o o o",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFromAddress(t *testing.T) {
	for _, tt := range []struct {
		addr, want string
	}{
		// The demo registry's addresses.
		{"1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)", "HN"},
		{"2 Đường Mẫu, Phường Ví Dụ, TP. Hồ Chí Minh (địa chỉ giả)", "HCM"},
		{"3 Ngõ Mẫu, Phường Kiểm Thử, Đà Nẵng (địa chỉ giả)", "DN"},
		{"4 Phố Mẫu, Phường Giả Lập, Cần Thơ (địa chỉ giả)", "CT"},
		// Spellings.
		{"12 Hàng Bạc, Hoàn Kiếm, Ha Noi", "HN"},
		{"12 Hang Bac, Hoan Kiem, HANOI", "HN"},
		{"Quận Ba Đình, HN", "HN"},
		{"Quận 1, TP.HCM", "HCM"},
		{"Quan 1, tphcm", "HCM"},
		{"District 1, Ho Chi Minh City, Vietnam", "HCM"},
		{"Quận 3, Sài Gòn", "HCM"},
		{"Thành phố Hồ Chí Minh", "HCM"},
		{"Hải Châu, Danang", "DN"},
		{"Buôn Ma Thuột, Daklak", "DLK"},
		{"Buôn Ma Thuột, Đắc Lắc", "DLK"},
		{"Thành phố Thanh Hoá, tỉnh Thanh Hoá", "TH"},
		{"Phường Vĩnh Ninh, Thừa Thiên - Huế", "HUE"},
		// Pre-2025 provinces route to the unit they merged into.
		{"Phường Phú Hòa, Thủ Dầu Một, Bình Dương", "HCM"},
		{"Phường 1, TP. Vũng Tàu, Bà Rịa - Vũng Tàu", "HCM"},
		{"TP. Hải Dương, tỉnh Hải Dương", "HP"},
		{"Thành phố Nam Định, Nam Định", "NB"},
		{"Hội An, Quảng Nam", "DN"},
		{"Rạch Giá, Kiên Giang", "AG"},
		{"Tân An, Long An", "TNI"},
		{"Vị Thanh, Hậu Giang", "CT"},
		{"Gia Nghĩa, Đắk Nông", "LD"},
		{"Quy Nhơn, Bình Định", "GL"},
		// Two units named: the one nearest the end wins.
		{"Khu công nghiệp Hải Dương, Hà Nội", "HN"},
		{"Số 5 Lê Lợi, Hà Nội cũ, nay Đà Nẵng", "DN"},
		{"Quê quán Nghệ An, thường trú Quận 7, TP. Hồ Chí Minh", "HCM"},
		{"Ho Chi Minh City office, 10 Tràng Tiền, Hà Nội", "HN"},
		{"Nguyễn Văn Demo, Hà Nội — tạm trú Cần Thơ", "CT"},
		// Streets and lower units named after a unit are not the unit.
		{"123 Điện Biên Phủ, Phường 15, Bình Thạnh, TP.HCM", "HCM"},
		{"Số 9 đường Hồ Chí Minh, Phường Vinh Tân, Nghệ An", "NA"},
		{"45 phố Huế, Hai Bà Trưng, Hà Nội", "HN"},
		{"8 đại lộ Bình Dương, Thuận An, Tây Ninh", "TNI"},
		{"Xã Hòa Bình, Đồng Nai", "DNA"},
		{"12 Nguyễn Huệ, Quận 1", ""},
		{"Đường Hòa Bình, Quận 11", ""},
		{"Số 1 Điện Biên Phủ, Ba Đình", ""},
		// "Lạc Long Quân, Hà Nội": a comma ends the street's name.
		{"100 Lạc Long Quân, Hà Nội", "HN"},
		// Nothing.
		{"", ""},
		{"Số 1, Phường Mẫu", ""},
		{"Hanoian street food", ""},
		{"Nội Bài", ""},
	} {
		got, ok := FromAddress(tt.addr)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("FromAddress(%q) = %q, %v; want %q", tt.addr, got, ok, tt.want)
		}
	}
}

func FuzzFromAddress(f *testing.F) {
	for _, s := range []string{"1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)", "Quận 1, TP.HCM",
		"123 Điện Biên Phủ, Đà Nẵng", "Thừa Thiên - Huế", "Hà Nội", "\xff\xfe", "đường Hòa Bình",
		"Å̊ ǅ ß ẞ İ ı Ω K ﬃ", strings.Repeat("hà nội ", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		folded := Fold(s)
		if !utf8.ValidString(folded) {
			t.Fatalf("Fold(%q) = %q: invalid UTF-8", s, folded)
		}
		if Fold(folded) != folded {
			t.Fatalf("Fold is not idempotent: %q -> %q -> %q", s, folded, Fold(folded))
		}
		if strings.Contains(folded, "  ") || strings.TrimSpace(folded) != folded {
			t.Fatalf("Fold(%q) = %q: white space not collapsed", s, folded)
		}
		code, ok := FromAddress(s)
		if ok != (code != "") {
			t.Fatalf("FromAddress(%q) = %q, %v", s, code, ok)
		}
		if ok {
			if _, known := Get(code); !known {
				t.Fatalf("FromAddress(%q) = unknown code %q", s, code)
			}
		}
		// Folding first changes nothing: the match is on folded text.
		if c2, _ := FromAddress(folded); c2 != code {
			t.Fatalf("FromAddress(%q) = %q but of its folding %q", s, code, c2)
		}
	})
}

// The catalog search folds from many goroutines; run with -race.
func TestFoldConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if Fold("Thành phố Hồ Chí Minh") != "thanh pho ho chi minh" {
					t.Error("wrong fold")
					return
				}
				if c, _ := FromAddress("Quận 1, TP.HCM"); c != "HCM" {
					t.Error("wrong unit")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkFromAddress(b *testing.B) {
	addr := "Số 12, ngõ 34, phố Hàng Bạc, Phường Hoàn Kiếm, Thành phố Hà Nội (địa chỉ giả)"
	for b.Loop() {
		if _, ok := FromAddress(addr); !ok {
			b.Fatal("not found")
		}
	}
}
