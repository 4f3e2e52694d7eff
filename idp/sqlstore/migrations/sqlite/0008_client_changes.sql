-- A counter bumped by every write to idp_clients, whoever makes it (the
-- server, an admin command in another process, a later migration, an
-- operator's SQL). Each replica polls it to drop its in-memory client cache.

CREATE TABLE idp_client_changes (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	version INTEGER NOT NULL
);
INSERT INTO idp_client_changes (id, version) VALUES (1, 1);

CREATE TRIGGER idp_clients_changed_insert AFTER INSERT ON idp_clients
BEGIN
	UPDATE idp_client_changes SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER idp_clients_changed_update AFTER UPDATE ON idp_clients
BEGIN
	UPDATE idp_client_changes SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER idp_clients_changed_delete AFTER DELETE ON idp_clients
BEGIN
	UPDATE idp_client_changes SET version = version + 1 WHERE id = 1;
END;
