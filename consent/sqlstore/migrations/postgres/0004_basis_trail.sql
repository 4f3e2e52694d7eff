-- The legal bases' governance trail, the recipient's names and the legal
-- basis version in each access-log entry, and pending chain heads found
-- by an index instead of a scan of every citizen.

-- A basis has a version (1 when granted, +1 on each amendment).
ALTER TABLE consent_legal_bases ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE consent_legal_bases ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE consent_legal_bases SET updated_at = created_at;

-- Every grant, amendment and revocation of a legal basis: who, when, why,
-- the state before and after (JSON of consent.BasisState, '' for none).
-- One hash chain (consent.BasisEvent); its head is the chain head
-- '#legal-bases', committed by checkpoints like a citizen's. Rows are only
-- inserted.
CREATE TABLE consent_basis_trail (
	seq BIGINT PRIMARY KEY CHECK (seq >= 1),
	id TEXT NOT NULL UNIQUE,
	at BIGINT NOT NULL,
	operator TEXT NOT NULL,
	action TEXT NOT NULL,
	basis_id TEXT NOT NULL,
	agency TEXT NOT NULL,
	purpose TEXT NOT NULL,
	state_before TEXT NOT NULL,
	state_after TEXT NOT NULL,
	reason TEXT NOT NULL,
	prev BYTEA,
	hash BYTEA NOT NULL
);
CREATE INDEX consent_basis_trail_basis ON consent_basis_trail (basis_id, seq);
-- Present until the bases registered before the trail are adopted into it
-- (once, by the first Migrate that runs this binary).
CREATE TABLE consent_basis_adopt (
	id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO consent_basis_adopt (id) VALUES (1);

-- Entries sealed from now on hash in form 2 (consent.EntryVersion): the
-- recipient's names at release (JSON of consent.Names) and the legal basis
-- relied on, with its version. Older rows keep form 1.
ALTER TABLE consent_log ADD COLUMN v INTEGER NOT NULL DEFAULT 1;
ALTER TABLE consent_log ADD COLUMN names TEXT NOT NULL DEFAULT '';
ALTER TABLE consent_log ADD COLUMN basis_id TEXT NOT NULL DEFAULT '';
ALTER TABLE consent_log ADD COLUMN basis_version BIGINT NOT NULL DEFAULT 0;

-- The seq a checkpoint last committed, beside the head: a head is pending
-- while seq <> committed_seq, and the partial index holds only those, so a
-- checkpoint costs what moved, not the number of citizens.
ALTER TABLE consent_chain_heads ADD COLUMN committed_seq BIGINT NOT NULL DEFAULT 0;
UPDATE consent_chain_heads SET committed_seq = COALESCE(
	(SELECT c.seq FROM consent_tree_citizens c WHERE c.citizen_id = consent_chain_heads.citizen_id), 0);
CREATE INDEX consent_chain_heads_pending ON consent_chain_heads (citizen_id) WHERE seq <> committed_seq;
DROP TABLE consent_tree_citizens;
