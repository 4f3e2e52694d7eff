-- Representation: an application is filed by its applicant (citizen_id)
-- for a subject, the applicant themself or a party they represent (a ward,
-- a mandator, an organisation). Names and refs are kept as they were when
-- it was filed. Existing rows are the applicant's own.
ALTER TABLE api_applications ADD COLUMN applicant_name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_applications ADD COLUMN subject_type TEXT NOT NULL DEFAULT 'person';
ALTER TABLE api_applications ADD COLUMN subject_id TEXT NOT NULL DEFAULT '';
ALTER TABLE api_applications ADD COLUMN subject_name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_applications ADD COLUMN subject_ref TEXT NOT NULL DEFAULT '';
-- A mandate may be bounded by service category: the category of the
-- version the application follows.
ALTER TABLE api_applications ADD COLUMN service_category TEXT NOT NULL DEFAULT '';
UPDATE api_applications SET subject_id = citizen_id WHERE subject_id = '';
UPDATE api_applications SET service_category = COALESCE((SELECT v.category FROM api_service_versions v
	WHERE v.service_id = api_applications.service_id AND v.version = api_applications.service_version), '');
-- The lists of applications about a party (the subject, its
-- representatives), newest change first.
CREATE INDEX api_applications_subject ON api_applications (subject_id, updated_at DESC, id DESC);

-- Whether a service accepts applications filed for someone else:
-- 'refused', or 'allowed' ('' means allowed, as on every older version).
ALTER TABLE api_service_versions ADD COLUMN representation TEXT NOT NULL DEFAULT '';
