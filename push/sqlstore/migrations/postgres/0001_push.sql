-- Installations: one row per app installation or browser. address_hash is
-- the SHA-256 of platform and token or endpoint, unique so that one device
-- address belongs to one citizen. Times are unix milliseconds.
CREATE TABLE push_installations (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	platform TEXT NOT NULL,
	address_hash TEXT NOT NULL UNIQUE,
	address TEXT NOT NULL, -- the token, or the subscription JSON
	locale TEXT NOT NULL,
	device_id TEXT NOT NULL, -- the eID device, '' for none
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX push_installations_citizen ON push_installations (citizen_id, created_at);
CREATE INDEX push_installations_device ON push_installations (device_id) WHERE device_id <> '';

CREATE TABLE push_preferences (
	citizen_id TEXT PRIMARY KEY,
	doc TEXT NOT NULL, -- JSON
	updated_at BIGINT NOT NULL
);

-- The outbox. seq orders a citizen's live stream; claimed_until hides a
-- claimed message from other dispatchers until its claim lapses.
CREATE TABLE push_messages (
	seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	citizen_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	service_code TEXT NOT NULL,
	agency_code TEXT NOT NULL,
	application_id TEXT NOT NULL,
	inbox_message_id TEXT NOT NULL,
	title_vi TEXT NOT NULL, -- full text: erased once the message is final
	title_en TEXT NOT NULL,
	body TEXT NOT NULL,
	priority INTEGER NOT NULL,
	collapse_key TEXT NOT NULL,
	expires_at BIGINT NOT NULL, -- 0: none
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	claim_id TEXT NOT NULL,
	claimed_until BIGINT NOT NULL,
	delivered TEXT NOT NULL, -- JSON array of installation ids
	last_error TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX push_messages_due ON push_messages (next_attempt_at) WHERE state IN ('queued', 'sent', 'failed');
CREATE INDEX push_messages_citizen ON push_messages (citizen_id, seq);
CREATE INDEX push_messages_final ON push_messages (updated_at) WHERE state IN ('accepted', 'dead', 'skipped');
