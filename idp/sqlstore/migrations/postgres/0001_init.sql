-- Times are unix milliseconds (UTC). List columns hold JSON arrays.

CREATE TABLE idp_clients (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	secret_hash BYTEA,
	redirect_uris TEXT NOT NULL,
	post_logout_redirect_uris TEXT NOT NULL,
	grant_types TEXT NOT NULL,
	scopes TEXT NOT NULL,
	auth_method TEXT NOT NULL,
	jwks TEXT NOT NULL,
	jwks_uri TEXT NOT NULL,
	par_required BOOLEAN NOT NULL,
	id_token_alg TEXT NOT NULL,
	created_at BIGINT NOT NULL
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
	created_at BIGINT NOT NULL
);

CREATE TABLE idp_activations (
	citizen_id TEXT PRIMARY KEY,
	code_hash BYTEA NOT NULL,
	level TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	attempts INTEGER NOT NULL,
	used_at BIGINT,
	created_at BIGINT NOT NULL
);

CREATE TABLE idp_devices (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	name TEXT NOT NULL,
	public_key TEXT NOT NULL,
	level TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE INDEX idp_devices_citizen_id ON idp_devices (citizen_id);

CREATE TABLE idp_signing_keys (
	id TEXT PRIMARY KEY,
	alg TEXT NOT NULL,
	state TEXT NOT NULL,
	private_key BYTEA NOT NULL,
	public_jwk TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	activated_at BIGINT,
	retired_at BIGINT,
	publish_until BIGINT
);

CREATE TABLE idp_grants (
	citizen_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	claims TEXT NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (citizen_id, client_id)
);

CREATE TABLE idp_refresh_tokens (
	signature TEXT PRIMARY KEY,
	request_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	subject TEXT NOT NULL,
	active BOOLEAN NOT NULL,
	rotated_at BIGINT,
	expires_at BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	request BYTEA NOT NULL
);
CREATE INDEX idp_refresh_tokens_request_id ON idp_refresh_tokens (request_id);
CREATE INDEX idp_refresh_tokens_expires_at ON idp_refresh_tokens (expires_at);

CREATE TABLE idp_ephemeral (
	key TEXT PRIMARY KEY,
	value BYTEA NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX idp_ephemeral_expires_at ON idp_ephemeral (expires_at);

-- The eID app's own public native client.
INSERT INTO idp_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris,
	grant_types, scopes, auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at)
VALUES ('onedoor-eid-app', 'OneDoor eID app', NULL, '["vn.onedoor.eid:/callback"]', '[]',
	'["authorization_code","refresh_token"]',
	'["openid","profile","eid","offline_access","phone","address"]',
	'none', '', '', FALSE, 'ES256', (extract(epoch FROM now()) * 1000)::BIGINT);
