-- A checkpoint commits the pending heads oldest first. In citizen-id
-- order (0005) the citizens whose ids sort first, while more of them kept
-- moving than one batch holds, kept a citizen whose id sorts last out of
-- every checkpoint. pending_since (Unix ms) is set when a head becomes
-- pending and kept while it stays pending, so appends to a head already
-- pending still change no indexed column (their updates stay HOT on
-- PostgreSQL).
ALTER TABLE consent_chain_heads ADD COLUMN pending_since BIGINT NOT NULL DEFAULT 0;
DROP INDEX consent_chain_heads_pending;
CREATE INDEX consent_chain_heads_pending ON consent_chain_heads (pending_since, citizen_id) WHERE pending;
