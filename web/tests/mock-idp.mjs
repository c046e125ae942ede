// A mock OpenID Connect provider for the dashboard's single sign-on walk
// (tests/sso.mjs): the authorization-code flow with PKCE (S256), ID tokens
// signed RS256 with a key pair made at start. Plain Node 20, no packages.
//
// Run: node web/tests/mock-idp.mjs <port>     (port 0: any free port)
// Env: MOCK_IDP_TENANT (the token's custom:tenant; default sso-tenant),
//      MOCK_IDP_TTL_SECS (an ID token's lifetime, exp - iat; default 3600).
//
//   GET  /jwks                      the public key as a JWKS (kid mock-1, RS256)
//   GET  /authorize?...             checks response_type=code, client_id,
//                                   code_challenge_method=S256, remembers the
//                                   challenge and 302s at once to
//                                   redirect_uri?code=<random>&state=<state>;
//                                   login_hint=no-tenant[:<name>] makes that
//                                   code's token a person in no tenant: no
//                                   custom:tenant nor cognito:groups, sub
//                                   no-tenant:<name>, email <name>@example.com
//                                   (<name> defaults to one random per run)
//   POST /token (form)              grant_type=authorization_code: trades the
//                                   code for {id_token, refresh_token, ...} once
//                                   the client, redirect_uri and PKCE verifier
//                                   match; grant_type=refresh_token (with
//                                   refresh_token and client_id): a new ID token
//                                   for the same person (new iat, exp, jti) and a
//                                   new refresh token (rotated: the old one is
//                                   spent); otherwise 400 {"error":
//                                   "invalid_grant" | "unsupported_grant_type", ...}
//   GET  /stats                     {"refreshes": n, "codes": n}: refresh grants
//                                   and code exchanges answered so far
//   GET  /.well-known/openid-configuration, /.well-known/jwks.json  (conveniences)
//
// Every answer carries CORS headers: the dashboard calls /token from its own
// origin. Prints "mock-idp ready on <port>" once listening.

import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

const CLIENT_ID = 'mktg-dashboard';
const KID = 'mock-1';
const CODE_TTL_MS = 5 * 60_000;
const TTL_SECS = (() => {
  const raw = process.env.MOCK_IDP_TTL_SECS;
  if (raw === undefined || raw === '') return 3600;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) {
    console.error(`mock-idp: MOCK_IDP_TTL_SECS must be a whole number of seconds, not ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return Number(raw);
})();
const NO_TENANT_NAME = `solo-${randomBytes(4).toString('hex')}`;

const portArg = process.argv[2];
if (portArg === undefined || !/^\d+$/.test(portArg) || Number(portArg) > 65535) {
  console.error('usage: node web/tests/mock-idp.mjs <port>');
  process.exit(2);
}

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' }] };

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sha256 = (text) => createHash('sha256').update(text).digest();

/** code -> {challenge, redirectUri, clientId, at, noTenant} of an authorization not yet traded. */
const codes = new Map();
/** refresh token -> {clientId, noTenant}: the person a refresh grant signs in again. */
const refreshTokens = new Map();
const stats = { refreshes: 0, codes: 0 };
let issuer = ''; // http://127.0.0.1:<port>, once listening

/** The login_hint's person in no tenant: its name, or null for the usual person (dana, an editor of MOCK_IDP_TENANT). */
function noTenantName(hint) {
  const m = /^no-tenant(?::([A-Za-z0-9._-]{1,64}))?$/.exec(hint || '');
  return m ? (m[1] || NO_TENANT_NAME) : null;
}

function idToken(noTenant = null) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', kid: KID, typ: 'JWT' };
  const who = noTenant
    ? { sub: `no-tenant:${noTenant}`, email: `${noTenant}@example.com` }
    : {
      sub: 'user-1',
      email: 'dana@example.com',
      'custom:tenant': process.env.MOCK_IDP_TENANT || 'sso-tenant',
      'cognito:groups': ['editor'],
    };
  const claims = {
    iss: issuer,
    aud: CLIENT_ID,
    exp: now + TTL_SECS,
    iat: now,
    jti: b64url(randomBytes(9)), // every token differs, even two in the same second
    ...who,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // RSASSA-PKCS1-v1_5 with SHA-256: Node's default padding for an RSA key.
  return `${input}.${b64url(sign('sha256', Buffer.from(input), privateKey))}`;
}

const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
  'Access-Control-Allow-Headers': 'content-type, accept, authorization',
  'Access-Control-Max-Age': '600',
};

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    ...CORS,
    'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

const log = (...args) => console.log(`mock-idp: ${args.join(' ')}`);

function authorize(q, res) {
  const need = [
    ['response_type', 'code'],
    ['client_id', CLIENT_ID],
    ['code_challenge_method', 'S256'],
  ];
  for (const [name, want] of need) {
    if (q.get(name) !== want) {
      return send(res, 400, { error: 'invalid_request', error_description: `${name} must be ${want}, not ${JSON.stringify(q.get(name))}` });
    }
  }
  const challenge = q.get('code_challenge') || '';
  if (!/^[A-Za-z0-9_-]{43}$/.test(challenge)) {
    return send(res, 400, { error: 'invalid_request', error_description: 'code_challenge must be base64url(SHA-256(verifier)), 43 characters' });
  }
  let redirect;
  try {
    redirect = new URL(q.get('redirect_uri') || '');
  } catch {
    return send(res, 400, { error: 'invalid_request', error_description: `redirect_uri ${JSON.stringify(q.get('redirect_uri'))} is not a URL` });
  }
  const hint = q.get('login_hint');
  const noTenant = noTenantName(hint);
  if (hint && !noTenant) {
    return send(res, 400, { error: 'invalid_request', error_description: `login_hint must be no-tenant or no-tenant:<name>, not ${JSON.stringify(hint)}` });
  }
  const code = b64url(randomBytes(24));
  codes.set(code, { challenge, redirectUri: redirect.href, clientId: CLIENT_ID, at: Date.now(), noTenant });
  redirect.searchParams.set('code', code);
  if (q.has('state')) redirect.searchParams.set('state', q.get('state'));
  log(`authorize: code for ${redirect.origin}${redirect.pathname} (scope ${q.get('scope') || '-'})${noTenant ? `, a person in no tenant (${noTenant})` : ''}`);
  return send(res, 302, '', { Location: redirect.href });
}

/** A refresh token for the person `grant` names; spent by its first use. */
function newRefreshToken(grant) {
  const t = b64url(randomBytes(32));
  refreshTokens.set(t, { clientId: grant.clientId, noTenant: grant.noTenant });
  return t;
}

/** The token endpoint's answer: an ID token and a refresh token for the person `grant` names. */
function tokens(grant) {
  return { id_token: idToken(grant.noTenant), refresh_token: newRefreshToken(grant), token_type: 'Bearer', expires_in: TTL_SECS };
}

function token(form, res) {
  const refuse = (why) => {
    log(`token: refused: ${why}`);
    return send(res, 400, { error: 'invalid_grant', error_description: why });
  };
  const grantType = form.get('grant_type');
  if (grantType === 'refresh_token') {
    const presented = form.get('refresh_token') || '';
    const held = refreshTokens.get(presented);
    if (!held) return refuse('unknown or spent refresh_token');
    if (form.get('client_id') !== held.clientId) return refuse(`client_id ${JSON.stringify(form.get('client_id'))} is not the one the refresh token was issued to`);
    refreshTokens.delete(presented); // rotated: a refresh token is good once
    stats.refreshes += 1;
    log(`token: refreshed an ID token (${stats.refreshes} so far)${held.noTenant ? ' with no tenant claim' : ''}`);
    return send(res, 200, tokens(held));
  }
  if (grantType !== 'authorization_code') {
    return send(res, 400, { error: 'unsupported_grant_type', error_description: 'grant_type must be authorization_code or refresh_token' });
  }
  const code = form.get('code') || '';
  const grant = codes.get(code);
  codes.delete(code); // a code is good once, whatever the outcome
  if (!grant || Date.now() - grant.at > CODE_TTL_MS) return refuse('unknown, used or expired code');
  if (form.get('client_id') !== grant.clientId) return refuse(`client_id ${JSON.stringify(form.get('client_id'))} is not the one the code was issued to`);
  if (form.get('redirect_uri') !== grant.redirectUri) {
    return refuse(`redirect_uri ${JSON.stringify(form.get('redirect_uri'))} differs from the authorization request's ${JSON.stringify(grant.redirectUri)}`);
  }
  const verifier = form.get('code_verifier') || '';
  if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) return refuse('code_verifier must be 43-128 characters of [A-Za-z0-9._~-]');
  if (b64url(sha256(verifier)) !== grant.challenge) return refuse('code_verifier does not match the code_challenge (PKCE)');
  stats.codes += 1;
  log(`token: issued an ID token (valid ${TTL_SECS} s) and a refresh token${grant.noTenant ? ' with no tenant claim' : ''}`);
  return send(res, 200, tokens(grant));
}

const server = createServer((req, res) => {
  const url = new URL(req.url, issuer || 'http://127.0.0.1');
  const route = `${req.method} ${url.pathname}`;
  if (req.method === 'OPTIONS') return send(res, 204, '');
  if (route === 'GET /jwks' || route === 'GET /.well-known/jwks.json') return send(res, 200, jwks);
  if (route === 'GET /.well-known/openid-configuration') {
    return send(res, 200, {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      id_token_signing_alg_values_supported: ['RS256'],
      subject_types_supported: ['public'],
      scopes_supported: ['openid', 'email'],
    });
  }
  if (route === 'GET /authorize') return authorize(url.searchParams, res);
  if (route === 'GET /stats') return send(res, 200, stats);
  if (route === 'POST /token') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 64 * 1024) req.destroy();
    });
    req.on('end', () => token(new URLSearchParams(body), res));
    return undefined;
  }
  return send(res, 404, { error: 'not_found', error_description: `no route ${route}` });
});

server.listen(Number(portArg), '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  console.log(`mock-idp ready on ${port} (ID tokens valid ${TTL_SECS} s)`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
