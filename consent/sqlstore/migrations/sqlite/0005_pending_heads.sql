-- A head is pending (moved since a checkpoint last committed it) by a flag
-- of its own. The partial index of 0004 was on seq <> committed_seq, and a
-- column an index's predicate reads is an indexed column: every append
-- changes seq, so no update of a head could be HOT on PostgreSQL (each
-- append wrote a new index entry and left a dead row behind). An append
-- now sets pending, which a head already pending keeps unchanged, so
-- appends between two checkpoints stay HOT.
ALTER TABLE consent_chain_heads ADD COLUMN pending BOOLEAN NOT NULL DEFAULT FALSE;
-- Only the heads that are pending are written: a full-table rewrite would
-- touch (and on PostgreSQL duplicate) every row for nothing.
UPDATE consent_chain_heads SET pending = TRUE WHERE seq <> committed_seq;
DROP INDEX consent_chain_heads_pending;
CREATE INDEX consent_chain_heads_pending ON consent_chain_heads (citizen_id) WHERE pending;
