package search

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/onedoor/onedoor/mobileapi"
)

// generated returns n services with names composed the way the national
// portal's procedures are named (an action, a subject, a qualifier), in
// both languages, from a fixed seed.
func generated(n int) []*mobileapi.Service {
	type part struct{ vi, en string }
	actions := []part{
		{"Đăng ký", "Registration of"}, {"Cấp", "Issue of"}, {"Cấp lại", "Re-issue of"},
		{"Cấp đổi", "Exchange of"}, {"Gia hạn", "Renewal of"}, {"Điều chỉnh", "Amendment of"},
		{"Thay đổi, cải chính", "Correction of"}, {"Xác nhận", "Confirmation of"},
		{"Chứng thực", "Certification of"}, {"Thu hồi", "Revocation of"},
		{"Giải quyết", "Settlement of"}, {"Trích lục", "Extract of"}, {"Công nhận", "Recognition of"},
		{"Thẩm định", "Appraisal of"}, {"Xóa đăng ký", "Deregistration of"},
	}
	subjects := []part{
		{"khai sinh", "birth"}, {"khai tử", "death"}, {"kết hôn", "marriage"},
		{"nhận cha, mẹ, con", "parentage"}, {"giám hộ", "guardianship"},
		{"thường trú", "permanent residence"}, {"tạm trú", "temporary residence"},
		{"phiếu lý lịch tư pháp", "judicial record certificate"},
		{"giấy phép lái xe", "driving licence"}, {"thẻ căn cước", "identity card"},
		{"hộ kinh doanh", "business household"}, {"doanh nghiệp tư nhân", "private enterprise"},
		{"giấy phép xây dựng", "building permit"},
		{"giấy chứng nhận quyền sử dụng đất", "land-use-right certificate"},
		{"trợ cấp thất nghiệp", "unemployment benefit"}, {"bảo hiểm xã hội một lần", "lump-sum social insurance"},
		{"thẻ bảo hiểm y tế", "health-insurance card"}, {"biển số xe", "vehicle plate"},
		{"giấy phép kinh doanh vận tải", "transport business licence"},
		{"chứng chỉ hành nghề", "practising certificate"}, {"hợp đồng chuyển nhượng", "transfer contract"},
		{"di chúc", "will"}, {"nghĩa vụ quân sự", "military service"}, {"quốc tịch", "nationality"},
	}
	qualifiers := []part{
		{"", ""}, {"có yếu tố nước ngoài", "with a foreign element"}, {"lưu động", "mobile"},
		{"cho người nước ngoài", "for foreigners"}, {"tại cấp xã", "at commune level"},
		{"tại cấp tỉnh", "at provincial level"}, {"trực tuyến toàn trình", "fully online"},
		{"cho người Việt Nam định cư ở nước ngoài", "for overseas Vietnamese"},
		{"trong trường hợp bị mất, hư hỏng", "when lost or damaged"}, {"lần đầu", "first time"},
	}
	provinces := []string{"Hà Nội", "TP. Hồ Chí Minh", "Đà Nẵng", "Hải Phòng", "Cần Thơ", "Huế", "Quảng Ninh", "Nghệ An", "Đắk Lắk", "Bình Dương"}
	categories := []string{"civil_status", "residence", "justice", "transport", "identity", "business", "social_insurance", "construction", "land"}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]*mobileapi.Service, n)
	for i := range out {
		a, s, q := actions[rng.IntN(len(actions))], subjects[rng.IntN(len(subjects))], qualifiers[rng.IntN(len(qualifiers))]
		p := provinces[rng.IntN(len(provinces))]
		vi, en := a.vi+" "+s.vi, a.en+" "+s.en
		if q.vi != "" {
			vi, en = vi+" "+q.vi, en+" "+q.en
		}
		out[i] = &mobileapi.Service{
			ID:       fmt.Sprintf("svc_%026d", i),
			Code:     fmt.Sprintf("%d.%06d", 1+i%3, i),
			Category: categories[rng.IntN(len(categories))],
			Name:     mobileapi.Text{VI: vi, EN: en},
			Description: mobileapi.Text{
				VI: "Thủ tục " + vi + " do Ủy ban nhân dân " + p + " giải quyết, nộp hồ sơ trực tuyến trên Cổng dịch vụ công.",
				EN: en + ", handled by the People's Committee of " + p + ", applied for online on the public service portal.",
			},
		}
	}
	return out
}

func BenchmarkSearch(b *testing.B) {
	ix := New(generated(5000))
	for _, q := range []Query{
		{Text: "dang ky khai sinh", Limit: 21},
		{Text: "Đăng ký khai sinh có yếu tố nước ngoài", Limit: 21},
		{Text: "khai si", Limit: 21},
		{Text: "giay phep lai xe", Limit: 21},
		{Text: "birth registration", Limit: 21},
		{Text: "d", Limit: 21},      // a prefix of many words: the worst case
		{Text: "ha noi", Limit: 21}, // every word in descriptions only
		{Text: "tro cap", Category: "social_insurance", Limit: 21},
		{Text: "1.001194", Limit: 21}, // a code
		{Category: "land", Limit: 21},
	} {
		name := q.Text
		if name == "" {
			name = "category " + q.Category
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			hits := 0
			for b.Loop() {
				hits = len(ix.Search(q))
			}
			b.ReportMetric(float64(hits), "hits")
		})
	}
}

func BenchmarkNew(b *testing.B) {
	services := generated(5000)
	b.ReportAllocs()
	for b.Loop() {
		New(services)
	}
}
