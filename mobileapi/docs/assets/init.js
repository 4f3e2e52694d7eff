// init.js renders the OneDoor contract with Redoc. It is a file rather than
// an inline script so the page's Content-Security-Policy can allow scripts
// from the server alone; the page names the document in data-spec-url.
(function () {
  "use strict";
  var el = document.getElementById("redoc");
  var system = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', sans-serif";
  Redoc.init(el.getAttribute("data-spec-url"), {
    expandResponses: "200,201",
    jsonSampleExpandLevel: 3,
    pathInMiddlePanel: true,
    // The fonts Redoc names by default are not loaded (no CDN): use the
    // system's, which cover Vietnamese.
    theme: {
      typography: {
        fontFamily: system,
        headings: { fontFamily: system },
      },
    },
  }, el);
})();
