-- A push message's job row is written at every enqueue, and each index on
-- push_jobs is one more B-tree written with it (ref's: a random citizen's
-- page). Only what some query reads is indexed, and partial indexes leave
-- out the rows no query looks for; the queries repeat each predicate so
-- the planners (which cannot prove it from a parameter) pick the index.
--
-- Busy jobs (claimed, lease running) are counted per group at a fair
-- claim; a job enqueued or recorded has claimed_until 0 and is not in it.
DROP INDEX push_jobs_busy;
CREATE INDEX push_jobs_busy ON push_jobs (kind, claimed_until) WHERE state = 'pending' AND claimed_until > 0;
-- A job is listed or deleted by its ref (a webhook's delivery log) except
-- push jobs, the bulk of the queue: their citizen's messages are read from
-- push_messages; only their held ones are looked up by citizen (new
-- preferences release them: with next_attempt_at in the index, which the
-- release reads too, the planner prefers it to push_jobs_due), and few are
-- held.
DROP INDEX push_jobs_ref;
CREATE INDEX push_jobs_ref ON push_jobs (kind, ref, created_at DESC, id DESC) WHERE kind <> 'push';
CREATE INDEX push_jobs_held ON push_jobs (kind, ref, next_attempt_at) WHERE held = 1;
