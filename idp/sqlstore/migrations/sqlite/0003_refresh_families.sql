-- One row per refresh-token family (grant), updated in place on rotation:
-- signature is the current token, prev_signature the one it replaced, which
-- stays redeemable until rotated_at plus the grace window. device_id is the
-- eID device that approved the grant or holds it.
CREATE TABLE idp_refresh_families (
	request_id TEXT PRIMARY KEY,
	signature TEXT NOT NULL,
	prev_signature TEXT,
	rotated_at INTEGER,
	active INTEGER NOT NULL,
	device_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	subject TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	request BLOB NOT NULL
);
CREATE UNIQUE INDEX idp_refresh_families_signature ON idp_refresh_families (signature);
CREATE INDEX idp_refresh_families_prev_signature ON idp_refresh_families (prev_signature);
CREATE INDEX idp_refresh_families_device_id ON idp_refresh_families (device_id);
CREATE INDEX idp_refresh_families_expires_at ON idp_refresh_families (expires_at);

-- Each family's newest unrotated token becomes current (its newest token
-- when all were rotated); the most recently rotated one becomes previous, so
-- a token inside its grace window keeps working. A family revoked in part is
-- revoked. Older rotated tokens were already unusable.
INSERT INTO idp_refresh_families (request_id, signature, prev_signature, rotated_at, active, device_id,
	client_id, subject, expires_at, created_at, request)
SELECT t.request_id, t.signature,
	(SELECT p.signature FROM idp_refresh_tokens p
		WHERE p.request_id = t.request_id AND p.signature <> t.signature AND p.rotated_at IS NOT NULL
		ORDER BY p.rotated_at DESC, p.created_at DESC LIMIT 1),
	(SELECT p.rotated_at FROM idp_refresh_tokens p
		WHERE p.request_id = t.request_id AND p.signature <> t.signature AND p.rotated_at IS NOT NULL
		ORDER BY p.rotated_at DESC, p.created_at DESC LIMIT 1),
	(SELECT MIN(a.active) FROM idp_refresh_tokens a WHERE a.request_id = t.request_id),
	CASE WHEN json_valid(CAST(t.request AS TEXT))
		THEN COALESCE(json_extract(CAST(t.request AS TEXT), '$.session.device_id'), '') ELSE '' END,
	t.client_id, t.subject, t.expires_at, t.created_at, t.request
FROM idp_refresh_tokens t
WHERE t.signature = (SELECT c.signature FROM idp_refresh_tokens c WHERE c.request_id = t.request_id
	ORDER BY (c.rotated_at IS NULL) DESC, c.created_at DESC, c.signature DESC LIMIT 1);

DROP TABLE idp_refresh_tokens;

-- Named locks shared by every process on the database (SQLite has no
-- advisory locks): a row is held until expires_at.
CREATE TABLE idp_locks (
	name TEXT PRIMARY KEY,
	holder TEXT NOT NULL,
	expires_at INTEGER NOT NULL
);
