-- One durable delivery queue for everything the IdP owes clients over HTTP:
-- the back-channel logouts of 0012 and, now, CIBA ping callbacks. Existing
-- rows are back-channel logouts and keep working as they were.
ALTER TABLE idp_logout_deliveries RENAME TO idp_deliveries;
ALTER TABLE idp_deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'backchannel_logout';
-- What the message names besides the session (a CIBA ping: the auth_req_id).
ALTER TABLE idp_deliveries ADD COLUMN payload TEXT NOT NULL DEFAULT '';
-- The bearer credential the client gave for its callback (a CIBA
-- client_notification_token): blanked as soon as the delivery is final.
ALTER TABLE idp_deliveries ADD COLUMN secret TEXT NOT NULL DEFAULT '';
-- When the delivery stops being worth making (0: never); a ping's request
-- expiry. Held and pending rows past it are given up.
ALTER TABLE idp_deliveries ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
-- state gains 'held': queued, not yet due (a ping waits for the citizen).
-- sid is, for a ping, 'ciba:' and the hash of its auth_req_id, so the
-- UNIQUE (client_id, sid) of 0012 queues a request's ping once.
CREATE INDEX idp_deliveries_expiring ON idp_deliveries (expires_at) WHERE state IN ('held', 'pending') AND expires_at > 0;
