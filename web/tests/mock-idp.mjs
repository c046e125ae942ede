// A mock OpenID Connect provider for the dashboard's single sign-on walk
// (tests/sso.mjs): the authorization-code flow with PKCE (S256), ID tokens
// signed RS256 with a key pair made at start. Plain Node 20, no packages.
//
// Run: node web/tests/mock-idp.mjs <port>     (port 0: any free port)
// Env: MOCK_IDP_TENANT (the token's custom:tenant; default sso-tenant).
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
//   POST /token (form)              trades the code for {id_token, ...} once the
//                                   client, redirect_uri and PKCE verifier match;
//                                   otherwise 400 {"error": "invalid_grant", ...}
//   GET  /.well-known/openid-configuration, /.well-known/jwks.json  (conveniences)
//
// Every answer carries CORS headers: the dashboard calls /token from its own
// origin. Prints "mock-idp ready on <port>" once listening.

import { createServer } from 'node:http';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

const CLIENT_ID = 'mktg-dashboard';
const KID = 'mock-1';
const CODE_TTL_MS = 5 * 60_000;
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
    exp: now + 3600,
    iat: now,
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

function token(form, res) {
  const refuse = (why) => {
    log(`token: refused: ${why}`);
    return send(res, 400, { error: 'invalid_grant', error_description: why });
  };
  if (form.get('grant_type') !== 'authorization_code') {
    return send(res, 400, { error: 'unsupported_grant_type', error_description: 'grant_type must be authorization_code' });
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
  log(`token: issued an ID token${grant.noTenant ? ' with no tenant claim' : ''}`);
  return send(res, 200, { id_token: idToken(grant.noTenant), token_type: 'Bearer', expires_in: 3600 });
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
      grant_types_supported: ['authorization_code'],
      code_challenge_methods_supported: ['S256'],
      id_token_signing_alg_values_supported: ['RS256'],
      subject_types_supported: ['public'],
      scopes_supported: ['openid', 'email'],
    });
  }
  if (route === 'GET /authorize') return authorize(url.searchParams, res);
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
  console.log(`mock-idp ready on ${port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
