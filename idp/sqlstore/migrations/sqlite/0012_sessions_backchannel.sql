-- Sessions and back-channel logout. A client may register where it
-- receives OIDC Back-Channel Logout 1.0 tokens.
ALTER TABLE idp_clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE idp_clients ADD COLUMN backchannel_logout_session_required INTEGER NOT NULL DEFAULT 0;

-- The durable index of single sign-on sessions: the session itself lives in
-- the ephemeral store under session_key (a hash of the cookie, not the
-- cookie); this row lets a citizen's or a device's sessions be found and
-- ended (lock, device revocation, the account page), and records which
-- clients each session logged in to. ended_at is set once, by whoever ends
-- the session: that same transaction queues the back-channel logouts.
CREATE TABLE idp_sso_sessions (
	sid TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	level TEXT NOT NULL,
	session_key TEXT NOT NULL,
	auth_time INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	ended_at INTEGER
);
CREATE INDEX idp_sso_sessions_citizen_id ON idp_sso_sessions (citizen_id);
CREATE INDEX idp_sso_sessions_device_id ON idp_sso_sessions (device_id);
CREATE INDEX idp_sso_sessions_expires_at ON idp_sso_sessions (expires_at);

CREATE TABLE idp_sso_session_clients (
	sid TEXT NOT NULL,
	client_id TEXT NOT NULL,
	first_at INTEGER NOT NULL,
	PRIMARY KEY (sid, client_id)
);

-- One back-channel logout per (client, session): pending until the client
-- answers 200/204, dead after the worker's last attempt. A worker claims a
-- row by setting lease_until and a fresh lease_id; only the holder of that
-- lease may record the attempt.
CREATE TABLE idp_logout_deliveries (
	id TEXT PRIMARY KEY,
	client_id TEXT NOT NULL,
	sid TEXT NOT NULL,
	subject TEXT NOT NULL,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	lease_until INTEGER NOT NULL DEFAULT 0,
	lease_id TEXT NOT NULL DEFAULT '',
	last_status INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (client_id, sid)
);
CREATE INDEX idp_logout_deliveries_due ON idp_logout_deliveries (next_attempt_at) WHERE state = 'pending';

-- Locking an account revokes all of the citizen's refresh-token families.
CREATE INDEX idp_refresh_families_subject ON idp_refresh_families (subject);
