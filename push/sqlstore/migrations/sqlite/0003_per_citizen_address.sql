-- An address (token or endpoint) is unique per citizen, no longer across
-- citizens: a second citizen registering an address another holds gets an
-- installation of their own, so the answer reveals nothing about the other
-- (see RegisterInstallation). SQLite cannot drop a column's UNIQUE, so the
-- table is rebuilt.
CREATE TABLE push_installations_new (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	platform TEXT NOT NULL,
	address_hash TEXT NOT NULL,
	address TEXT NOT NULL, -- the token, or the subscription JSON
	locale TEXT NOT NULL,
	device_id TEXT NOT NULL, -- the eID device, '' for none
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (citizen_id, address_hash)
);
INSERT INTO push_installations_new (id, citizen_id, platform, address_hash, address, locale, device_id, created_at, updated_at)
	SELECT id, citizen_id, platform, address_hash, address, locale, device_id, created_at, updated_at FROM push_installations;
DROP TABLE push_installations;
ALTER TABLE push_installations_new RENAME TO push_installations;
CREATE INDEX push_installations_citizen ON push_installations (citizen_id, created_at);
CREATE INDEX push_installations_device ON push_installations (device_id) WHERE device_id <> '';
CREATE INDEX push_installations_order ON push_installations (citizen_id, id);

-- quiet_deferred marks a queued message held back by quiet hours, so that
-- changing the preferences makes it due again. Before this column, such a
-- message was the only queued one due after it was created.
ALTER TABLE push_messages ADD COLUMN quiet_deferred INTEGER NOT NULL DEFAULT 0;
UPDATE push_messages SET quiet_deferred = 1 WHERE state = 'queued' AND next_attempt_at > created_at;
