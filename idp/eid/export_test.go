package eid

// OnCodeHash makes s call f on every activation-code hash.
func OnCodeHash(s *Service, f func()) { s.codeHashed = f }
