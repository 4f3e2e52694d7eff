-- Verification reads each citizen's committed leaves beside their chain.
CREATE INDEX consent_tree_leaves_citizen ON consent_tree_leaves (citizen_id, seq);
