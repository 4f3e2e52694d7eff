-- The business registry and the mandates citizens grant one another.
-- Representations are never stored: they are derived from these, the
-- citizen registry's guardianships and a clock. Times are unix
-- milliseconds; lists of service codes and categories are JSON arrays.

CREATE TABLE rep_organisations (
	id TEXT PRIMARY KEY,
	tax_code TEXT COLLATE "C" NOT NULL UNIQUE,
	name TEXT NOT NULL,
	name_en TEXT NOT NULL,
	address TEXT NOT NULL,
	-- The personal id of the citizen who represents it in law.
	legal_representative TEXT NOT NULL,
	status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'dissolved')),
	created_ms BIGINT NOT NULL,
	updated_ms BIGINT NOT NULL
);
CREATE INDEX rep_organisations_legal_rep ON rep_organisations (legal_representative);

CREATE TABLE rep_mandates (
	id TEXT PRIMARY KEY,
	grantor_id TEXT NOT NULL,
	grantee_id TEXT NOT NULL,
	party_type TEXT NOT NULL CHECK (party_type IN ('organisation', 'person')),
	party_id TEXT NOT NULL,
	-- The party's tax code or personal id, and its name when granted: a
	-- snapshot for display, the registries stay the truth.
	party_ref TEXT NOT NULL,
	party_name TEXT NOT NULL,
	services TEXT NOT NULL,
	categories TEXT NOT NULL,
	valid_from_ms BIGINT NOT NULL,
	valid_until_ms BIGINT NOT NULL,
	may_delegate INTEGER NOT NULL,
	-- The mandate its grantor acted under (a sub-delegation); NULL when the
	-- grantor represents the party in their own right.
	parent_id TEXT REFERENCES rep_mandates (id),
	evidence TEXT NOT NULL,
	evidence_device TEXT NOT NULL,
	created_ms BIGINT NOT NULL,
	accepted_ms BIGINT,
	revoked_ms BIGINT,
	revoked_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX rep_mandates_grantee ON rep_mandates (grantee_id, created_ms);
CREATE INDEX rep_mandates_grantor ON rep_mandates (grantor_id, created_ms);
CREATE INDEX rep_mandates_party ON rep_mandates (party_id);
CREATE INDEX rep_mandates_parent ON rep_mandates (parent_id);
