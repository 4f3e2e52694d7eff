// Package consent will hold consent records for data sharing between
// agencies (issue #4). Until then the identity provider keeps a simple record
// of the claims a citizen agreed to share (idp.Grant).
package consent
