package redis

// Topics returns how many citizens' channels h holds state for (not the
// broadcast channel).
func Topics(h *Hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.conns {
		c.mu.Lock()
		for _, t := range c.topics {
			if !t.broadcast {
				n++
			}
		}
		c.mu.Unlock()
	}
	return n
}

// Conns returns how many Pub/Sub connections h holds: one per cluster
// master it has used.
func Conns(h *Hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Channel is the name of the citizen's channel under prefix.
func Channel(prefix, citizenID string) string { return channel(prefix, citizenID) }

// BroadcastChannel returns the channel name of broadcasts.
func BroadcastChannel(h *Hub) string { return broadcastChannel(h.prefix) }
