-- A client's security profile: '' for none, 'fapi2' for the FAPI 2.0
-- Security Profile (idp.ProfileFAPI2), whose rules the IdP enforces on the
-- client's every request. Existing clients follow none.

ALTER TABLE idp_clients ADD COLUMN profile TEXT NOT NULL DEFAULT '';
