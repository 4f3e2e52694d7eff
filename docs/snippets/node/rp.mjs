// An agency site that logs a citizen in with OneDoor, using openid-client v6
// (Node 20 or later). Run it with:
//
//   ONEDOOR_ISSUER=http://localhost:8080 CLIENT_ID=... CLIENT_SECRET=... \
//   REDIRECT_URI=http://localhost:3000/oidc/callback PORT=3000 node rp.mjs
//
// and open http://localhost:3000/login. REDIRECT_URI must be registered
// exactly (`onedoor client create --redirect-uri ...`). SCOPE overrides the
// scopes asked: SCOPE='openid representation' lets the citizen log in for a
// company or a ward, and the claims returned then carry act and
// representation.
import * as http from 'node:http';
import * as client from 'openid-client';

const issuer = new URL(process.env.ONEDOOR_ISSUER);
const redirectURI = process.env.REDIRECT_URI;

// Discovery; the client authenticates as registered (client_secret_basic is
// `onedoor client create`'s default). Plain http is for a loopback issuer in
// development only.
const config = await client.discovery(
  issuer,
  process.env.CLIENT_ID,
  undefined,
  client.ClientSecretBasic(process.env.CLIENT_SECRET),
  issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : undefined,
);

// Pending logins by a random id kept in a cookie. A real site keeps them in
// its session store.
const pending = new Map();

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, redirectURI);
  try {
    if (url.pathname === '/login') {
      const login = {
        verifier: client.randomPKCECodeVerifier(),
        state: client.randomState(),
        nonce: client.randomNonce(),
      };
      const id = client.randomState();
      pending.set(id, login);
      setTimeout(() => pending.delete(id), 5 * 60 * 1000).unref();
      const to = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectURI,
        scope: process.env.SCOPE || 'openid profile eid',
        code_challenge: await client.calculatePKCECodeChallenge(login.verifier),
        code_challenge_method: 'S256',
        state: login.state,
        nonce: login.nonce,
      });
      res.writeHead(302, {
        Location: to.href,
        'Set-Cookie': `login=${id}; Path=/; HttpOnly; SameSite=Lax; Max-Age=300`,
      });
      return res.end();
    }
    if (url.pathname === new URL(redirectURI).pathname) {
      const id = /(?:^|;\s*)login=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
      const login = pending.get(id);
      pending.delete(id);
      if (!login) throw new Error('no login in progress');
      // Checks the state, the iss parameter (RFC 9207), the PKCE verifier,
      // the ID token's signature, iss, aud, exp and nonce.
      const tokens = await client.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: login.verifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ id_token: claims, userinfo }));
    }
    res.writeHead(404).end();
  } catch (err) {
    // An OAuth error from OneDoor (such as access_denied when the citizen
    // refused) arrives here too.
    res.writeHead(400, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: err.error ?? err.code ?? 'login_failed', message: err.message }));
  }
});

server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
