-- The agency a client acts for (its code in the mobile API's agencies), put
-- into the client's own access tokens. Existing clients act for none.

ALTER TABLE idp_clients ADD COLUMN agency TEXT NOT NULL DEFAULT '';
