-- Agency self-registration (RFC 7591/7592). A client an agency registers
-- is 'pending' until an operator approves it ('active') or rejects it;
-- every client that exists now was created by an operator and is active.
-- registration_hash is the keyed hash of its registration access token
-- (NULL: not manageable over HTTP); approved_by/approved_at record the
-- operator's decision.

ALTER TABLE idp_clients ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE idp_clients ADD COLUMN registration_hash BLOB;
ALTER TABLE idp_clients ADD COLUMN initial_token_id TEXT NOT NULL DEFAULT '';
ALTER TABLE idp_clients ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
ALTER TABLE idp_clients ADD COLUMN approved_at INTEGER;

-- The operators' initial access tokens, by keyed hash only; a token
-- registers up to max_uses clients of one agency until expires_at.
CREATE TABLE idp_initial_tokens (
	id TEXT PRIMARY KEY,
	token_hash BLOB NOT NULL UNIQUE,
	agency TEXT NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL DEFAULT 0,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
