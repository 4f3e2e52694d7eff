-- A consent.withdrawn delivery carries its consent (id, client_id,
-- purpose, receipt) as JSON; application deliveries leave it empty.
ALTER TABLE api_webhook_deliveries ADD COLUMN consent TEXT NOT NULL DEFAULT '';
