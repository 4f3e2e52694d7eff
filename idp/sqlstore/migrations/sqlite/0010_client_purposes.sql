-- Consent (#7): each client's catalog of purposes (a JSON array of
-- {"code","text"}; existing clients have none and use the "login" purpose).
--
-- idp_grants is no longer written: what citizens agreed to now lives in the
-- consent area's records. Its rows are moved there once, at start-up, by
-- the composition root (idp.MoveGrants), which deletes each row as it is
-- moved; the table stays, read only, so an older binary rolled back to does
-- not fail on a missing table.

ALTER TABLE idp_clients ADD COLUMN purposes TEXT NOT NULL DEFAULT '[]';
