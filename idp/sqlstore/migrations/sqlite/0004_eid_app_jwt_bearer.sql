-- The eID app obtains its own tokens with the RFC 7523 JWT-bearer grant, an
-- assertion signed by its device key (docs/eid-app-protocol.md), never through
-- a browser flow that anyone could start and show to a victim as a QR code.
-- Its client loses authorization_code and refresh_token (its refresh tokens
-- stop working: fosite's refresh handler requires the client's refresh_token
-- grant), its redirect URI (so /authorize refuses it before any login page,
-- for want of a redirect URI to validate) and offline_access (the grant issues
-- no refresh token).
UPDATE idp_clients
SET grant_types = '["urn:ietf:params:oauth:grant-type:jwt-bearer"]',
	redirect_uris = '[]',
	scopes = '["openid","profile","eid","phone","address"]'
WHERE id = 'onedoor-eid-app';
