-- What an eID app declares about itself at enrollment (platform such as
-- android, ios or web, and a model), shown to the citizen beside the name so
-- they can tell their phones apart; never used for any security decision.
-- last_used_at is when the device last approved a login or signed a grant,
-- written at most once a minute per device; NULL until then (and for every
-- device enrolled before this migration).
ALTER TABLE idp_devices ADD COLUMN platform TEXT NOT NULL DEFAULT '';
ALTER TABLE idp_devices ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE idp_devices ADD COLUMN last_used_at BIGINT;

-- Where a session's ephemeral entry lives: '' for the durable database's own
-- ephemeral table (the embedded mode), 'redis:<key prefix>' for Redis. An
-- operator command that ends sessions from another process (citizen lock)
-- must reach that store, and refuses when it cannot, rather than end the
-- index and leave the entries behind.
ALTER TABLE idp_sso_sessions ADD COLUMN ephemeral TEXT NOT NULL DEFAULT '';
