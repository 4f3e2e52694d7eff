-- Witnesses' cosignatures of the audit checkpoints (c2sp.org/tlog-witness):
-- what the operator cannot forge. Root is the cosigned root, kept here so
-- a checkpoint row changed or removed later is found. Signature is the
-- note signature after the key hash (timestamp || Ed25519 signature).
-- Rows are only inserted.
CREATE TABLE consent_cosignatures (
	witness TEXT NOT NULL,
	key_hash BIGINT NOT NULL,
	size BIGINT NOT NULL CHECK (size >= 1),
	root BLOB NOT NULL,
	signature BLOB NOT NULL,
	signed_at BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (witness, key_hash, size)
);
CREATE INDEX consent_cosignatures_size ON consent_cosignatures (size);
