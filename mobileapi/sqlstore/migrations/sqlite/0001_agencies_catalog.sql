-- Agencies and the catalog of services. Every version of a service is kept:
-- an application follows the version it was created with, so a version row
-- is never changed once written. api_services names the current one.

CREATE TABLE api_agencies (
	code TEXT PRIMARY KEY,
	name_vi TEXT NOT NULL,
	name_en TEXT NOT NULL,
	parent_code TEXT REFERENCES api_agencies (code), -- NULL for a root
	province_code TEXT NOT NULL,                     -- '' for a national body
	created_at BIGINT NOT NULL
);
CREATE INDEX api_agencies_parent ON api_agencies (parent_code);

CREATE TABLE api_services (
	id TEXT PRIMARY KEY,
	code TEXT NOT NULL UNIQUE,
	current_version INTEGER NOT NULL CHECK (current_version >= 1),
	agency_code TEXT NOT NULL REFERENCES api_agencies (code), -- the current version's owner
	created_at BIGINT NOT NULL
);
CREATE INDEX api_services_agency ON api_services (agency_code);

CREATE TABLE api_service_versions (
	service_id TEXT NOT NULL REFERENCES api_services (id),
	version INTEGER NOT NULL CHECK (version >= 1),
	name_vi TEXT NOT NULL,
	name_en TEXT NOT NULL,
	description_vi TEXT NOT NULL,
	description_en TEXT NOT NULL,
	agency_code TEXT NOT NULL REFERENCES api_agencies (code),
	category TEXT NOT NULL,
	fee_amount BIGINT NOT NULL,
	fee_currency TEXT NOT NULL,
	processing_days INTEGER NOT NULL,
	required_documents TEXT NOT NULL, -- JSON array of mobileapi.RequiredDocument
	handling_agencies TEXT NOT NULL,  -- JSON array of agency codes
	form_schema TEXT,                 -- the JSON Schema as given, byte for byte; NULL when none
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (service_id, version)
);

-- A counter bumped by every write to the catalog (and to the agencies, whose
-- names the catalog shows), whoever makes it: the store, a seed in another
-- process, an operator's SQL. Each replica polls it (CatalogVersion) to
-- reload its cached catalog and search index. The triggers run inside the
-- writing transaction, so the new value becomes visible exactly when the
-- change does.
CREATE TABLE api_catalog_changes (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	version BIGINT NOT NULL
);
INSERT INTO api_catalog_changes (id, version) VALUES (1, 1);

CREATE TRIGGER api_agencies_changed_insert AFTER INSERT ON api_agencies
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER api_agencies_changed_update AFTER UPDATE ON api_agencies
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER api_agencies_changed_delete AFTER DELETE ON api_agencies
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER api_services_changed_insert AFTER INSERT ON api_services
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER api_services_changed_update AFTER UPDATE ON api_services
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER api_services_changed_delete AFTER DELETE ON api_services
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER api_service_versions_changed_insert AFTER INSERT ON api_service_versions
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER api_service_versions_changed_update AFTER UPDATE ON api_service_versions
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER api_service_versions_changed_delete AFTER DELETE ON api_service_versions
BEGIN
	UPDATE api_catalog_changes SET version = version + 1 WHERE id = 1;
END;
