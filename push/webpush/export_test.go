package webpush

import "time"

// SetNow replaces the clock, for tests of token caching and TTLs.
func (c *Client) SetNow(now func() time.Time) { c.now = now }
