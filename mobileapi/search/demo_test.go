package search

import (
	"testing"

	"github.com/onedoor/onedoor/mobileapi/democatalog"
)

// The contract's examples hold over the demo catalog.
func TestDemoCatalog(t *testing.T) {
	_, services, err := democatalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	ix := New(services)
	for text, want := range map[string]string{
		"dang ky khai sinh":            "1.001193",
		"Đăng ký khai sinh":            "1.001193",
		"khai si":                      "1.001193",
		"birth registration":           "1.001193",
		"1.001193":                     "1.001193",
		"ly lich tu phap":              "2.001417",
		"cap lai the can cuoc":         "1.010081",
		"doi giay phep lai xe":         "1.012714",
		"driving licence renewal":      "1.012713",
		"tro cap that nghiep":          "1.001978",
		"bhxh mot lan":                 "",
		"bao hiem xa hoi mot lan":      "1.002024",
		"giay phep xay dung nha":       "1.009794",
		"chung nhan quyen su dung dat": "1.012766",
		"ho kinh doanh":                "2.000575",
		"tam tru":                      "1.004222",
	} {
		hits := ix.Search(Query{Text: text, Limit: 3})
		switch {
		case want == "" && len(hits) > 0:
			t.Errorf("%q: %q, want nothing", text, codes(hits))
		case want != "" && (len(hits) == 0 || hits[0].Service.Code != want):
			t.Errorf("%q: %q, want %s first", text, codes(hits), want)
		}
	}
	// Equal scores go by name: cấp đổi before cấp lại.
	if got := codes(ix.Search(Query{Text: "the can cuoc"})); len(got) != 2 || got[0] != "1.010080" {
		t.Errorf("the can cuoc: %q", got)
	}
	if got := ix.Search(Query{Category: "residence"}); len(got) != 3 {
		t.Errorf("residence: %q", codes(got))
	}
}
