-- A counter bumped by every write to idp_clients, whoever makes it (the
-- server, an admin command in another process, a later migration, an
-- operator's SQL). Each replica polls it to drop its in-memory client cache.
-- The trigger runs inside the writing transaction, so the new version
-- becomes visible exactly when the client change does.

CREATE TABLE idp_client_changes (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	version BIGINT NOT NULL
);
INSERT INTO idp_client_changes (id, version) VALUES (1, 1);

CREATE FUNCTION idp_clients_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- The counter of the changed table's own schema, whatever the writer's
	-- search_path.
	EXECUTE format('UPDATE %I.idp_client_changes SET version = version + 1 WHERE id = 1', TG_TABLE_SCHEMA);
	RETURN NULL;
END;
$$;

CREATE TRIGGER idp_clients_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON idp_clients
	FOR EACH STATEMENT EXECUTE FUNCTION idp_clients_changed();
