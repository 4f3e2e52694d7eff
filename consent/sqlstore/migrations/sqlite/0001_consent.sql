-- Consent records, their receipts, the legal bases operators register, and
-- the access log with its chain heads and the Merkle tree of committed
-- heads (checkpoints). Identifiers compare byte-wise, as PostgreSQL's
-- COLLATE "C" columns do, so pages and verification walk the same order.
-- Times are unix milliseconds; lists of items are JSON arrays.

CREATE TABLE consent_records (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	agency TEXT NOT NULL,
	recipient TEXT NOT NULL,
	purpose_code TEXT NOT NULL,
	purpose_text TEXT NOT NULL,
	items TEXT NOT NULL,
	declined TEXT NOT NULL,
	basis TEXT NOT NULL,
	notice TEXT NOT NULL,
	method TEXT NOT NULL,
	evidence TEXT NOT NULL,
	version BIGINT NOT NULL CHECK (version >= 1),
	granted_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	withdrawn_at BIGINT
);
-- At most one live record per citizen, client and purpose, whatever the
-- number of replicas granting at once.
CREATE UNIQUE INDEX consent_records_live ON consent_records (citizen_id, client_id, purpose_code) WHERE withdrawn_at IS NULL;
CREATE INDEX consent_records_citizen ON consent_records (citizen_id, granted_at, id);

CREATE TABLE consent_receipts (
	id TEXT PRIMARY KEY,
	consent_id TEXT NOT NULL REFERENCES consent_records (id),
	citizen_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	version BIGINT NOT NULL,
	jws TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE INDEX consent_receipts_consent ON consent_receipts (consent_id, created_at, id);

CREATE TABLE consent_legal_bases (
	id TEXT PRIMARY KEY,
	agency TEXT NOT NULL,
	purpose TEXT NOT NULL,
	items TEXT NOT NULL,
	basis TEXT NOT NULL,
	law TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE UNIQUE INDEX consent_legal_bases_live ON consent_legal_bases (agency, purpose) WHERE revoked_at IS NULL;

-- The access log. Rows are only inserted; the flag columns are the only
-- ones ever updated (they are outside the hash).
CREATE TABLE consent_log (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	seq BIGINT NOT NULL CHECK (seq >= 1),
	at BIGINT NOT NULL,
	agency TEXT NOT NULL,
	client_id TEXT NOT NULL,
	operator TEXT NOT NULL,
	channel TEXT NOT NULL,
	items TEXT NOT NULL,
	purpose TEXT NOT NULL,
	consent_id TEXT NOT NULL,
	basis TEXT NOT NULL,
	law TEXT NOT NULL,
	outcome TEXT NOT NULL,
	reason TEXT NOT NULL,
	prev BLOB,
	hash BLOB NOT NULL,
	flagged_at BIGINT,
	flag_note TEXT NOT NULL DEFAULT '',
	UNIQUE (citizen_id, seq)
);
CREATE INDEX consent_log_flagged ON consent_log (flagged_at, id) WHERE flagged_at IS NOT NULL;

-- The last entry of each citizen's chain: the row an append locks.
CREATE TABLE consent_chain_heads (
	citizen_id TEXT PRIMARY KEY,
	seq BIGINT NOT NULL,
	hash BLOB
);

-- The Merkle tree (golang.org/x/mod/sumdb/tlog) of committed chain heads:
-- leaf i is (citizen, seq, hash) of a head at the time of a checkpoint.
CREATE TABLE consent_tree_leaves (
	idx BIGINT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	seq BIGINT NOT NULL,
	hash BLOB NOT NULL
);
-- The tree's stored hashes, by tlog.StoredHashIndex.
CREATE TABLE consent_tree_hashes (
	idx BIGINT PRIMARY KEY,
	hash BLOB NOT NULL
);
-- The last committed seq of each citizen, so a checkpoint commits only the
-- heads that moved since.
CREATE TABLE consent_tree_citizens (
	citizen_id TEXT PRIMARY KEY,
	seq BIGINT NOT NULL
);
-- Signed checkpoints: the note over the tree's size and root hash.
CREATE TABLE consent_checkpoints (
	size BIGINT PRIMARY KEY,
	root BLOB NOT NULL,
	note TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
-- One row, locked by the replica that commits a checkpoint.
CREATE TABLE consent_checkpoint_lock (
	id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO consent_checkpoint_lock (id) VALUES (1);
