// Package push will deliver results and approval requests to the citizen's
// app (issue #6).
package push
