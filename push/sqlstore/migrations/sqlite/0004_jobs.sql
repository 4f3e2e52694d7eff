-- The durable job queue (push/queue): every long-running delivery that is
-- not a push message (webhook deliveries first). A pending job is due at
-- next_attempt_at and hidden from other workers until claimed_until; grp
-- caps a group's jobs in flight; ref owns the job (listing, cancelling).
-- attempts is a JSON array of the recorded attempts, oldest first; claims
-- counts claims, recorded or not.
CREATE TABLE push_jobs (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,
	kind TEXT NOT NULL,
	grp TEXT NOT NULL,
	ref TEXT NOT NULL,
	payload TEXT NOT NULL, -- JSON, the kind's own
	state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'dead')),
	claims INTEGER NOT NULL,
	attempts TEXT NOT NULL,
	next_attempt_at INTEGER, -- NULL once final
	claim_id TEXT NOT NULL,
	claimed_until INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX push_jobs_due ON push_jobs (kind, next_attempt_at) WHERE state = 'pending';
CREATE INDEX push_jobs_busy ON push_jobs (kind, claimed_until) WHERE state = 'pending';
CREATE INDEX push_jobs_ref ON push_jobs (kind, ref, created_at DESC, id DESC);
CREATE INDEX push_jobs_final ON push_jobs (updated_at) WHERE state IN ('done', 'dead');
