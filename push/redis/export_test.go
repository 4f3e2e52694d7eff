package redis

// Topics returns how many citizens' channels h holds state for.
func Topics(h *Hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.topics)
}
