-- The consent trail: every grant, re-grant and withdrawal of a consent
-- record (the record as it then stood: JSON of consent.RecordState, with
-- the SHA-256 of its receipt), and every citizen's flag on an access-log
-- entry (the entry, the flag's time, the SHA-256 of its note). One hash
-- chain (consent.RecordEvent); its head is the chain head
-- '#consent-records', committed by checkpoints like a citizen's, so a
-- record or a flag changed by hand is found by onedoor audit verify. Rows
-- are only inserted.
CREATE TABLE consent_record_trail (
	seq BIGINT PRIMARY KEY CHECK (seq >= 1),
	id TEXT NOT NULL UNIQUE,
	at BIGINT NOT NULL,
	action TEXT NOT NULL,
	citizen_id TEXT NOT NULL,
	consent_id TEXT NOT NULL,
	state TEXT NOT NULL,
	receipt BYTEA,
	entry_id TEXT NOT NULL,
	note BYTEA,
	prev BYTEA,
	hash BYTEA NOT NULL
);
-- Present until the records and flags stored before the trail are
-- adopted into it (once, by the first Migrate that runs this binary).
CREATE TABLE consent_record_adopt (
	id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO consent_record_adopt (id) VALUES (1);
