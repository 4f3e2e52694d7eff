-- Release policy: the registry claims an operator lets a client receive beyond
-- its scopes' (a JSON array; existing clients get none), and the approval JWS
-- a citizen's device signed, kept with each grant as evidence (existing
-- grants have none).

ALTER TABLE idp_clients ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';

ALTER TABLE idp_grants ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
