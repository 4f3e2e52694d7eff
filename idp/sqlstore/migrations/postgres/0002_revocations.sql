-- The durable deny list of access tokens (idp.RevocationStore). A key (a
-- grant, a token or a device, named by idp/accesstoken) is revoked while
-- revoked_until (unix ms) is in the future; GarbageCollect deletes the rest.
-- It replaces the ephemeral-store entries, which a Redis restart lost; those
-- denied only tokens without aud or kind, which the verifier now refuses
-- anyway, so nothing needs carrying over.
CREATE TABLE idp_revocations (
	key TEXT PRIMARY KEY,
	revoked_until BIGINT NOT NULL
);
CREATE INDEX idp_revocations_revoked_until ON idp_revocations (revoked_until);
