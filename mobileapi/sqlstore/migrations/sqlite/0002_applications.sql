-- Applications and everything that hangs off them. service_id, agency_code
-- and citizen_id are plain TEXT, not foreign keys: the catalog and the
-- identity provider keep their own tables, and an application keeps the
-- service version it was created with. Times are unix milliseconds.
CREATE TABLE api_applications (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	service_id TEXT NOT NULL,
	service_code TEXT NOT NULL,
	service_version INTEGER NOT NULL,
	agency_code TEXT NOT NULL,
	status TEXT NOT NULL,
	form TEXT NOT NULL,      -- JSON object
	prefilled TEXT NOT NULL, -- JSON object: JSON Pointer -> provenance
	version INTEGER NOT NULL, -- the ETag, bumped by every change
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	submitted_at INTEGER,
	decided_at INTEGER
);
-- The citizen's and the agency's lists, newest change first, paged by
-- (updated_at, id).
CREATE INDEX api_applications_citizen ON api_applications (citizen_id, updated_at DESC, id DESC);
CREATE INDEX api_applications_agency ON api_applications (agency_code, updated_at DESC, id DESC);

-- One row per transition, seq counting from 1 (the draft's creation).
CREATE TABLE api_application_timeline (
	application_id TEXT NOT NULL REFERENCES api_applications (id) ON DELETE CASCADE,
	seq INTEGER NOT NULL,
	at INTEGER NOT NULL,
	actor TEXT NOT NULL, -- "citizen", "agency:<code>" or "system"
	from_status TEXT NOT NULL, -- empty for the creation
	to_status TEXT NOT NULL,
	message TEXT NOT NULL,
	PRIMARY KEY (application_id, seq)
);

-- The citizen's attachments (kind 'attachment') and the agency's result
-- documents (kind 'document', agency_code the uploader). A document is seen
-- by the citizen once a transition publishes it (published_at set).
CREATE TABLE api_application_files (
	id TEXT PRIMARY KEY,
	application_id TEXT NOT NULL REFERENCES api_applications (id) ON DELETE CASCADE,
	kind TEXT NOT NULL CHECK (kind IN ('attachment', 'document')),
	agency_code TEXT NOT NULL,
	name TEXT NOT NULL,
	content_type TEXT NOT NULL,
	size INTEGER NOT NULL,
	sha256 TEXT NOT NULL,
	document_code TEXT NOT NULL,
	blob_key TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	published_at INTEGER
);
CREATE INDEX api_application_files_application ON api_application_files (application_id, created_at, id);

-- Each agency's work queue. An event is leasable when leased_until has
-- passed (0: never leased); lease_id names its current lease.
CREATE TABLE api_agency_events (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	agency_code TEXT NOT NULL,
	application_id TEXT NOT NULL,
	service_id TEXT NOT NULL,
	service_code TEXT NOT NULL,
	occurred_at INTEGER NOT NULL,
	lease_id TEXT,
	leased_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_agency_events_queue ON api_agency_events (agency_code, occurred_at, id);

-- Every lease ever handed out for an event still queued, so acknowledging
-- an expired lease is told apart from an unknown one even after the event
-- was leased again. Rows go with their event.
CREATE TABLE api_agency_leases (
	id TEXT PRIMARY KEY,
	event_id TEXT NOT NULL REFERENCES api_agency_events (id) ON DELETE CASCADE,
	agency_code TEXT NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX api_agency_leases_event ON api_agency_leases (event_id);

CREATE TABLE api_webhooks (
	id TEXT PRIMARY KEY,
	agency_code TEXT NOT NULL,
	url TEXT NOT NULL,
	events TEXT NOT NULL, -- JSON array of event types; empty: all
	description TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX api_webhooks_agency ON api_webhooks (agency_code, created_at, id);

-- One event on its way to one webhook. The event is copied: the queue's
-- copy goes away when acknowledged. A pending delivery is due at
-- next_attempt_at and hidden from other workers until claimed_until.
-- attempts is a JSON array, oldest first.
CREATE TABLE api_webhook_deliveries (
	id TEXT PRIMARY KEY,
	webhook_id TEXT NOT NULL REFERENCES api_webhooks (id) ON DELETE CASCADE,
	agency_code TEXT NOT NULL,
	event_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	application_id TEXT NOT NULL,
	service_id TEXT NOT NULL,
	service_code TEXT NOT NULL,
	occurred_at INTEGER NOT NULL,
	state TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
	attempts TEXT NOT NULL,
	next_attempt_at INTEGER,
	claimed_until INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);
CREATE INDEX api_webhook_deliveries_webhook ON api_webhook_deliveries (webhook_id, created_at DESC, id DESC);
CREATE INDEX api_webhook_deliveries_due ON api_webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- The citizens' inbox. results is a JSON array of api_application_files ids.
CREATE TABLE api_inbox_messages (
	id TEXT PRIMARY KEY,
	citizen_id TEXT NOT NULL,
	application_id TEXT NOT NULL,
	status TEXT NOT NULL,
	agency_code TEXT NOT NULL,
	title_vi TEXT NOT NULL,
	title_en TEXT NOT NULL,
	body TEXT NOT NULL,
	results TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	read_at INTEGER
);
CREATE INDEX api_inbox_messages_citizen ON api_inbox_messages (citizen_id, created_at DESC, id DESC);
CREATE INDEX api_inbox_messages_unread ON api_inbox_messages (citizen_id) WHERE read_at IS NULL;
