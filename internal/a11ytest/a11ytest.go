// Package a11ytest runs axe-core (vendored in assets/, see update.sh) in a
// chromedp tab and reports the page's accessibility violations. Only tests
// import it.
package a11ytest

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

	"github.com/chromedp/chromedp"
)

//go:embed assets/axe.min.js
var axeJS string

//go:embed assets/VERSION
var version string

// Version is the vendored axe-core's version.
func Version() string { return strings.TrimSpace(version) }

// Impacts axe gives a violation, least severe first.
const (
	Minor    = "minor"
	Moderate = "moderate"
	Serious  = "serious"
	Critical = "critical"
)

// Violation is one axe rule a page breaks, with the elements breaking it.
type Violation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	HelpURL string   `json:"helpUrl"`
	Nodes   []string `json:"nodes"` // CSS selectors of the offending elements
	// Summaries are axe's explanations per element (what to fix).
	Summaries []string `json:"summaries"`
}

// Severe reports whether the violation is serious or critical.
func (v Violation) Severe() bool { return v.Impact == Serious || v.Impact == Critical }

func (v Violation) String() string {
	return fmt.Sprintf("%s [%s] %s: %s (%s)", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, ", "), strings.Join(v.Summaries, " | "))
}

// runScript runs axe on the whole document with its WCAG 2.x A/AA and
// best-practice rules and keeps what the report needs.
const runScript = `axe.run(document, {resultTypes: ["violations"],
  runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]}
}).then(function (r) {
  return r.violations.map(function (v) {
    return {id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
      nodes: v.nodes.map(function (n) { return n.target.join(" "); }),
      summaries: v.nodes.map(function (n) { return n.failureSummary || ""; })};
  });
})`

// Check injects axe into the page ctx's tab shows (through DevTools, so the
// page's Content-Security-Policy does not apply) and returns its
// violations.
func Check(ctx context.Context) ([]Violation, error) {
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof window.axe === "object"`))
	if err != nil {
		return nil, fmt.Errorf("probe axe: %w", err)
	}
	if !loaded {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](axeJS+";0")); err != nil {
			return nil, fmt.Errorf("inject axe %s: %w", Version(), err)
		}
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]Violation](runScript, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("run axe: %w", err)
	}
	return out, nil
}

// Severe keeps the serious and critical violations.
func Severe(vs []Violation) []Violation {
	var out []Violation
	for _, v := range vs {
		if v.Severe() {
			out = append(out, v)
		}
	}
	return out
}
