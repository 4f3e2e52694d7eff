package fiberapi

import (
	"io/fs"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi/docs"
)

// assetTypes are the content types of the docs' assets by extension; the
// table is fixed so a host's mime.types cannot change them.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".txt": "text/plain; charset=utf-8",
}

// docsRoutes serves the human-readable reference at /v1/docs and its
// vendored assets. Both are public, like the document itself, so they must
// be registered before the /v1 group's token check.
func (s *Server) docsRoutes() {
	page := docs.Page("/v1/openapi.json")
	// Read once: embed.FS copies a file on every read.
	assets := map[string][]byte{}
	_ = fs.WalkDir(docs.Assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, err := fs.ReadFile(docs.Assets, name); err == nil {
				assets[name] = b
			}
		}
		return nil
	})
	s.app.Get("/v1/docs", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Set(fiber.HeaderContentSecurityPolicy, docs.ContentSecurityPolicy)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.Send(page)
	})
	s.app.Get(strings.TrimSuffix(docs.AssetPrefix, "/")+"/:name", func(c *fiber.Ctx) error {
		b, ok := assets[c.Params("name")] // a flat name: the map holds no path with a slash
		if !ok {
			return s.fail(c, idp.ErrNotFound)
		}
		ct, ok := assetTypes[path.Ext(c.Params("name"))]
		if !ok {
			ct = "text/plain; charset=utf-8" // the licenses
		}
		c.Set(fiber.HeaderContentType, ct)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		// Not immutable: the names carry no version, and update.sh may
		// replace the bundle; the ETag makes revalidation cheap.
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.Send(b)
	})
}
