package fiberapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/etag"
)

// TestStaticServesAndShutsDown: the benchmarks' baseline answers the same
// bytes and shuts down cleanly (it has no live streams nor outage log).
func TestStaticServesAndShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Static([]byte(`{"ok":true}`))
	go func() { _ = s.Serve(ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/static")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"ok":true}` {
		t.Fatalf("GET /static = %d %q", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("ETag"), contentETag(body); got != want {
		t.Errorf("static ETag %q, want %q", got, want)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/static", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if r2, err := http.DefaultClient.Do(req); err != nil || r2.StatusCode != http.StatusNotModified {
		t.Errorf("static with If-None-Match: %v %v", r2, err)
	} else {
		r2.Body.Close()
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestContentETagIsTheMiddlewares: a response that keeps its ETag beside a
// cached body (home) gives the ETag fiber's etag middleware would, so a
// client's held validator survives whichever computed it.
func TestContentETagIsTheMiddlewares(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"me":{"full_name":"Nguyễn Văn Thử"},"unread_count":3}`)
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(etag.New())
	app.Get("/static", func(c *fiber.Ctx) error { return c.Send(body) })
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.Shutdown() }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/static")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("ETag"), contentETag(body); got != want || got == "" {
		t.Errorf("middleware ETag %q, contentETag %q", got, want)
	}
}
