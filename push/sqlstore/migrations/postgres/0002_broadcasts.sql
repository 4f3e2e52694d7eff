-- Broadcasts: one row and a cursor over the installations, in
-- (citizen_id, id) order, whatever the audience's size.
CREATE TABLE push_broadcasts (
	id TEXT PRIMARY KEY,
	agency_code TEXT NOT NULL, -- '' for the platform's operators
	province TEXT NOT NULL,    -- '' for every citizen
	title_vi TEXT NOT NULL,
	title_en TEXT NOT NULL,
	body TEXT NOT NULL,
	expires_at BIGINT NOT NULL, -- 0: none
	state TEXT NOT NULL,
	cursor_citizen TEXT NOT NULL,
	cursor_installation TEXT NOT NULL,
	sent BIGINT NOT NULL,
	failed BIGINT NOT NULL,
	skipped BIGINT NOT NULL,
	claim_id TEXT NOT NULL,
	claimed_until BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX push_broadcasts_due ON push_broadcasts (created_at) WHERE state IN ('queued', 'sending');
-- The broadcast cursor walks installations in this order.
CREATE INDEX push_installations_order ON push_installations (citizen_id, id);
