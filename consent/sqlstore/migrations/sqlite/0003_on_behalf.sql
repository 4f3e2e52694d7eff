-- Representation: who acted for the citizen. JSON of consent.OnBehalf, or
-- empty when the citizen acted themselves (every row stored before).
ALTER TABLE consent_records ADD COLUMN given_by TEXT NOT NULL DEFAULT '';
ALTER TABLE consent_log ADD COLUMN on_behalf TEXT NOT NULL DEFAULT '';
