-- Times are unix milliseconds (UTC). List columns hold JSON arrays.

CREATE TABLE idp_clients (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	secret_hash BLOB,
	redirect_uris TEXT NOT NULL,
	post_logout_redirect_uris TEXT NOT NULL,
	grant_types TEXT NOT NULL,
	scopes TEXT NOT NULL,
	auth_method TEXT NOT NULL,
	jwks TEXT NOT NULL,
	jwks_uri TEXT NOT NULL,
	par_required INTEGER NOT NULL,
	id_token_alg TEXT NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE idp_citizens (
	id TEXT PRIMARY KEY,
	personal_id TEXT NOT NULL UNIQUE,
	family_name TEXT NOT NULL,
	given_name TEXT NOT NULL,
	birthdate TEXT NOT NULL,
	gender TEXT NOT NULL,
	address TEXT NOT NULL,
	phone_number TEXT NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE idp_activations (
	citizen_id TEXT PRIMARY KEY,
	code_hash BLOB NOT NULL,
	level TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	attempts INTEGER NOT NULL,
	used_at INTEGER,
	created_at INTEGER NOT NULL
);

CREATE TABLE idp_devices (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	name TEXT NOT NULL,
	public_key TEXT NOT NULL,
	level TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
);
CREATE INDEX idp_devices_citizen_id ON idp_devices (citizen_id);

CREATE TABLE idp_signing_keys (
	id TEXT PRIMARY KEY,
	alg TEXT NOT NULL,
	state TEXT NOT NULL,
	private_key BLOB NOT NULL,
	public_jwk TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	activated_at INTEGER,
	retired_at INTEGER,
	publish_until INTEGER
);

CREATE TABLE idp_grants (
	citizen_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	claims TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (citizen_id, client_id)
);

CREATE TABLE idp_refresh_tokens (
	signature TEXT PRIMARY KEY,
	request_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	subject TEXT NOT NULL,
	active INTEGER NOT NULL,
	rotated_at INTEGER,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	request BLOB NOT NULL
);
CREATE INDEX idp_refresh_tokens_request_id ON idp_refresh_tokens (request_id);
CREATE INDEX idp_refresh_tokens_expires_at ON idp_refresh_tokens (expires_at);

CREATE TABLE idp_ephemeral (
	key TEXT PRIMARY KEY,
	value BLOB NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX idp_ephemeral_expires_at ON idp_ephemeral (expires_at);

-- The eID app's own public native client.
INSERT INTO idp_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris,
	grant_types, scopes, auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at)
VALUES ('onedoor-eid-app', 'OneDoor eID app', NULL, '["vn.onedoor.eid:/callback"]', '[]',
	'["authorization_code","refresh_token"]',
	'["openid","profile","eid","offline_access","phone","address"]',
	'none', '', '', 0, 'ES256', CAST(strftime('%s', 'now') AS INTEGER) * 1000);
