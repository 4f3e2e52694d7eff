-- Push messages ride on the job queue (push_jobs, kind 'push'): the job,
-- whose id is the message's and whose ref is the citizen, holds the
-- scheduling (due time, claim, lease, claims, dead-letter); push_messages
-- keeps the product record: the live stream's seq, the text, and the
-- sending agency's receipt (state, attempts, delivered, last error).
--
-- held marks a pending job its worker held back without an attempt (a
-- message in the citizen's quiet hours): the owner's change (new
-- preferences) makes it due at once. It replaces push_messages.quiet_deferred.
-- An old replica still running could commit a message between the copy
-- below and the DROP COLUMN, leaving it without a job: hold its writers
-- off for this transaction (readers go on). The store's sweep also makes
-- a job for any message not final that lacks one.
LOCK TABLE push_messages IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE push_jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;

-- Every message not final becomes a pending job keeping its due time, its
-- attempts (claims, the one in flight included) and any claim in flight;
-- final messages need none.
INSERT INTO push_jobs (id, kind, grp, ref, payload, state, claims, attempts, next_attempt_at, claim_id, claimed_until,
	created_at, updated_at, held)
	SELECT id, 'push', '', citizen_id, '{}', 'pending', attempts, '[]', next_attempt_at, claim_id, claimed_until,
		created_at, updated_at, quiet_deferred
	FROM push_messages WHERE state IN ('queued', 'sent', 'failed') ORDER BY seq;

-- The messages not final, for the store's repair (a job for any that
-- lacks one), in place of the due index the jobs now hold.
DROP INDEX push_messages_due;
CREATE INDEX push_messages_open ON push_messages (seq) WHERE state IN ('queued', 'sent', 'failed');

-- Claims read the due jobs in (next_attempt_at, seq) order: with seq in
-- the index, many jobs due at the same moment (a quiet-hours morning) are
-- read in index order instead of sorted at every claim.
DROP INDEX push_jobs_due;
CREATE INDEX push_jobs_due ON push_jobs (kind, next_attempt_at, seq) WHERE state = 'pending';
-- Each kind's final jobs are swept on its own retention (push's only, so
-- far).
DROP INDEX push_jobs_final;
CREATE INDEX push_jobs_final ON push_jobs (kind, updated_at) WHERE state IN ('done', 'dead');
ALTER TABLE push_messages DROP COLUMN next_attempt_at, DROP COLUMN claim_id, DROP COLUMN claimed_until,
	DROP COLUMN quiet_deferred;
