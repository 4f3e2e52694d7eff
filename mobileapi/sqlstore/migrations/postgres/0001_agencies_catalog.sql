-- Agencies and the catalog of services. Every version of a service is kept:
-- an application follows the version it was created with, so a version row
-- is never changed once written. api_services names the current one.
--
-- Codes compare byte-wise (COLLATE "C"), as on SQLite: lists ordered by code
-- come out in the same order on both engines, whatever the database locale.

CREATE TABLE api_agencies (
	code TEXT COLLATE "C" PRIMARY KEY,
	name_vi TEXT NOT NULL,
	name_en TEXT NOT NULL,
	parent_code TEXT COLLATE "C" REFERENCES api_agencies (code), -- NULL for a root
	province_code TEXT NOT NULL,                                 -- '' for a national body
	created_at BIGINT NOT NULL
);
CREATE INDEX api_agencies_parent ON api_agencies (parent_code);

CREATE TABLE api_services (
	id TEXT PRIMARY KEY,
	code TEXT COLLATE "C" NOT NULL UNIQUE,
	current_version INTEGER NOT NULL CHECK (current_version >= 1),
	agency_code TEXT COLLATE "C" NOT NULL REFERENCES api_agencies (code), -- the current version's owner
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
	agency_code TEXT COLLATE "C" NOT NULL REFERENCES api_agencies (code),
	category TEXT NOT NULL,
	fee_amount BIGINT NOT NULL,
	fee_currency TEXT NOT NULL,
	processing_days INTEGER NOT NULL,
	required_documents TEXT NOT NULL, -- JSON array of mobileapi.RequiredDocument
	handling_agencies TEXT NOT NULL,  -- JSON array of agency codes
	form_schema TEXT,                 -- the JSON Schema as given, byte for byte (not jsonb); NULL when none
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (service_id, version)
);

-- A counter bumped by every write to the catalog (and to the agencies, whose
-- names the catalog shows), whoever makes it: the store, a seed in another
-- process, an operator's SQL. Each replica polls it (CatalogVersion) to
-- reload its cached catalog and search index. The triggers run inside the
-- writing transaction, so the new value becomes visible exactly when the
-- change does; concurrent writers queue on the counter's row, so no bump is
-- lost.
--
-- The triggers are per row, not per statement: a statement that changes
-- nothing (PutService's INSERT ... ON CONFLICT DO NOTHING when another put
-- created the service first) must not take the counter's lock, or it would
-- then wait for the service's row while holding the lock that the row's
-- holder waits for: a deadlock. Writers lock a service's row, then the
-- counter, never the other way round.
CREATE TABLE api_catalog_changes (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	version BIGINT NOT NULL
);
INSERT INTO api_catalog_changes (id, version) VALUES (1, 1);

CREATE FUNCTION api_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- The counter of the changed table's own schema, whatever the writer's
	-- search_path.
	EXECUTE format('UPDATE %I.api_catalog_changes SET version = version + 1 WHERE id = 1', TG_TABLE_SCHEMA);
	RETURN NULL;
END;
$$;

CREATE TRIGGER api_agencies_changed AFTER INSERT OR UPDATE OR DELETE ON api_agencies
	FOR EACH ROW EXECUTE FUNCTION api_catalog_changed();
CREATE TRIGGER api_agencies_truncated AFTER TRUNCATE ON api_agencies
	FOR EACH STATEMENT EXECUTE FUNCTION api_catalog_changed();
CREATE TRIGGER api_services_changed AFTER INSERT OR UPDATE OR DELETE ON api_services
	FOR EACH ROW EXECUTE FUNCTION api_catalog_changed();
CREATE TRIGGER api_services_truncated AFTER TRUNCATE ON api_services
	FOR EACH STATEMENT EXECUTE FUNCTION api_catalog_changed();
CREATE TRIGGER api_service_versions_changed AFTER INSERT OR UPDATE OR DELETE ON api_service_versions
	FOR EACH ROW EXECUTE FUNCTION api_catalog_changed();
CREATE TRIGGER api_service_versions_truncated AFTER TRUNCATE ON api_service_versions
	FOR EACH STATEMENT EXECUTE FUNCTION api_catalog_changed();
