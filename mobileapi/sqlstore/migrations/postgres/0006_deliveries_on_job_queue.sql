-- Webhook deliveries move onto the durable job queue, push_jobs (push
-- migration 0004, applied first: push migrates before the mobile API). Every
-- delivery is copied, pending ones with their due time and any claim a
-- worker of the previous binary holds (it lapses as before), final ones
-- with their attempts, so the agency's delivery log is unchanged. The job
-- keeps the delivery's id; its group is the agency, its ref the webhook.
INSERT INTO push_jobs (id, kind, grp, ref, payload, state, claims, attempts, next_attempt_at, claim_id, claimed_until,
	created_at, updated_at)
SELECT d.id, 'webhook', d.agency_code, d.webhook_id,
	json_build_object('webhook_id', d.webhook_id, 'url', w.url, 'event', json_build_object(
		'id', d.event_id, 'type', d.event_type, 'application_id', d.application_id, 'service_id', d.service_id,
		'service_code', d.service_code, 'occurred_at', d.occurred_at,
		'consent', CASE WHEN d.consent = '' THEN NULL ELSE d.consent::json END))::text,
	CASE d.state WHEN 'pending' THEN 'pending' WHEN 'succeeded' THEN 'done' ELSE 'dead' END,
	json_array_length(d.attempts::json), d.attempts,
	CASE WHEN d.state = 'pending' THEN COALESCE(d.next_attempt_at, d.created_at) END,
	'', d.claimed_until, d.created_at, d.created_at
FROM api_webhook_deliveries d JOIN api_webhooks w ON w.id = d.webhook_id
ORDER BY d.created_at, d.id;

DROP TABLE api_webhook_deliveries;
