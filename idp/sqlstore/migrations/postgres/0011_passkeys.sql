-- Passkeys: WebAuthn discoverable credentials a citizen adds from the
-- account page. The user handle is a random opaque value per citizen (never
-- the personal ID); a credential id is registered once, for one citizen.

CREATE TABLE idp_passkey_users (
	citizen_id TEXT PRIMARY KEY,
	user_handle BYTEA NOT NULL UNIQUE
);

CREATE TABLE idp_passkeys (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	credential_id BYTEA NOT NULL UNIQUE,
	public_key BYTEA NOT NULL,
	sign_count BIGINT NOT NULL,
	aaguid BYTEA NOT NULL,
	backup_eligible BOOLEAN NOT NULL DEFAULT FALSE,
	transports TEXT NOT NULL DEFAULT '[]',
	level TEXT NOT NULL,
	name TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	last_used_at BIGINT
);
CREATE INDEX idp_passkeys_citizen_id ON idp_passkeys (citizen_id);
