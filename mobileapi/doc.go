// Package mobileapi will aggregate every public service for the citizen's app
// (issue #5), served by fiber on its own listener beside the identity provider.
package mobileapi
