-- Push messages ride on the job queue (push_jobs, kind 'push'): the job,
-- whose id is the message's and whose ref is the citizen, holds the
-- scheduling (due time, claim, lease, claims, dead-letter); push_messages
-- keeps the product record: the live stream's seq, the text, and the
-- sending agency's receipt (state, attempts, delivered, last error).
--
-- held marks a pending job its worker held back without an attempt (a
-- message in the citizen's quiet hours): the owner's change (new
-- preferences) makes it due at once. It replaces push_messages.quiet_deferred.
ALTER TABLE push_jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;

-- Every message not final becomes a pending job keeping its due time, its
-- attempts (claims, the one in flight included) and any claim in flight;
-- final messages need none.
INSERT INTO push_jobs (id, kind, grp, ref, payload, state, claims, attempts, next_attempt_at, claim_id, claimed_until,
	created_at, updated_at, held)
	SELECT id, 'push', '', citizen_id, '{}', 'pending', attempts, '[]', next_attempt_at, claim_id, claimed_until,
		created_at, updated_at, quiet_deferred
	FROM push_messages WHERE state IN ('queued', 'sent', 'failed') ORDER BY seq;

DROP INDEX push_messages_due;
ALTER TABLE push_messages DROP COLUMN next_attempt_at, DROP COLUMN claim_id, DROP COLUMN claimed_until,
	DROP COLUMN quiet_deferred;
