-- OpenID CIBA Core 1.0: a client's token delivery mode (poll or ping) and,
-- in ping mode, where it is told that a request was decided.
ALTER TABLE idp_clients ADD COLUMN backchannel_token_delivery_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE idp_clients ADD COLUMN backchannel_client_notification_endpoint TEXT NOT NULL DEFAULT '';
