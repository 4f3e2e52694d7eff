package redis

// Topics returns how many citizens' channels h holds state for.
func Topics(h *Hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, t := range h.topics {
		if !t.broadcast {
			n++
		}
	}
	return n
}

// BroadcastChannel returns the channel name of broadcasts.
func BroadcastChannel(h *Hub) string { return h.broadcastChannel() }
