-- An address (token or endpoint) is unique per citizen, no longer across
-- citizens: a second citizen registering an address another holds gets an
-- installation of their own, so the answer reveals nothing about the other
-- (see RegisterInstallation).
ALTER TABLE push_installations DROP CONSTRAINT push_installations_address_hash_key;
ALTER TABLE push_installations ADD CONSTRAINT push_installations_citizen_address UNIQUE (citizen_id, address_hash);

-- quiet_deferred marks a queued message held back by quiet hours, so that
-- changing the preferences makes it due again. Before this column, such a
-- message was the only queued one due after it was created.
ALTER TABLE push_messages ADD COLUMN quiet_deferred INTEGER NOT NULL DEFAULT 0;
UPDATE push_messages SET quiet_deferred = 1 WHERE state = 'queued' AND next_attempt_at > created_at;
