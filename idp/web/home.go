package web

import (
	"net/http"
	"strings"
)

// homeTexts is the issuer's front page: someone who opens the IdP's URL in
// a browser learns what it is and where a relying party starts.
var homeTexts = map[string][2]string{
	"vi": {"Máy chủ định danh OneDoor", "Đây là máy chủ định danh (OpenID Connect) của cổng dịch vụ công OneDoor. Công dân đăng nhập qua trang web của cơ quan; cơ quan tích hợp theo tài liệu khám phá dưới đây."},
	"en": {"OneDoor identity provider", "This is the OpenID Connect identity provider of the OneDoor public-service platform. Citizens log in through an agency's site; agencies integrate from the discovery document below."},
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r)
	h := homeTexts[lang]
	p := s.messagePage(lang)
	name := strings.NewReplacer(DefaultBrandName, p.Brand.Name)
	p.Title, p.Message, p.Detail = name.Replace(h[0]), name.Replace(h[1]), s.cfg.Issuer+PathDiscovery
	s.renderHTML(w, http.StatusOK, "message.html", p, "")
}
