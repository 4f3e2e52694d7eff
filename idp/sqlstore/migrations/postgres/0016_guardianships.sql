-- Guardianships: who may act for a ward. A registry guardianship (a parent
-- or guardian recorded with the citizen) ends at the ward's majority, which
-- representation derives from the birthdate; a court's ends at until_ms, or
-- never. An operator ending one early sets ended_ms; the row stays, so what
-- was recorded is never lost. Times are unix milliseconds.
CREATE TABLE idp_guardianships (
	ward_id TEXT NOT NULL REFERENCES idp_citizens (id),
	guardian_id TEXT NOT NULL REFERENCES idp_citizens (id),
	source TEXT NOT NULL CHECK (source IN ('registry', 'court')),
	until_ms BIGINT,
	created_ms BIGINT NOT NULL,
	ended_ms BIGINT,
	PRIMARY KEY (ward_id, guardian_id, source),
	CHECK (ward_id <> guardian_id)
);
CREATE INDEX idp_guardianships_guardian ON idp_guardianships (guardian_id);
