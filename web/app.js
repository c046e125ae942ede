// mktg dashboard: one ES module, no framework, no build step.
// Talks to the API described in web/CONTRACT.md (same origin).

/* ------------------------------------------------------------------ */
/* DOM helpers                                                          */
/* ------------------------------------------------------------------ */

const SVG_NS = 'http://www.w3.org/2000/svg';
const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open']);

/** Builds an element: h('div', {class: 'x', testid: 'y', onclick}, child, ...). */
function h(tag, props, ...children) {
  const isSvg = tag.startsWith('svg:');
  const el = isSvg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'testid') el.setAttribute('data-testid', v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (!isSvg && PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

const s = (tag, props, ...children) => h('svg:' + tag, props, ...children);

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const $ = (sel, root = document) => root.querySelector(sel);

/* ------------------------------------------------------------------ */
/* Formatting                                                           */
/* ------------------------------------------------------------------ */

function usd(v) {
  if (v == null || Number.isNaN(Number(v))) return '—';
  const n = Number(v);
  if (n !== 0 && Math.abs(n) < 1) return '$' + n.toFixed(4).replace(/0{1,2}$/, ''); // $0.0415, $0.05
  return '$' + n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function int(v) {
  return v == null ? '—' : Number(v).toLocaleString();
}

function when(ms) {
  if (!ms) return '—';
  return new Date(Number(ms)).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function clock(ms) {
  if (!ms) return '';
  return new Date(Number(ms)).toLocaleTimeString(undefined, { hour12: false });
}

function ago(ms) {
  if (!ms) return '';
  const d = (Date.now() - Number(ms)) / 1000;
  const f = (n, u) => `${Math.round(n)} ${u}${Math.round(n) === 1 ? '' : 's'}`;
  const abs = Math.abs(d);
  const txt = abs < 45 ? 'just now'
    : abs < 3600 ? f(abs / 60, 'minute')
    : abs < 86400 ? f(abs / 3600, 'hour')
    : f(abs / 86400, 'day');
  if (txt === 'just now') return txt;
  return d >= 0 ? `${txt} ago` : `in ${txt}`;
}

const human = (status) => String(status ?? '').replace(/_/g, ' ');

/** A status pill; the colour comes from the status (see style.css). */
function pill(status, testid, extra = '') {
  const v = String(status ?? 'unknown');
  return h('span', {
    class: `pill s-${v.toLowerCase().replace(/[^a-z0-9]+/g, '-')} ${extra}`.trim(),
    'data-status': v,
    testid,
  }, human(v));
}

function json(v) {
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/* ------------------------------------------------------------------ */
/* Session                                                              */
/* ------------------------------------------------------------------ */

const KEY_STORE = 'mktg.key';
// The provider's refresh token of an SSO sign-in, beside its ID token (the key).
const REFRESH_STORE = 'mktg.refresh';
const ROLE_RANK = { viewer: 0, editor: 1, owner: 2 };

const state = {
  key: sessionStorage.getItem(KEY_STORE) || '',
  refresh: sessionStorage.getItem(REFRESH_STORE) || null,
  me: null, // {tenant, role, auth}
  // A person signed in with SSO whose token names no organisation (the API
  // answers 401 no_tenant): {token, refresh, who}, until they create one or leave.
  newcomer: null,
  submitted: new Map(), // goal id -> text, for goals the director has not planned yet
};

const can = (role) => (ROLE_RANK[state.me?.role] ?? -1) >= ROLE_RANK[role];

/* ------------------------------------------------------------------ */
/* Single sign-on: OpenID Connect authorization code flow with PKCE     */
/* ------------------------------------------------------------------ */

// The sign-in this tab started, {state, verifier, next}: read once, when
// the provider sends the browser back here with ?code=&state=.
const SSO_STORE = 'mktg.sso';

let authConfig = null; // the promise of GET /auth/config, read once per page load

/** GET /auth/config (no key needed); null when it cannot be read. */
function loadAuthConfig() {
  authConfig ||= api('GET', '/auth/config', undefined, { quiet: true, auth: false }).catch(() => {
    authConfig = null; // ask again next time
    return null;
  });
  return authConfig;
}

const ssoReady = (cfg) => !!(cfg?.oidc?.authorize_url && cfg.oidc.token_url && cfg.oidc.client_id);

/** The redirect URI registered with the provider: the dashboard's root. */
const redirectUri = () => `${location.origin}/`;

function base64url(bytes) {
  let bin = '';
  for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const randomToken = (bytes) => base64url(crypto.getRandomValues(new Uint8Array(bytes)));

const ssoError = (code, message, status = 0) => new ApiError(status, code, message);

/** The claims of a JWT (its base64url JSON payload, not verified: the API does that); null when it is not one. */
function tokenClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, '=')), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** The email (else the subject) an ID token names, for the page only; '' when it cannot be read. */
function tokenWho(token) {
  const claims = tokenClaims(token);
  return claims ? String(claims.email || claims.preferred_username || claims.sub || '') : '';
}

/** Milliseconds until a token's `exp`; null when it names none (an API key). */
function tokenLeft(token) {
  const exp = Number(tokenClaims(token)?.exp);
  return Number.isFinite(exp) && exp > 0 ? exp * 1000 - Date.now() : null;
}

/**
 * When the API refused a token with 401 no_tenant (a person the provider
 * signed in, in no organisation here yet), keeps it so the sign-in page can
 * offer "Create your organisation"; true when it did.
 */
function welcomeNewcomer(token, err, refresh = null) {
  if (err?.code !== 'no_tenant') return false;
  state.newcomer = { token, refresh, who: tokenWho(token) };
  return true;
}

/** Sends the browser to the provider's sign-in page; `next` is where to land afterwards. */
async function startSso(oidc, next) {
  if (!crypto.subtle) {
    throw ssoError('insecure_context', 'Single sign-on needs a secure page (https, or http on localhost or 127.0.0.1): this browser offers no crypto.subtle here.');
  }
  const verifier = randomToken(32); // 43 characters
  const st = randomToken(16);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(SSO_STORE, JSON.stringify({ state: st, verifier, next: next || null }));
  const url = new URL(oidc.authorize_url, location.href);
  const q = url.searchParams;
  q.set('response_type', 'code');
  q.set('client_id', oidc.client_id);
  q.set('redirect_uri', redirectUri());
  q.set('scope', oidc.scopes || 'openid email');
  q.set('state', st);
  q.set('code_challenge', challenge);
  q.set('code_challenge_method', 'S256');
  location.assign(url.href);
}

/**
 * Finishes the sign-in the provider sent back (?code=&state=, or ?error=):
 * checks the state, trades the code and the PKCE verifier for tokens at the
 * token endpoint and returns {token: the ID token, next}.
 */
async function finishSso(params) {
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(SSO_STORE) || 'null');
  } catch {
    saved = null;
  }
  sessionStorage.removeItem(SSO_STORE); // one use, whatever happens next
  if (params.get('error')) {
    throw ssoError(params.get('error'), `The sign-in provider did not sign you in: ${params.get('error_description') || params.get('error')}`);
  }
  if (!saved?.state || !saved.verifier) {
    throw ssoError('sso_not_started', 'Single sign-on failed: this tab did not start a sign-in (or already finished it). Sign in again.');
  }
  if (params.get('state') !== saved.state) {
    throw ssoError('state_mismatch', 'Single sign-on failed: the state the provider sent back does not match the one this tab sent. Sign in again.');
  }
  const cfg = await loadAuthConfig();
  if (!ssoReady(cfg)) {
    throw ssoError('sso_unavailable', 'Single sign-on failed: GET /auth/config no longer names a token endpoint.');
  }
  const { oidc } = cfg;
  let answer;
  try {
    answer = await tokenEndpoint(oidc, {
      grant_type: 'authorization_code',
      client_id: oidc.client_id,
      code: params.get('code') || '',
      redirect_uri: redirectUri(),
      code_verifier: saved.verifier,
    });
  } catch (e) {
    throw ssoError('token_unreachable', `Single sign-on failed: could not reach the token endpoint ${oidc.token_url} (${e.message}).`);
  }
  const { data } = answer;
  if (!answer.ok) {
    throw ssoError('token_refused', `Single sign-on failed: the token endpoint refused the code (${answer.why}).`, answer.status);
  }
  if (typeof data?.id_token !== 'string' || !data.id_token) {
    throw ssoError('no_id_token', 'Single sign-on failed: the token endpoint answered without an id_token (is the openid scope allowed?).');
  }
  const refresh = typeof data.refresh_token === 'string' && data.refresh_token ? data.refresh_token : null;
  return { token: data.id_token, refresh, next: saved.next };
}

/**
 * POSTs a form to the provider's token endpoint (the code exchange, a
 * refresh): {ok, status, data: the JSON answer or null, why: the refusal's
 * reason}. Throws when the endpoint cannot be reached.
 */
async function tokenEndpoint(oidc, form) {
  const res = await fetch(oidc.token_url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(form),
  });
  const text = await res.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = null;
  }
  const why = res.ok ? ''
    : data?.error ? `${data.error}${data.error_description ? `: ${data.error_description}` : ''}`
    : text.slice(0, 300) || res.statusText || 'no reason given';
  return { ok: res.ok, status: res.status, data, why };
}

/* ---------- Keeping an SSO sign-in fresh ---------- */

// Refresh when the ID token has less than this left (the API allows a
// minute of clock skew past `exp`; the dashboard does not count on it).
const REFRESH_BEFORE_MS = 60_000;
// How often a signed-in tab looks at its token's expiry between calls.
const REFRESH_CHECK_MS = 10_000;

let refreshing = null; // the refresh under way: every caller waits for the same one

/**
 * Trades the stored refresh token for a new ID token (and maybe a new
 * refresh token) at the provider's token endpoint: true when the session
 * has a usable token afterwards. A refusal (or no endpoint) ends the
 * sign-in: signed out with "your sign-in expired". A provider out of reach
 * leaves a token that has not expired yet in place, to try again later.
 */
function refreshSignIn() {
  refreshing ||= (async () => {
    const from = state.refresh;
    if (!from) return false;
    const cfg = await loadAuthConfig();
    if (!ssoReady(cfg)) return signInExpired('the API no longer names a token endpoint');
    let answer;
    try {
      answer = await tokenEndpoint(cfg.oidc, { grant_type: 'refresh_token', refresh_token: from, client_id: cfg.oidc.client_id });
    } catch (e) {
      if (state.refresh !== from) return false;
      if ((tokenLeft(state.key) ?? 0) > 0) return true; // still good for now: the next check tries again
      return signInExpired(`the token endpoint is out of reach: ${e.message}`);
    }
    if (state.refresh !== from) return false; // signed out (or in again) meanwhile
    const token = answer.data?.id_token;
    if (!answer.ok || typeof token !== 'string' || !token) {
      return signInExpired(answer.ok ? 'the token endpoint answered without an id_token' : `the token endpoint refused to refresh it (${answer.why})`);
    }
    state.key = token;
    if (typeof answer.data.refresh_token === 'string' && answer.data.refresh_token) state.refresh = answer.data.refresh_token;
    sessionStorage.setItem(KEY_STORE, state.key);
    sessionStorage.setItem(REFRESH_STORE, state.refresh);
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/**
 * Before a call with the session's token: an SSO sign-in whose ID token
 * has less than a minute left is refreshed first. Throws (an error already
 * shown) when that ended the sign-in.
 */
async function keepSignedIn() {
  if (!state.refresh) return;
  const left = tokenLeft(state.key);
  if (left == null || left >= REFRESH_BEFORE_MS) return;
  if (!(await refreshSignIn())) throw endedError();
}

const EXPIRED_MESSAGE = 'Your sign-in expired; sign in again.';

/** The error a call gets when the sign-in ended under it: already shown, so not again. */
function endedError() {
  const err = new ApiError(401, 'sign_in_expired', EXPIRED_MESSAGE);
  err.shown = true;
  return err;
}

let booted = false; // the router runs (boot() has drawn the first page)

/** Signs out because the SSO sign-in could not be refreshed, and says so on the sign-in page; false. */
function signInExpired(why) {
  console.warn(`mktg: the SSO sign-in could not be refreshed: ${why}`);
  if (!state.key && !state.me) return false;
  signOut();
  flash(new ApiError(401, 'sign_in_expired', EXPIRED_MESSAGE));
  if (booted) route(); // to the sign-in page, which shows the message (and comes back here after)
  return false;
}

/**
 * A sign-in carried by the address: the provider's ?code=&state= (or
 * ?error=), or a one-click `#key=<API key>` link. Takes it out of the
 * address at once and signs in; returns where to go next, or null when
 * there was nothing to do. A failure is shown once the page has rendered.
 */
async function signInFromUrl() {
  const url = new URL(location.href);
  const q = url.searchParams;
  if (q.has('code') || q.has('error')) {
    history.replaceState(null, '', `${url.pathname}${url.hash}`);
    try {
      const { token, refresh, next } = await finishSso(q);
      try {
        await signIn(token, { refresh });
      } catch (err) {
        // Signed in, but in no organisation: the sign-in page offers to create one.
        if (welcomeNewcomer(token, err, refresh)) return null;
        throw ssoError(err.code || 'unauthorized', `Single sign-on failed: the API did not accept the ID token: ${err.message}`, err.status);
      }
      return next || '';
    } catch (err) {
      flash(err);
      return null;
    }
  }
  const m = /^#key=(.+)$/.exec(url.hash);
  if (m) {
    history.replaceState(null, '', `${url.pathname}${url.search}`);
    let key = m[1];
    try {
      key = decodeURIComponent(key);
    } catch {
      /* a raw key */
    }
    try {
      await signIn(key.trim());
      return '';
    } catch (err) {
      flash(err);
      return null;
    }
  }
  return null;
}

/* ------------------------------------------------------------------ */
/* Banners and the API helper                                           */
/* ------------------------------------------------------------------ */

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    this.shown = false;
  }
}

function banner(kind, message, detail) {
  const host = $('#banners');
  const close = h('button', { class: 'banner-close', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×');
  const el = h('div', {
    class: `banner ${kind}`,
    role: kind === 'error' ? 'alert' : 'status',
    testid: kind === 'error' ? 'error-banner' : 'toast',
  },
  h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, kind === 'error' ? '!' : '✓'),
  h('span', { class: 'banner-text' }, message, detail ? h('span', { class: 'banner-detail' }, detail) : null),
  close);
  host.append(el);
  if (kind !== 'error') setTimeout(() => el.remove(), 4000);
  return el;
}

const toast = (message) => banner('ok', message);

function clearBanners() {
  replace($('#banners'));
}

// Errors from before the first page rendered (a sign-in from the address):
// the router clears banners when it shows a page, so it shows these after.
const flashes = [];
const flash = (err) => flashes.push(err);

/** Shows an error once: API errors by their message, anything else as a bug. */
function report(err) {
  if (err instanceof ApiError) {
    if (!err.shown) {
      err.shown = true;
      banner('error', err.message, err.code ? ` (${err.code}${err.status ? `, HTTP ${err.status}` : ''})` : '');
    }
    return;
  }
  console.error(err);
  banner('error', `Something went wrong in the dashboard: ${err?.message ?? err}`);
}

/**
 * fetch with the session's bearer (or `bearer`, a token other than the
 * session's; none with `auth: false`). An SSO sign-in about to expire is
 * refreshed first; when the API answers 401 to the session's ID token
 * anyway, it is refreshed once more and the request sent again, once.
 */
async function authFetch(path, { bearer = null, auth = true, headers = {}, ...init } = {}) {
  const session = !bearer && auth;
  if (session) await keepSignedIn();
  const send = () => {
    const token = bearer || (auth ? state.key : '');
    return fetch(path, { ...init, headers: token ? { ...headers, Authorization: `Bearer ${token}` } : headers });
  };
  const res = await send();
  if (res.status !== 401 || !session || !state.refresh) return res;
  const body = await res.clone().json().catch(() => null);
  if (body?.code === 'no_tenant') return res; // who they are is fine; a new token says the same
  const used = state.key;
  if (!(await refreshSignIn())) throw endedError();
  return state.key && state.key !== used ? send() : res;
}

/** The ApiError of an HTTP error answer, carrying its body's code and message. */
function httpError(res, text, data) {
  const message = (data && typeof data.message === 'string' && data.message)
    || text.slice(0, 300) || res.statusText || 'request failed';
  return new ApiError(res.status, data?.code || `http_${res.status}`, message);
}

/**
 * Every request goes through here: adds the key (or `bearer`, a token other
 * than the session's), sends/parses JSON and turns an HTTP error into an
 * ApiError carrying the body's message, shown as a banner unless `quiet`
 * (true, or a list of statuses the caller handles).
 */
async function api(method, path, body, { quiet = false, auth = true, bearer = null } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await authFetch(path, { method, headers, bearer, auth, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    if (e instanceof ApiError) throw e; // the sign-in ended: said already
    const err = new ApiError(0, 'network', `Could not reach the API (${method} ${path}): ${e.message}`);
    if (quiet !== true) report(err);
    throw err;
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = httpError(res, text, data);
    const silent = quiet === true || (Array.isArray(quiet) && quiet.includes(res.status));
    if (!silent) report(err);
    throw err;
  }
  if (data === null && text) {
    const err = new ApiError(res.status, 'bad_json', `${method} ${path} answered something that is not JSON`);
    if (quiet !== true) report(err);
    throw err;
  }
  return data ?? {};
}

/** The ApiError of an HTTP error answer not read yet. */
async function errorOf(res) {
  const text = await res.text().catch(() => '');
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = null;
  }
  return httpError(res, text, data);
}

/* ---------- Server-sent events, read with fetch ---------- */

/**
 * A parser of the text/event-stream wire format: push() the text as it
 * arrives; a blank line ends an event, which goes to onEvent({type, data,
 * lastEventId}) when it had data (`data:` lines joined with "\n"; type
 * "message" unless `event:` named one). `lastId` is the last `id:` seen
 * (kept across events), `retry` the last `retry:` in ms (else null); lines
 * starting with ':' are comments. An event cut off by the end of the body
 * is dropped, as EventSource does.
 */
function sseParser(onEvent, lastId = '') {
  const p = { lastId, retry: null };
  let rest = '';
  let type = '';
  let data = null;
  const line = (text) => {
    if (!text) {
      if (data !== null) onEvent({ type: type || 'message', data: data.join('\n'), lastEventId: p.lastId });
      type = '';
      data = null;
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const name = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? '' : text.slice(colon + 1).replace(/^ /, '');
    if (name === 'event') type = value;
    else if (name === 'data') (data ||= []).push(value);
    else if (name === 'id' && !value.includes('\0')) p.lastId = value;
    else if (name === 'retry' && /^\d+$/.test(value)) p.retry = Number(value);
  };
  // A line ends at \r\n, \n or \r; a \r last in what arrived waits for a \n that may follow.
  p.push = (chunk) => {
    const lines = (rest + chunk).split(/\r\n|\n|\r(?!\n|$)/);
    rest = lines.pop();
    lines.forEach(line);
  };
  p.end = () => {
    if (rest.endsWith('\r')) line(rest.slice(0, -1));
    rest = '';
  };
  return p;
}

/** Reads a text/event-stream answer to its end: onEvent per event; {lastId, retry} after. */
async function readEvents(res, onEvent, lastId = '') {
  const parser = sseParser(onEvent, lastId);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.push(decoder.decode(value, { stream: true }));
  }
  parser.push(decoder.decode());
  parser.end();
  return { lastId: parser.lastId, retry: parser.retry };
}

/** Wraps an event handler: errors become banners, never unhandled rejections. */
const handler = (fn) => async (event) => {
  try {
    await fn(event);
  } catch (err) {
    report(err);
  }
};

/** Disables a button while `fn` runs and shows it as busy. */
async function busy(btn, fn) {
  if (!btn || btn.disabled) return undefined;
  btn.disabled = true;
  btn.classList.add('busy');
  try {
    return await fn();
  } finally {
    btn.disabled = false;
    btn.classList.remove('busy');
  }
}

/* ------------------------------------------------------------------ */
/* Small components                                                     */
/* ------------------------------------------------------------------ */

const ICONS = {
  goals: 'M4 12h4l3-8 4 16 3-8h2',
  approvals: 'M5 12l4 4 10-10',
  cost: 'M12 3v18M17 7H9.5a3 3 0 000 6h5a3 3 0 010 6H6',
  learnings: 'M4 19V6a2 2 0 012-2h12v13H6a2 2 0 00-2 2zm0 0a2 2 0 002 2h12',
  schedules: 'M12 7v5l3 2M12 21a9 9 0 110-18 9 9 0 010 18z',
  tools: 'M9 7V3m6 4V3M7 7h10v4a5 5 0 01-10 0V7zm5 9v5',
  onboarding: 'M5 21V4m0 0h11l-2 4 2 4H5',
  settings: 'M4 6h9m4 0h3M4 12h3m4 0h9M4 18h11m4 0h1M15 4v4M9 10v4M17 16v4',
  signin: 'M15 3h4a2 2 0 012 2v14a2 2 0 01-2 2h-4M10 17l5-5-5-5M15 12H3',
  keys: 'M11 12l9-9m-3 3l3 3m-6 0l2 2M8 20a4 4 0 110-8 4 4 0 010 8z',
};

const icon = (name) => s('svg', { viewBox: '0 0 24 24', width: 18, height: 18, 'aria-hidden': 'true', class: 'icon' },
  s('path', { d: ICONS[name] || '', fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8, 'stroke-linecap': 'round', 'stroke-linejoin': 'round' }));

const loading = (text = 'Loading…') => h('div', { class: 'loading', testid: 'loading' }, h('span', { class: 'spinner' }), text);
const empty = (text) => h('div', { class: 'empty' }, text);

function card(title, ...body) {
  return h('section', { class: 'card' },
    title ? h('div', { class: 'card-head' }, typeof title === 'string' ? h('h2', {}, title) : title) : null,
    ...body);
}

/** A card whose body loads asynchronously: shows a spinner, then the content or the error. */
function asyncCard(title, load, opts = {}) {
  const body = h('div', { class: 'card-body' }, loading());
  const el = card(title, body);
  if (opts.testid) el.setAttribute('data-testid', opts.testid);
  (async () => {
    try {
      replace(body, await load());
    } catch (err) {
      report(err);
      replace(body, h('div', { class: 'empty error-text' }, `Could not load: ${err.message}`));
    }
  })();
  return el;
}

function table(headers, rows, { testid, cls = '' } = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: `table ${cls}`, testid },
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
      rows instanceof HTMLTableSectionElement ? rows : h('tbody', {}, rows)));
}

function stat(label, value, sub, testid) {
  return h('div', { class: 'stat', testid },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value' }, value),
    sub ? h('div', { class: 'stat-sub' }, sub) : null);
}

function field(label, control, hint) {
  return h('label', { class: 'field' },
    h('span', { class: 'field-label' }, label),
    control,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

const goalLink = (id) => (id ? h('a', { href: `#/goals/${encodeURIComponent(id)}`, class: 'mono' }, id) : '—');

function progress(percent, level) {
  const p = Math.max(0, Number(percent) || 0);
  return h('div', { class: `progress lvl-${levelClass(level, p)}`, role: 'progressbar', 'aria-valuenow': p.toFixed(0), 'aria-valuemin': 0, 'aria-valuemax': 100 },
    h('div', { class: 'progress-fill', style: `width:${Math.min(100, p)}%` }));
}

function levelClass(level, percent) {
  const l = String(level || '').toLowerCase();
  if (/exhaust|critical|hard|block|stop/.test(l) || percent >= 95) return 'bad';
  if (/warn|throttle|soft/.test(l) || percent >= 80) return 'warn';
  return 'ok';
}

/* ------------------------------------------------------------------ */
/* Very small markdown (headings, bold, italics, code, lists, tables)   */
/* ------------------------------------------------------------------ */

function inline(text) {
  const out = [];
  const re = /(`[^`]+`)|(\*\*[^*]+\*\*|__[^_]+__)|(\*[^*\s][^*]*\*|(?<!\w)_[^_\s][^_]*_(?!\w))|(\[[^\]]+\]\([^)\s]+\))/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const t = m[0];
    if (m[1]) out.push(h('code', {}, t.slice(1, -1)));
    else if (m[2]) out.push(h('strong', {}, inline(t.slice(2, -2))));
    else if (m[3]) out.push(h('em', {}, inline(t.slice(1, -1))));
    else {
      const [, label, url] = /^\[([^\]]+)\]\(([^)\s]+)\)$/.exec(t);
      out.push(/^https?:\/\//i.test(url)
        ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, label)
        : `${label} (${url})`);
    }
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const splitRow = (line) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());

function markdown(src) {
  const root = h('div', { class: 'md' });
  const lines = String(src ?? '').replace(/\r\n?/g, '\n').split('\n');
  let para = [];
  let list = null;
  const flush = () => {
    if (para.length) root.append(h('p', {}, inline(para.join(' '))));
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if (/^\s*```/.test(line)) {
      flush();
      list = null;
      const buf = [];
      for (i++; i < lines.length && !/^\s*```/.test(lines[i]); i++) buf.push(lines[i]);
      root.append(h('pre', { class: 'code' }, buf.join('\n')));
    } else if (!line.trim()) {
      flush();
      list = null;
    } else if ((m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
      flush();
      list = null;
      root.append(h(`h${Math.min(6, m[1].length + 2)}`, {}, inline(m[2])));
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flush();
      list = null;
      root.append(h('hr'));
    } else if ((m = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/.exec(line))) {
      flush();
      const ordered = /\d/.test(m[2]);
      const tag = ordered ? 'ol' : 'ul';
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = h(tag);
        root.append(list);
      }
      const depth = Math.min(4, Math.floor(m[1].replace(/\t/g, '  ').length / 2));
      const task = /^\[( |x|X)\]\s+(.*)$/.exec(m[3]);
      list.append(h('li', { style: depth ? `margin-left:${depth * 1.25}em` : null },
        task ? [h('input', { type: 'checkbox', disabled: true, checked: task[1] !== ' ' }), ' ', inline(task[2])] : inline(m[3])));
    } else if ((m = /^>\s?(.*)$/.exec(line))) {
      flush();
      list = null;
      root.append(h('blockquote', {}, inline(m[1])));
    } else if (/^\s*\|/.test(line) && i + 1 < lines.length && /^\s*\|?\s*:?-{2,}/.test(lines[i + 1])) {
      flush();
      list = null;
      const head = splitRow(line);
      const rows = [];
      for (i += 2; i < lines.length && /^\s*\|/.test(lines[i]); i++) rows.push(splitRow(lines[i]));
      i--;
      root.append(h('div', { class: 'table-wrap' }, h('table', { class: 'table md-table' },
        h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, inline(c))))),
        h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, inline(c)))))))));
    } else {
      list = null;
      para.push(line.trim());
    }
  }
  flush();
  return root;
}

/* ------------------------------------------------------------------ */
/* Charts (inline SVG)                                                  */
/* ------------------------------------------------------------------ */

function barChart(rows, { label = (r) => r.label, value = (r) => r.value, format = String, testid } = {}) {
  if (!rows.length) return empty('Nothing spent this month yet.');
  const max = Math.max(...rows.map(value), 0) || 1;
  const rowH = 30;
  const labelW = 170;
  const valueW = 90;
  const width = 720;
  const barW = width - labelW - valueW;
  const svg = s('svg', { viewBox: `0 0 ${width} ${rows.length * rowH + 4}`, class: 'bars', role: 'img', 'aria-label': 'Spend by skill', testid });
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const w = Math.max(2, (value(r) / max) * barW);
    svg.append(s('g', {},
      s('title', {}, `${label(r)}: ${format(value(r))}`),
      s('text', { x: labelW - 10, y: y + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', class: 'bar-label' }, label(r)),
      s('rect', { x: labelW, y: y + 5, width: barW, height: rowH - 12, rx: 4, class: 'bar-track' }),
      s('rect', { x: labelW, y: y + 5, width: w, height: rowH - 12, rx: 4, class: 'bar-fill' }),
      s('text', { x: labelW + barW + 8, y: y + rowH / 2, 'dominant-baseline': 'middle', class: 'bar-value' }, format(value(r)))));
  });
  return svg;
}

function sparkline(points, { width = 220, height = 48 } = {}) {
  const vals = points.map((p) => Number(p.value) || 0);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'spark', role: 'img' });
  if (!vals.length) return svg;
  const min = Math.min(...vals);
  const max = Math.max(...vals);
  const span = max - min || 1;
  const pad = 4;
  const x = (i) => (vals.length === 1 ? width / 2 : pad + (i * (width - 2 * pad)) / (vals.length - 1));
  const y = (v) => height - pad - ((v - min) / span) * (height - 2 * pad);
  const pts = vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  svg.append(
    s('polygon', { points: `${x(0)},${height} ${pts.join(' ')} ${x(vals.length - 1)},${height}`, class: 'spark-area' }),
    s('polyline', { points: pts.join(' '), class: 'spark-line' }),
    s('circle', { cx: x(vals.length - 1), cy: y(vals[vals.length - 1]), r: 3, class: 'spark-dot' }));
  points.forEach((p, i) => svg.append(s('circle', { cx: x(i), cy: y(vals[i]), r: 6, class: 'spark-hit' },
    s('title', {}, `${p.day}: ${p.value}`))));
  return svg;
}

/* ------------------------------------------------------------------ */
/* Shared panels: goal composer with plan preview, tool servers          */
/* ------------------------------------------------------------------ */

function goalComposer({ text = '', options = true, hint } = {}) {
  const textarea = h('textarea', { testid: 'goal-text', rows: 3, placeholder: 'Describe the marketing goal in a sentence or two…', value: text });
  const pipeline = h('input', { testid: 'goal-pipeline', type: 'text', placeholder: 'Optional, e.g. Product Launch' });
  const priority = h('select', { testid: 'goal-priority' },
    h('option', { value: '' }, 'Default'),
    ['P0', 'P1', 'P2', 'P3'].map((p) => h('option', { value: p }, p)));
  const preview = h('div', { class: 'plan', testid: 'plan' });
  let previewedFor = null;

  const body = () => {
    const b = { text: textarea.value.trim() };
    if (options && pipeline.value.trim()) b.pipeline = pipeline.value.trim();
    if (options && priority.value) b.priority = priority.value;
    return b;
  };
  const need = () => {
    const b = body();
    if (!b.text) {
      textarea.focus();
      banner('error', 'Write the goal first.');
      return null;
    }
    return b;
  };

  const previewBtn = h('button', {
    class: 'btn', testid: 'plan-preview', type: 'button', disabled: !can('editor'),
    title: can('editor') ? null : 'Your role cannot plan goals',
    onclick: handler(async () => {
      const b = need();
      if (!b) return;
      await busy(previewBtn, async () => {
        replace(preview, loading('Planning…'));
        try {
          const plan = await api('POST', '/plan-preview', b);
          previewedFor = JSON.stringify(b);
          replace(preview, planTable(plan));
        } catch (err) {
          replace(preview);
          throw err;
        }
      });
    }),
  }, 'Preview plan');

  const startBtn = h('button', {
    class: 'btn primary', testid: 'goal-start', type: 'button', disabled: !can('editor'),
    title: can('editor') ? null : 'Your role cannot start goals',
    onclick: handler(async () => {
      const b = need();
      if (!b) return;
      await busy(startBtn, async () => {
        const res = await api('POST', '/goals', b);
        state.submitted.set(res.goal_id, b.text);
        toast(`Goal ${res.goal_id} submitted`);
        location.hash = `#/goals/${encodeURIComponent(res.goal_id)}`;
      });
    }),
  }, 'Start goal');

  textarea.addEventListener('input', () => {
    if (previewedFor && previewedFor !== JSON.stringify(body())) preview.classList.add('stale');
    else preview.classList.remove('stale');
  });

  return h('div', { class: 'composer' },
    field('Goal', textarea, hint),
    options ? h('div', { class: 'row' },
      field('Pipeline', pipeline, 'A pipeline template name; leave empty to let the director plan.'),
      field('Priority', priority, 'P0 is most urgent.')) : null,
    h('div', { class: 'actions' }, previewBtn, startBtn),
    preview);
}

function planTable(plan) {
  const tasks = plan.tasks || [];
  return h('div', {},
    plan.note ? h('p', { class: 'note' }, plan.note) : null,
    tasks.length
      ? table(['Task', 'Skill', 'Depends on', 'Tier', 'Tokens in / out', 'Est. cost'],
        tasks.map((t) => h('tr', { testid: 'plan-task' },
          h('td', { class: 'mono' }, t.id),
          h('td', {}, h('span', { class: 'skill' }, t.skill)),
          h('td', { class: 'mono' }, (t.deps || []).length ? t.deps.join(', ') : '—'),
          h('td', {}, h('span', { class: 'tag' }, t.tier ?? '—')),
          h('td', { class: 'num' }, `${int(t.input_tokens)} / ${int(t.output_tokens)}`),
          h('td', { class: 'num', title: t.basis || null }, usd(t.usd)))),
        { testid: 'plan-table' })
      : empty('The plan has no tasks.'),
    h('div', { class: 'plan-total', testid: 'plan-total' },
      h('span', {}, 'Forecast total'),
      h('strong', {}, usd(plan.total_usd))));
}

/* ---------- Tool servers and the team's own connections ---------- */

/** In use: a server of tools.yaml, or a catalogue server this team connected. */
const inUse = (srv) => srv.source !== 'catalog' || !!srv.connection;

/** Ready to try with no account: needs no credentials and is connected. */
const tryable = (srv) => !!(srv.sample && srv.connected);

/** Reads credentials, so a team can connect it with its own. */
const connectable = (srv) => (srv.credentials || []).length > 0;

const plural = (n, word) => `${int(n)} ${word}${Number(n) === 1 ? '' : 's'}`;

const varList = (names) => names.map((v, i) => [i ? ', ' : '', h('code', {}, v)]);

/** The server's status line: connected by whom and when, or the credentials it lacks. */
function serverStatus(srv) {
  const missing = srv.missing_credentials || [];
  let text;
  if (srv.connection) {
    text = ['Connected by ', h('strong', {}, srv.connection.by || 'someone'), ', ',
      h('span', { title: when(srv.connection.connected_ms) }, ago(srv.connection.connected_ms)), ', with this team\'s own credentials',
      missing.length ? h('span', { class: 'error-text' }, '; missing ', varList(missing)) : null];
  } else if (srv.connected) {
    text = (srv.credentials || []).length ? 'Connected with the deployment\'s credentials' : 'Ready: needs no account';
  } else if (!(srv.credentials || []).length) {
    text = 'Not connected: it reads no credentials, so only the deployment can add it (config/tools.yaml)';
  } else if (srv.source === 'catalog') {
    text = ['Not connected yet: needs ', varList(missing.length ? missing : srv.credentials)];
  } else {
    text = h('span', { class: 'error-text' }, 'Not connected: missing credentials ', varList(missing.length ? missing : srv.credentials));
  }
  return h('div', { class: 'server-status small', testid: `status-${srv.name}`, 'data-connected': String(!!srv.connected) },
    pill(srv.connected ? 'CONNECTED' : 'NOT_CONNECTED', null, 'small'), text);
}

const toolChip = (t) => (typeof t === 'string'
  ? h('span', { class: 'chip mono' }, t)
  : h('span', { class: 'chip', title: t.description || null }, h('span', { class: 'mono' }, t.name), t.effect ? [' ', pill(t.effect, null, 'small')] : null));

/** Runs POST /tools/{server}/test and draws the answer into `result` (data-ok, data-tools). */
async function testServer(srv, result) {
  result.removeAttribute('data-ok');
  result.removeAttribute('data-tools');
  replace(result, loading('Connecting…'));
  try {
    const r = await api('POST', `/tools/${encodeURIComponent(srv.name)}/test`);
    const tools = r.tools || [];
    result.setAttribute('data-ok', String(!!r.ok));
    result.setAttribute('data-tools', String(tools.length));
    replace(result, r.ok
      ? h('div', { class: 'result ok' }, h('strong', {}, '✓ Connected'),
        r.ms != null ? ` in ${int(r.ms)} ms` : '', r.own_credentials ? ' with this team\'s credentials' : '',
        tools.length ? [`: ${plural(tools.length, 'tool')}`, h('div', { class: 'chips' }, tools.map(toolChip))] : ' — no tools listed')
      : h('div', { class: 'result bad' }, h('strong', {}, '✗ Failed: '), r.error || 'unknown error'));
  } catch (err) {
    result.setAttribute('data-ok', 'false');
    replace(result, h('div', { class: 'result bad' }, h('strong', {}, '✗ '), err.message));
  }
}

/**
 * The team's credentials for a server: one password field per variable it
 * reads. The values leave the page only in the PUT and the fields are
 * emptied as soon as they are read, so no value stays in the page.
 */
function connectForm(srv, { showError, onSaved }) {
  const owner = can('owner');
  const set = new Set(srv.connection?.vars || []);
  const inputs = new Map((srv.credentials || []).map((v) => [v, h('input', {
    type: 'password', autocomplete: 'off', spellcheck: 'false', testid: `cred-${srv.name}-${v}`, disabled: !owner,
    placeholder: set.has(v) ? 'set; type a new value to replace it' : 'not set',
  })]));
  const save = h('button', {
    class: 'btn primary', type: 'submit', testid: `save-${srv.name}`, disabled: !owner,
    title: owner ? null : 'Only an owner can connect tools',
  }, 'Save & test');
  const form = h('form', {
    class: 'connect-form', testid: `connect-${srv.name}`, autocomplete: 'off',
    onsubmit: handler(async (e) => {
      e.preventDefault();
      showError(null);
      const credentials = {};
      for (const [v, input] of inputs) {
        if (input.value.trim()) credentials[v] = input.value.trim();
        input.value = '';
      }
      if (!Object.keys(credentials).length) {
        showError({ message: `Enter the value of ${srv.credentials.length === 1 ? srv.credentials[0] : 'at least one variable'}.` });
        inputs.values().next().value?.focus();
        return;
      }
      await busy(save, async () => {
        let r;
        try {
          r = await api('PUT', `/tools/${encodeURIComponent(srv.name)}/connection`, { credentials }, { quiet: true });
        } catch (err) {
          showError(err);
          return;
        }
        toast(`Saved the credentials of ${srv.name}`);
        await onSaved(r);
      });
    }),
  },
  (srv.credentials || []).map((v) => field(h('code', {}, v), inputs.get(v))),
  h('div', { class: 'actions' }, save,
    owner
      ? h('span', { class: 'field-hint' }, 'Kept in the vault for this team only; never shown again.')
      : h('span', { class: 'field-hint', testid: `connect-owner-only-${srv.name}` }, 'Only an owner connects tools.')));
  return form;
}

/** "Disconnect…", then a confirmation: DELETE /tools/{server}/connection. */
function disconnectButton(srv, { showError, onDone }) {
  const slot = h('span', { class: 'disconnect-slot' });
  const ask = () => {
    const yes = h('button', {
      class: 'btn danger small', type: 'button', testid: `disconnect-confirm-${srv.name}`,
      onclick: handler(() => busy(yes, async () => {
        showError(null);
        try {
          await api('DELETE', `/tools/${encodeURIComponent(srv.name)}/connection`, undefined, { quiet: true });
        } catch (err) {
          showError(err);
          show();
          return;
        }
        toast(`Disconnected ${srv.name}`);
        await onDone();
      })),
    }, 'Disconnect');
    replace(slot, h('span', { class: 'inline-form' }, h('span', { class: 'small muted' }, 'Remove this team\'s credentials?'), yes,
      h('button', { class: 'btn ghost small', type: 'button', onclick: show }, 'Keep')));
  };
  const show = () => replace(slot, h('button', { class: 'btn danger small', type: 'button', testid: `disconnect-${srv.name}`, onclick: ask }, 'Disconnect…'));
  show();
  return slot;
}

/** The tools configured for a server, folded behind "N tools". */
function toolList(srv) {
  const tools = srv.tools || [];
  if (!tools.length) return null;
  return h('details', { class: 'tool-list', testid: `tools-${srv.name}` },
    h('summary', {}, plural(tools.length, 'tool')),
    h('div', { class: 'chips' }, tools.map((t) => h('span', { class: 'chip' }, h('span', { class: 'mono' }, t.name), ' ', pill(t.effect || srv.effect || 'read', null, 'small')))));
}

/**
 * One tool server: what it is, which skills may use it, its status, the
 * connection test and, when it reads credentials, the team's own connection
 * (owners only). `onChange(srv)` runs after a connect or a disconnect.
 * `compact` (the Integrations page's catalogue): the credentials form of a
 * server not connected stays folded until "Connect…" opens it.
 */
function serverCard(srv, { recommendSample = false, compact = false, onChange } = {}) {
  const result = h('div', { class: 'tool-result', testid: `tool-result-${srv.name}` });
  const error = h('div', { class: 'form-error', testid: `connect-error-${srv.name}`, role: 'alert' });
  const status = h('div', { class: 'status-slot' });
  const actions = h('div', { class: 'server-actions' });
  const connect = h('div', { class: 'connect-slot' });
  const testBtn = h('button', {
    class: 'btn', type: 'button', testid: `tool-test-${srv.name}`, disabled: !can('editor'),
    title: can('editor') ? null : 'Your role cannot test tools',
    onclick: handler(() => busy(testBtn, () => testServer(srv, result))),
  }, 'Test connection');
  const showError = (err) => replace(error, err ? [err.message, err.code ? h('span', { class: 'muted small' }, ` (${err.code})`) : null] : null);

  const el = h('div', { class: `server ${tryable(srv) ? 'sample' : ''}`, testid: `server-${srv.name}`, 'data-source': srv.source || null },
    h('div', { class: 'server-head' },
      h('div', {},
        h('div', { class: 'server-name' }, srv.name,
          tryable(srv) ? h('span', { class: 'tag sample-tag', testid: `sample-${srv.name}` }, 'sample data') : null,
          srv.source === 'catalog' ? h('span', { class: 'tag catalog-tag', title: 'From the catalogue: connected with this team\'s own credentials' }, 'catalogue') : null,
          srv.enabled === false ? h('a', { class: 'tag off-tag', href: '#/settings', title: 'Turned off for this team in Settings' }, 'off for this team') : null),
        srv.description ? h('div', { class: 'muted small' }, srv.description) : null,
        h('div', { class: 'server-meta' },
          h('span', { class: 'tag' }, srv.transport || '—'),
          srv.effect ? h('span', { title: 'Default effect of its tools: writes and spends wait for approval' }, pill(srv.effect, null, 'small')) : null,
          (srv.skills || []).length ? h('span', { class: 'muted' }, `used by ${srv.skills.join(', ')}`) : null),
        status),
      actions),
    tryable(srv) && recommendSample
      ? h('p', { class: 'hint' }, 'Needs no account: recommended if you have no tools connected yet, so agents can try their tools safely.')
      : null,
    toolList(srv),
    connect,
    error,
    result);

  const changed = async () => {
    draw();
    onChange?.(srv);
  };
  const saved = async (r) => {
    const vars = r.connection?.vars || [];
    Object.assign(srv, { connected: true, connection: r.connection, missing_credentials: (srv.credentials || []).filter((v) => !vars.includes(v)) });
    await changed();
    await busy(testBtn, () => testServer(srv, result));
  };
  const removed = async () => {
    // Whether the deployment's own credentials connect it is the API's to say.
    const { servers = [] } = await api('GET', '/tools');
    Object.assign(srv, servers.find((x) => x.name === srv.name) || { connected: false, connection: null });
    result.removeAttribute('data-ok');
    replace(result);
    await changed();
  };
  // "Connect…" unfolds the form of a compact card in the catalogue group.
  const folded = () => compact && !inUse(srv) && !srv.connected && connectable(srv);
  const openBtn = h('button', {
    class: 'btn primary', type: 'button', testid: `connect-open-${srv.name}`, 'aria-expanded': 'false',
    onclick: () => {
      unfold(connect.hidden);
      if (!connect.hidden) connect.querySelector('input:not(:disabled)')?.focus();
    },
  }, 'Connect…');
  const unfold = (open) => {
    connect.hidden = !open;
    openBtn.setAttribute('aria-expanded', String(open));
    openBtn.className = `btn ${open ? 'ghost' : 'primary'}`;
    openBtn.textContent = open ? 'Close' : 'Connect…';
  };
  const draw = () => {
    el.setAttribute('data-connected', String(!!srv.connected));
    replace(status, serverStatus(srv));
    replace(actions, folded() ? openBtn : null, testBtn,
      srv.connection && can('owner') ? disconnectButton(srv, { showError, onDone: removed }) : null);
    if (!connectable(srv)) return;
    const form = connectForm(srv, { showError, onSaved: saved });
    replace(connect, srv.connected
      ? h('details', { class: 'connect-more' }, h('summary', {}, srv.connection ? 'Replace this team\'s credentials' : 'Use this team\'s own credentials instead'), form)
      : form);
    unfold(!folded());
  };
  draw();
  return el;
}

/** A card of the Integrations page holding server cards, with a count and a note when it has none. */
function serverGroup(title, testid, note, none) {
  const list = h('div', { class: 'servers' }, loading('Loading tool servers…'));
  const count = h('span', { class: 'count muted' });
  const refresh = () => {
    for (const e of list.querySelectorAll(':scope > :not(.server)')) e.remove();
    const n = list.querySelectorAll(':scope > .server').length;
    count.textContent = ` (${n})`;
    if (!n) list.append(empty(none));
  };
  return {
    el: h('section', { class: 'card', testid },
      h('div', { class: 'card-head' }, h('h2', {}, title, count)),
      h('p', { class: 'muted small' }, note),
      list),
    add: (cardEl) => list.append(cardEl),
    refresh,
    fail: (err) => replace(list, h('div', { class: 'empty error-text' }, `Could not load the tool servers: ${err.message}`)),
  };
}

/* ------------------------------------------------------------------ */
/* Views                                                                */
/* ------------------------------------------------------------------ */

const nextFrom = (ctx) => (ctx.next && !/^#\/(signin)?$/.test(ctx.next) ? ctx.next : null);

function viewSignIn(ctx) {
  if (state.newcomer) {
    viewNewcomer(ctx);
    return;
  }
  const input = h('input', { type: 'password', testid: 'key-input', autocomplete: 'off', placeholder: 'mk_…', value: '' });
  const error = h('div', { class: 'form-error', testid: 'sign-in-error', role: 'alert' });
  const btn = h('button', { class: 'btn primary', type: 'submit', testid: 'sign-in' }, 'Sign in');
  const form = h('form', {
    class: 'signin',
    onsubmit: handler(async (e) => {
      e.preventDefault();
      replace(error);
      const key = input.value.trim();
      if (!key) {
        replace(error, 'Enter an API key.');
        return;
      }
      await busy(btn, async () => {
        try {
          await signIn(key);
        } catch (err) {
          if (welcomeNewcomer(key, err)) route(); // an ID token of a person in no organisation
          else replace(error, err.message);
          return;
        }
        location.hash = (await needsOnboarding()) ? '#/onboarding' : (nextFrom(ctx) || '#/goals');
      });
    }),
  },
  field('API key', input, 'Ask an owner of your workspace for a key. It is kept in this tab only (sessionStorage).'),
  error,
  h('div', { class: 'actions' }, btn));
  // Offered when the API names a sign-in provider (GET /auth/config);
  // below the form, so the key field does not move while typing.
  const sso = h('div', { class: 'sso', testid: 'sso', hidden: true });
  // Offered when the API says sign-up is open.
  const signup = h('div', { class: 'signup-slot' });
  replace(ctx.el, h('div', { class: 'signin-wrap' },
    card(null,
      h('div', { class: 'signin-head' }, h('h1', {}, 'Sign in to mktg'), h('p', { class: 'muted' }, 'Your AI marketing team: goals in, reviewed work out.')),
      form,
      sso),
    signup));
  input.focus();
  (async () => {
    const cfg = await loadAuthConfig();
    if (!ctx.alive) return;
    if (cfg?.signup) replace(signup, signupCard(ctx, ssoReady(cfg)));
    if (!ssoReady(cfg)) return;
    let provider = '';
    try {
      provider = new URL(cfg.oidc.issuer || cfg.oidc.authorize_url).host;
    } catch {
      provider = '';
    }
    const ssoBtn = h('button', {
      class: 'btn sso-btn', type: 'button', testid: 'sso-sign-in',
      onclick: handler(() => busy(ssoBtn, () => startSso(cfg.oidc, nextFrom(ctx)))),
    }, icon('signin'), 'Sign in with SSO');
    replace(sso,
      h('div', { class: 'or' }, h('span', {}, 'or')),
      ssoBtn,
      h('p', { class: 'field-hint' }, 'With your company account', provider ? [' at ', h('span', { class: 'mono' }, provider)] : null,
        '. Your workspace and role come from the account.'));
    sso.hidden = false;
  })();
}

/* ---------- Sign-up ---------- */

/**
 * The organisation's name → POST /signup; `bearer` is a signed-in person's
 * ID token (they become the owner), else the answer carries the first owner
 * key. `onCreated(answer)` runs after a 201; API errors show under the field.
 */
function signupForm({ bearer = null, label = 'Create organisation', onCreated }) {
  const name = h('input', { type: 'text', testid: 'signup-name', maxlength: 80, autocomplete: 'organization', placeholder: 'Acme Co' });
  const error = h('div', { class: 'form-error', testid: 'signup-error', role: 'alert' });
  const btn = h('button', { class: 'btn primary', type: 'submit', testid: 'signup-create' }, label);
  return h('form', {
    class: 'signup-form', testid: 'signup-form',
    onsubmit: handler(async (e) => {
      e.preventDefault();
      replace(error);
      const text = name.value.trim();
      if (text.length < 1 || [...text].length > 80) {
        replace(error, 'The name needs 1 to 80 characters.');
        name.focus();
        return;
      }
      await busy(btn, async () => {
        let r;
        try {
          r = await api('POST', '/signup', { name: text }, { quiet: true, auth: false, bearer });
        } catch (err) {
          replace(error, err.message, err.code ? h('span', { class: 'muted small' }, ` (${err.code})`) : null);
          return;
        }
        try {
          await onCreated(r);
        } catch (err) {
          replace(error, err.message);
        }
      });
    }),
  },
  field('Organisation name', name, 'Your company or team, as it should show in the dashboard. Its id is made from it.'),
  error,
  h('div', { class: 'actions' }, btn));
}

/** Below the sign-in card when sign-up is open: create an organisation and get its first owner key. */
function signupCard(ctx, withSso) {
  return h('section', { class: 'card signup', testid: 'signup' },
    h('div', { class: 'card-head' }, h('h2', {}, 'New here? Create an organisation')),
    h('p', { class: 'muted small' }, 'A workspace for your team. You become its owner and get its first API key, shown once.',
      withSso ? ' To own it with your company account instead, sign in with SSO first.' : null),
    signupForm({ onCreated: (r) => replace(ctx.el, signupDone(r)) }));
}

/** The organisation just created: its owner key, shown this once, then into onboarding. */
function signupDone(r) {
  return h('div', { class: 'signin-wrap', testid: 'signup-done' },
    card(null,
      h('div', { class: 'signin-head' },
        h('h1', {}, `${r.name} is ready`),
        h('p', { class: 'muted' }, 'Organisation ', h('span', { class: 'mono', testid: 'signup-tenant' }, r.tenant), '; you are its owner.')),
      r.key
        ? secretPanel(r.key, {
          title: 'Your owner API key',
          what: 'It signs in as the owner of this organisation, and there is no other way in until you make more keys.',
          done: 'I saved it — continue',
          onDone: async () => {
            await signIn(r.key);
            location.hash = '#/onboarding';
          },
        })
        : h('p', {}, r.note || 'Sign in to continue.', ' ', h('a', { href: '#/signin' }, 'Sign in'))));
}

/** A person the provider signed in who belongs to no organisation yet: create one, or leave. */
function viewNewcomer(ctx) {
  const { token, who } = state.newcomer;
  const body = h('div', {}, loading());
  const leave = h('a', {
    href: '#/signin', class: 'link', testid: 'no-tenant-leave',
    onclick: (e) => {
      e.preventDefault();
      signOut();
      route();
    },
  }, 'Use another account');
  replace(ctx.el, h('div', { class: 'signin-wrap' },
    h('section', { class: 'card', testid: 'no-tenant' },
      h('div', { class: 'signin-head' },
        h('h1', {}, 'Create your organisation'),
        h('p', { class: 'muted' }, 'You\'re signed in as ', h('strong', { testid: 'no-tenant-who' }, who || 'your company account'),
          ' but belong to no organisation yet.')),
      body,
      h('div', { class: 'actions' }, leave))));
  (async () => {
    const cfg = await loadAuthConfig();
    if (!ctx.alive) return;
    replace(body, cfg?.signup
      ? [h('p', { class: 'muted small' }, 'Create one for your team and you become its owner, signed in with this account.'),
        signupForm({
          onCreated: async (r) => {
            await signIn(token, { refresh: state.newcomer?.refresh });
            state.newcomer = null;
            toast(`Created ${r.name}`);
            location.hash = '#/onboarding';
          },
          bearer: token,
        })]
      : h('div', { class: 'callout', testid: 'signup-closed' },
        'Sign-up is closed on this deployment: ask an owner of your organisation to add you, or sign in with an API key.'));
  })();
}

/**
 * A secret shown once (a new API key): the value in a read-only field with
 * Copy, a warning that it cannot be shown again, and `done` to dismiss it.
 * `onDone` runs first (when it throws, the panel stays and says why); then
 * the field is emptied and the panel removed, so the value is nowhere in
 * the page any more.
 */
function secretPanel(value, { title, what, done = 'I saved it', onDone }) {
  const input = h('input', {
    type: 'text', readonly: true, class: 'mono secret-value', testid: 'new-key', value,
    spellcheck: 'false', autocomplete: 'off', 'aria-label': title,
  });
  input.addEventListener('focus', () => input.select());
  const copied = h('span', { class: 'copied small', testid: 'new-key-copied', role: 'status' });
  const copy = h('button', {
    class: 'btn', type: 'button', testid: 'new-key-copy',
    onclick: handler(async () => {
      const ok = await copyText(input);
      replace(copied, ok ? h('span', { class: 'saved' }, '✓ Copied') : h('span', { class: 'muted' }, 'Select it and copy it by hand (Ctrl+C / ⌘C).'));
    }),
  }, 'Copy');
  const error = h('div', { class: 'form-error', testid: 'new-key-error', role: 'alert' });
  const doneBtn = h('button', {
    class: 'btn primary', type: 'button', testid: 'new-key-done',
    onclick: handler(() => busy(doneBtn, async () => {
      replace(error);
      try {
        await onDone?.();
      } catch (err) {
        replace(error, err.message);
        return;
      }
      input.value = '';
      panel.remove();
    })),
  }, done);
  const panel = h('div', { class: 'secret', testid: 'new-key-panel', role: 'region', 'aria-label': title },
    h('div', { class: 'secret-title' }, title),
    h('div', { class: 'secret-row' }, input, copy),
    copied,
    h('p', { class: 'secret-warn', testid: 'new-key-warning' },
      h('strong', {}, 'This is shown once; keep it. '),
      'Copy it now to a password manager or your CI\'s secret store: it cannot be shown again. ', what || ''),
    error,
    h('div', { class: 'actions' }, doneBtn));
  return panel;
}

/** Copies a field's value: the Clipboard API, else the selection; true when it worked. */
async function copyText(input) {
  try {
    await navigator.clipboard.writeText(input.value);
    return true;
  } catch {
    input.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

/**
 * Signs in with an API key or an ID token (checked with GET /me); `refresh`
 * is the provider's refresh token that came with an ID token, kept beside
 * it to renew it before it expires.
 */
async function signIn(key, { refresh = null } = {}) {
  state.key = key;
  state.refresh = refresh;
  try {
    state.me = await api('GET', '/me', undefined, { quiet: true });
  } catch (err) {
    state.key = '';
    state.refresh = null;
    state.me = null;
    sessionStorage.removeItem(KEY_STORE);
    sessionStorage.removeItem(REFRESH_STORE);
    throw err;
  }
  // The token GET /me took, which a refresh on the way may have renewed.
  sessionStorage.setItem(KEY_STORE, state.key);
  if (state.refresh) sessionStorage.setItem(REFRESH_STORE, state.refresh);
  else sessionStorage.removeItem(REFRESH_STORE);
  renderChrome();
}

function signOut() {
  state.key = '';
  state.refresh = null;
  state.me = null;
  state.newcomer = null;
  sessionStorage.removeItem(KEY_STORE);
  sessionStorage.removeItem(REFRESH_STORE);
  sessionStorage.removeItem(SSO_STORE);
  renderChrome();
}

async function needsOnboarding() {
  try {
    const r = await api('GET', '/context');
    return r.context == null;
  } catch {
    return false;
  }
}

/* ---------- Onboarding ---------- */

const CONTEXT_FIELDS = [
  ['product', 'Product', 'What you sell in one sentence: name, category and the main thing it does.', 'Tallybook — bookkeeping for freelancers that files quarterly taxes for you.'],
  ['audience', 'Audience', 'Who buys it: role, company size, situation. The more specific, the better the copy.', 'Solo designers and developers in the US earning $50–200k, doing their own books.'],
  ['problem', 'Problem', 'The pain they have before finding you, in their own words.', 'Tax season is a scramble through receipts and bank exports.'],
  ['positioning', 'Positioning', 'Why you and not the alternatives: the one thing you do better.', 'The only app that estimates and files quarterly taxes automatically.'],
  ['voice', 'Voice', 'How you sound: three or four adjectives, words you use and words you avoid.', 'Calm, plain, a little witty. Say "you", avoid jargon and hype.'],
  ['competitors', 'Competitors', 'Main alternatives, including spreadsheets or doing nothing. Comma-separated.', 'QuickBooks Self-Employed, FreshBooks, spreadsheets.'],
  ['goals', 'Goals', 'What marketing should achieve this quarter: the metric and the target.', '500 paid signups by end of quarter; trial-to-paid from 8% to 12%.'],
];

const REQUIRED_CONTEXT = ['product', 'audience'];

const STEPS = ['Product context', 'Connect a tool', 'First goal'];

function viewOnboarding(ctx, stepParam) {
  const step = Math.min(3, Math.max(1, Number(stepParam) || 1));
  const stepper = h('ol', { class: 'stepper' }, STEPS.map((name, i) => h('li', {
    class: i + 1 === step ? 'current' : i + 1 < step ? 'done' : '',
  }, h('a', { href: `#/onboarding/${i + 1}` }, h('span', { class: 'step-num' }, i + 1 < step ? '✓' : String(i + 1)), name))));
  const head = h('div', { class: 'wizard-head' },
    h('div', { class: 'wizard-step', testid: 'wizard-step', 'data-step': step }, `Step ${step} of 3 — ${STEPS[step - 1]}`),
    stepper);
  let body;
  if (step === 1) body = onboardingContext();
  else if (step === 2) body = onboardingTools();
  else body = onboardingGoal();
  replace(ctx.el, h('div', { class: 'wizard' }, head, onboardingProgress(), body));
}

/** Where the workspace is on the way to its first approved output (GET /onboarding). */
function onboardingProgress() {
  const el = h('div', { class: 'progress-strip', testid: 'onboarding-progress' });
  (async () => {
    let o;
    try {
      o = await api('GET', '/onboarding');
    } catch {
      el.remove(); // the banner says why; the wizard works without it
      return;
    }
    const item = (done, label, detail) => h('div', { class: `check ${done ? 'done' : ''}` },
      h('span', { class: 'check-mark' }, done ? '✓' : ''), h('span', {}, label, detail ? h('span', { class: 'muted small' }, ' ', detail) : null));
    const g = o.first_goal;
    replace(el,
      item(o.context_written_ms != null, 'Product context', o.context_written_ms ? ago(o.context_written_ms) : null),
      item(!!o.sample_data, 'Sample data or a tool'),
      item(!!g, 'First goal', g ? [' ', goalLink(g.id), ' ', pill(g.status, null, 'small')] : null),
      item(o.first_approved_ms != null, 'First approved output',
        o.minutes_to_first_approval != null ? `${Number(o.minutes_to_first_approval).toFixed(1)} min after the context` : o.first_approved_ms ? ago(o.first_approved_ms) : null));
  })();
  return el;
}

function onboardingContext() {
  const inputs = {};
  const listy = {};
  const form = h('form', {
    class: 'context-form',
    onsubmit: handler(async (e) => {
      e.preventDefault();
      const body = {};
      for (const [name] of CONTEXT_FIELDS) {
        const v = inputs[name].value.trim();
        body[name] = listy[name] ? v.split(/\n|,/).map((x) => x.trim()).filter(Boolean) : v;
      }
      for (const name of REQUIRED_CONTEXT) {
        if (!body[name] || (Array.isArray(body[name]) && !body[name].length)) {
          inputs[name].focus();
          banner('error', `The ${name} is required: every agent builds on it.`);
          return;
        }
      }
      await busy(save, async () => {
        await api('PUT', '/context', body);
        toast('Product context saved');
        location.hash = '#/onboarding/2';
      });
    }),
  },
  CONTEXT_FIELDS.map(([name, label, hint, example]) => {
    inputs[name] = h('textarea', { testid: `context-${name}`, name, rows: 2, placeholder: example, maxlength: 2000 });
    return field(REQUIRED_CONTEXT.includes(name) ? [label, h('span', { class: 'required' }, ' required')] : label, inputs[name], hint);
  }));
  const save = h('button', { class: 'btn primary', type: 'submit', testid: 'context-save', disabled: !can('editor') }, 'Save and continue');
  form.append(h('div', { class: 'actions' }, save, h('a', { href: '#/onboarding/2', class: 'link' }, 'Skip for now')));
  (async () => {
    try {
      const r = await api('GET', '/context');
      for (const [name] of CONTEXT_FIELDS) {
        const v = r.context?.[name];
        if (Array.isArray(v)) {
          listy[name] = true;
          inputs[name].value = v.join(', ');
        } else if (v != null) {
          inputs[name].value = String(v);
        }
      }
    } catch {
      /* the banner says why; the form still works */
    }
  })();
  return card('Tell the team about your product',
    h('p', { class: 'muted' }, 'Every agent reads this before it writes. A sentence or two per field is plenty; you can change it later.'),
    form);
}

function onboardingTools() {
  const picker = h('div', { class: 'tool-picker', testid: 'wizard-tools' }, loading('Loading tool servers…'));
  const samples = h('div', { class: 'servers' });
  (async () => {
    let servers;
    try {
      ({ servers = [] } = await api('GET', '/tools'));
    } catch (err) {
      replace(picker, h('div', { class: 'empty error-text' }, `Could not load the tool servers: ${err.message}`));
      return;
    }
    const ready = servers.filter(tryable);
    replace(picker, serverPicker(servers.filter(connectable)));
    replace(samples, ready.length
      ? [h('h3', {}, 'Or try one that needs no account'), ready.map((srv) => serverCard(srv, { recommendSample: true }))]
      : null);
  })();
  return card('Connect a tool',
    h('p', { class: 'muted' }, 'Agents use tool servers to read analytics and publish. Connect one with your own account and test it; servers marked “sample data” need no account.'),
    picker,
    samples,
    sampleDataPanel(),
    h('div', { class: 'actions' },
      h('a', { class: 'btn', href: '#/onboarding/1' }, 'Back'),
      h('a', { class: 'btn primary', href: '#/onboarding/3', testid: 'wizard-next' }, 'Continue')));
}

/** A select of the servers that read credentials, and the chosen one's card with its connect form. */
function serverPicker(servers) {
  if (!servers.length) return null;
  const slot = h('div', { class: 'picked', testid: 'wizard-server' });
  const cards = new Map(); // name -> card, so a test result survives choosing another and back
  const options = new Map();
  const label = (srv) => `${srv.name}${srv.connected ? ' (connected)' : ''}${srv.description ? ` — ${srv.description}` : ''}`;
  const group = (title, list) => (list.length
    ? h('optgroup', { label: title }, list.map((srv) => {
      const o = h('option', { value: srv.name }, label(srv));
      options.set(srv.name, o);
      return o;
    }))
    : null);
  const select = h('select', { testid: 'wizard-server-select' },
    h('option', { value: '' }, 'Choose a tool server…'),
    group('In use', servers.filter(inUse)),
    group('Catalogue: connect with your own credentials', servers.filter((x) => !inUse(x))));
  select.addEventListener('change', () => {
    const srv = servers.find((x) => x.name === select.value);
    if (srv && !cards.has(srv.name)) {
      cards.set(srv.name, serverCard(srv, { onChange: () => { options.get(srv.name).textContent = label(srv); } }));
    }
    replace(slot, srv ? cards.get(srv.name) : null);
  });
  return h('div', {},
    h('h3', {}, 'Connect one of your tools'),
    field('Tool server', select, can('owner')
      ? 'Enter its credentials and Save & test. They are kept in the vault for this team only and never shown again.'
      : 'Only an owner connects tools; you can test the ones in use.'),
    slot);
}

function sampleDataPanel() {
  const result = h('div', { class: 'tool-result', testid: 'sample-data-result' });
  const btn = h('button', {
    class: 'btn', type: 'button', testid: 'sample-data-load', disabled: !can('editor'),
    title: can('editor') ? null : 'Your role cannot load data',
    onclick: handler(() => busy(btn, async () => {
      result.removeAttribute('data-ok');
      replace(result, loading('Loading four weeks of sample metrics…'));
      try {
        const r = await api('POST', '/onboarding/sample-data');
        result.setAttribute('data-ok', 'true');
        replace(result, h('div', { class: 'result ok' }, h('strong', {}, '✓ Sample data loaded: '),
          `${int(r.series)} series, ${int(r.points)} daily points`, r.first_day ? ` from ${r.first_day} to ${r.last_day}` : '',
          '. Metrics and reports now have numbers to work with.'));
      } catch (err) {
        result.setAttribute('data-ok', 'false');
        replace(result, h('div', { class: 'result bad' }, h('strong', {}, '✗ '), err.message));
      }
    })),
  }, 'Load sample data');
  return h('div', { class: 'server sample-data' },
    h('div', { class: 'server-head' },
      h('div', {},
        h('div', { class: 'server-name' }, 'No tools yet? Load sample data'),
        h('div', { class: 'muted small' }, 'Four weeks of realistic metrics (sessions, conversions, ad spend), so the team can analyse and plan before you connect analytics.')),
      btn),
    result);
}

function onboardingGoal() {
  return card('Give the team its first goal',
    h('p', { class: 'muted' }, 'The director plans the goal into tasks for specialist agents; reviewers score each output and send it back until it is good. Preview the plan to see its tasks and cost before you start.'),
    goalComposer({
      text: 'Write a launch announcement for our new pricing page',
      options: false,
      hint: 'A concrete deliverable works best for a first goal.',
    }),
    h('div', { class: 'actions' }, h('a', { class: 'btn', href: '#/onboarding/2' }, 'Back')));
}

/* ---------- Goals ---------- */

function viewGoals(ctx) {
  const composer = h('div', { class: 'composer-wrap', hidden: true }, goalComposer());
  const toggle = h('button', {
    class: 'btn primary', testid: 'new-goal', type: 'button',
    onclick: () => {
      composer.hidden = !composer.hidden;
      toggle.textContent = composer.hidden ? 'New goal' : 'Close';
      if (!composer.hidden) $('textarea', composer).focus();
    },
  }, 'New goal');
  const tbody = h('tbody');
  const more = h('button', { class: 'btn', testid: 'goals-more', type: 'button', hidden: true }, 'Load more');
  const status = h('div', {}, loading('Loading goals…'));
  let cursor = null;

  const load = async () => {
    const q = `/goals?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await api('GET', q);
    replace(status);
    for (const g of r.goals || []) {
      tbody.append(h('tr', { testid: `goal-row-${g.id}` },
        h('td', {}, h('a', { href: `#/goals/${encodeURIComponent(g.id)}`, class: 'goal-text-link' }, g.text || g.id), h('div', { class: 'mono muted small' }, g.id)),
        h('td', {}, pill(g.status)),
        h('td', {}, h('span', { class: 'tag' }, g.priority || '—')),
        h('td', {}, g.pipeline || h('span', { class: 'muted' }, 'planned')),
        h('td', { title: when(g.created_ms) }, ago(g.created_ms))));
    }
    if (!tbody.children.length) replace(status, empty('No goals yet. Start one with “New goal”.'));
    cursor = r.next_cursor || null;
    more.hidden = !cursor;
  };
  more.addEventListener('click', handler(() => busy(more, load)));

  replace(ctx.el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Goals'), toggle),
    composer,
    card(null, table(['Goal', 'Status', 'Priority', 'Pipeline', 'Created'], tbody, { testid: 'goals-table' }), status,
      h('div', { class: 'actions center' }, more)));
  load().catch((err) => replace(status, h('div', { class: 'empty error-text' }, `Could not load goals: ${err.message}`)));
}

/* ---------- One goal: pipeline monitor, trace, outputs, reviews ---------- */

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
const REFRESH_ON = new Set(['COMPLETED', 'IN_REVIEW', 'REVISION', 'APPROVED', 'ESCALATED', 'FAILED']);

function depths(tasks) {
  const memo = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (memo.has(id)) return memo.get(id);
    const t = tasks.get(id);
    if (!t || visiting.has(id)) return 0;
    visiting.add(id);
    const d = 1 + Math.max(0, ...(t.deps || []).map(depth));
    visiting.delete(id);
    memo.set(id, d);
    return d;
  };
  for (const id of tasks.keys()) depth(id);
  return memo;
}

function viewGoal(ctx, rawId) {
  const id = decodeURIComponent(rawId);
  const m = {
    goal: null,
    tasks: new Map(),
    touched: new Map(), // task id -> time of the last live update
    goalTouched: 0,
    outputs: [],
    reviews: [],
    traceKeys: new Set(),
    lastEventId: '',
    events: 0,
  };
  const timers = new Set();
  const later = (fn, ms) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (ctx.alive) fn();
    }, ms);
    timers.add(t);
  };
  ctx.onLeave(() => {
    for (const t of timers) clearTimeout(t);
  });

  // Layout.
  const title = h('h1', { class: 'goal-title' }, state.submitted.get(id) || 'Goal');
  const statusSlot = h('span', {}, pill('LOADING', 'goal-status'));
  const meta = h('div', { class: 'goal-meta' });
  const reason = h('div', { class: 'goal-reason' });
  const cancelSlot = h('div', { class: 'cancel-slot' });
  const streamState = h('span', { class: 'stream', testid: 'stream-status', 'data-state': 'idle', 'data-events': '0' }, 'not connected');
  const graph = h('div', { class: 'graph', testid: 'pipeline' }, loading('Waiting for the plan…'));
  const traceList = h('ol', { class: 'trace', testid: 'trace' });
  const outputs = h('div', { class: 'outputs', testid: 'outputs' }, loading('Waiting for outputs…'));

  replace(ctx.el,
    h('div', { class: 'goal-head card' },
      h('div', { class: 'goal-head-top' },
        h('div', { class: 'goal-head-main' }, h('div', { class: 'crumb-line' }, h('a', { href: '#/goals' }, 'Goals'), ' / ', h('span', { class: 'mono' }, id)), title),
        h('div', { class: 'goal-head-side' }, statusSlot, cancelSlot)),
      meta, reason),
    card(h('div', { class: 'card-head-row' }, h('h2', {}, 'Pipeline'), streamState), graph),
    h('div', { class: 'goal-cols' },
      card('Outputs and reviews', outputs),
      card('Trace', h('div', { class: 'trace-wrap' }, traceList))));

  // Rendering.
  const renderHead = () => {
    const g = m.goal;
    if (!g) return;
    title.textContent = g.text || id;
    replace(statusSlot, pill(g.status, 'goal-status', 'big'));
    replace(meta,
      h('span', {}, 'Cost ', h('strong', { testid: 'goal-cost' }, usd(g.cost_usd))),
      h('span', {}, 'Pipeline ', h('strong', {}, g.pipeline || 'planned by the director')),
      h('span', {}, 'Tasks ', h('strong', {}, `${[...m.tasks.values()].filter((t) => t.status === 'APPROVED').length} / ${m.tasks.size} approved`)));
    replace(reason, g.reason ? h('div', { class: `callout ${g.status === 'COMPLETED' ? '' : 'warn'}` }, g.reason) : null);
    renderCancel();
  };

  const renderCancel = () => {
    const st = m.goal?.status;
    if (!(st === 'RUNNING' || st === 'ESCALATED') || !can('editor')) {
      replace(cancelSlot);
      return;
    }
    if (cancelSlot.dataset.open) return;
    if (m.cancelling) {
      replace(cancelSlot, pill('CANCELLING', 'goal-cancelling'));
      return;
    }
    replace(cancelSlot, h('button', {
      class: 'btn danger', type: 'button', testid: 'goal-cancel',
      onclick: () => {
        cancelSlot.dataset.open = '1';
        const why = h('input', { type: 'text', placeholder: 'Reason (optional)', testid: 'cancel-reason' });
        const confirm = h('button', {
          class: 'btn danger', type: 'button', testid: 'cancel-confirm',
          onclick: handler(() => busy(confirm, async () => {
            const body = why.value.trim() ? { reason: why.value.trim() } : {};
            await api('POST', `/goals/${encodeURIComponent(id)}/cancel`, body);
            toast('Cancelling the goal…');
            m.cancelling = true;
            delete cancelSlot.dataset.open;
            renderCancel();
          })),
        }, 'Confirm cancel');
        replace(cancelSlot, h('div', { class: 'inline-form' }, why, confirm,
          h('button', { class: 'btn ghost', type: 'button', onclick: () => { delete cancelSlot.dataset.open; renderCancel(); } }, 'Keep running')));
        why.focus();
      },
    }, 'Cancel goal'));
  };

  const cards = new Map();
  let edgesFrame = 0;
  const renderGraph = () => {
    if (!m.tasks.size) {
      replace(graph, empty(m.goal ? 'The director has not planned any tasks yet.' : 'Waiting for the plan…'));
      return;
    }
    const d = depths(m.tasks);
    const cols = [];
    for (const t of m.tasks.values()) {
      const k = d.get(t.id) || 1;
      (cols[k - 1] ||= []).push(t);
    }
    cards.clear();
    const svg = s('svg', { class: 'edges', 'aria-hidden': 'true' },
      s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))));
    const colEls = cols.map((list, i) => h('div', { class: 'graph-col' },
      h('div', { class: 'graph-col-head' }, `Step ${i + 1}`),
      (list || []).sort((a, b) => String(a.id).localeCompare(String(b.id), undefined, { numeric: true })).map((t) => {
        const c = h('div', { class: `task-card st-${String(t.status).toLowerCase()}`, testid: `task-${t.id}`, 'data-status': t.status },
          h('div', { class: 'task-top' }, h('span', { class: 'task-skill' }, t.skill), pill(t.status, 'task-status', 'small')),
          h('div', { class: 'mono task-id', title: t.id }, t.id),
          h('div', { class: 'task-foot' },
            h('span', { class: 'rev', testid: 'task-revision' }, `rev ${t.revision ?? 0}`),
            (t.deps || []).length ? h('span', { class: 'after' }, `after: ${t.deps.join(', ')}`) : h('span', { class: 'after' }, 'first step')),
          t.reason ? h('div', { class: 'task-reason', title: t.reason }, t.reason) : null);
        c.addEventListener('click', () => {
          const target = document.getElementById(`out-${t.id}`);
          if (target) target.scrollIntoView({ behavior: 'smooth', block: 'start' });
        });
        cards.set(t.id, c);
        return c;
      })));
    replace(graph, svg, h('div', { class: 'graph-cols' }, colEls));
    cancelAnimationFrame(edgesFrame);
    edgesFrame = requestAnimationFrame(drawEdges);
  };

  const drawEdges = () => {
    const svg = $('svg.edges', graph);
    if (!svg) return;
    const box = graph.getBoundingClientRect();
    svg.setAttribute('width', graph.scrollWidth);
    svg.setAttribute('height', graph.scrollHeight);
    for (const p of svg.querySelectorAll('path.edge')) p.remove();
    for (const t of m.tasks.values()) {
      const to = cards.get(t.id);
      for (const dep of t.deps || []) {
        const from = cards.get(dep);
        if (!from || !to) continue;
        const a = from.getBoundingClientRect();
        const b = to.getBoundingClientRect();
        const x1 = a.right - box.left + graph.scrollLeft;
        const y1 = a.top + a.height / 2 - box.top + graph.scrollTop;
        const x2 = b.left - box.left + graph.scrollLeft - 2;
        const y2 = b.top + b.height / 2 - box.top + graph.scrollTop;
        const dx = Math.max(24, (x2 - x1) / 2);
        const done = ['APPROVED', 'COMPLETED'].includes(m.tasks.get(dep)?.status);
        svg.append(s('path', {
          class: `edge ${done ? 'done' : ''}`,
          d: `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`,
          'marker-end': 'url(#arrow)',
        }));
      }
    }
  };
  // Live events come in bursts (the API resends every task when one
  // changes): draw at most once a frame.
  let frame = 0;
  const scheduleRender = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      if (!ctx.alive) return;
      renderHead();
      renderGraph();
    });
  };
  const ro = new ResizeObserver(() => drawEdges());
  ro.observe(graph);
  ctx.onLeave(() => ro.disconnect());

  const renderOutputs = () => {
    const d = depths(m.tasks);
    const order = [...m.tasks.values()].sort((a, b) => (d.get(a.id) || 0) - (d.get(b.id) || 0)
      || String(a.id).localeCompare(String(b.id), undefined, { numeric: true }));
    const byTask = new Map();
    for (const o of m.outputs) {
      const cur = byTask.get(o.task);
      if (!cur || Number(o.revision) >= Number(cur.revision)) byTask.set(o.task, o);
    }
    for (const o of byTask.values()) if (!m.tasks.has(o.task)) order.push({ id: o.task, skill: o.skill, status: null });
    if (!order.length) {
      replace(outputs, empty('No tasks yet.'));
      return;
    }
    const open = new Set([...outputs.querySelectorAll('details[open]')].map((x) => x.dataset.key));
    replace(outputs, order.map((t) => {
      const o = byTask.get(t.id);
      const reviews = m.reviews.filter((r) => r.task === t.id).sort((a, b) => (b.revision - a.revision) || ((b.at_ms || 0) - (a.at_ms || 0)));
      const current = o ? reviews.filter((r) => Number(r.revision) === Number(o.revision)) : reviews;
      const earlier = reviews.filter((r) => !current.includes(r));
      const key = `earlier-${t.id}`;
      const shown = o ? outputBody(o) : null;
      return h('article', { class: 'output', id: `out-${t.id}`, testid: `output-${t.id}` },
        h('header', { class: 'output-head' },
          h('div', {}, h('span', { class: 'mono task-id' }, t.id), ' ', h('strong', {}, t.skill || o?.skill || ''),
            o ? h('span', { class: 'muted' }, ` · revision ${o.revision}`) : null,
            o?.scripted ? h('span', { class: 'tag scripted', testid: 'scripted', title: 'This output came from a scripted response, not a model call' }, 'SCRIPTED') : null),
          h('div', { class: 'output-side' }, shown?.toggle, t.status ? pill(t.status, null, 'small') : null)),
        shown ? shown.body : h('div', { class: 'empty small' }, 'No output yet.'),
        current.length ? h('div', { class: 'reviews' }, current.map(reviewCard)) : null,
        earlier.length ? h('details', { class: 'earlier', 'data-key': key, open: open.has(key) },
          h('summary', {}, `Earlier reviews (${earlier.length})`),
          h('div', { class: 'reviews' }, earlier.map(reviewCard))) : null);
    }));
  };

  const addTrace = (entries) => {
    const nearBottom = traceList.parentElement.scrollHeight - traceList.parentElement.scrollTop - traceList.parentElement.clientHeight < 40;
    for (const tr of entries) {
      const text = traceText(tr);
      const k = `${tr.at_ms}|${text}`;
      if (m.traceKeys.has(k)) continue;
      m.traceKeys.add(k);
      traceList.append(h('li', {}, h('time', { title: when(tr.at_ms) }, clock(tr.at_ms)), h('span', {}, text)));
    }
    if (!traceList.children.length) replace(traceList, h('li', { class: 'muted trace-empty' }, 'Nothing yet.'));
    else $('.trace-empty', traceList)?.remove();
    if (nearBottom) traceList.parentElement.scrollTop = traceList.parentElement.scrollHeight;
  };

  // Loading.
  const applyGoal = (g, started) => {
    const prev = m.goal;
    m.goal = { ...g };
    if (prev && m.goalTouched > started) {
      m.goal.status = prev.status;
      m.goal.reason = prev.reason;
    }
    const next = new Map();
    for (const t of g.tasks || []) {
      const old = m.tasks.get(t.id);
      if (old && (m.touched.get(t.id) || 0) > started) next.set(t.id, { ...t, status: old.status, revision: old.revision });
      else next.set(t.id, { ...t });
    }
    for (const [tid, t] of m.tasks) if (!next.has(tid)) next.set(tid, t); // seen live, not yet in the read
    m.tasks = next;
    renderHead();
    renderGraph();
  };

  const fetchGoal = async () => {
    const started = performance.now();
    const g = await api('GET', `/goals/${encodeURIComponent(id)}`, undefined, { quiet: [404] });
    if (ctx.alive) applyGoal(g, started);
  };

  const fetchOutputs = async () => {
    const [o, r] = await Promise.all([
      api('GET', `/goals/${encodeURIComponent(id)}/outputs`),
      api('GET', `/goals/${encodeURIComponent(id)}/reviews`),
    ]);
    if (!ctx.alive) return;
    m.outputs = o.outputs || [];
    m.reviews = r.reviews || [];
    renderOutputs();
  };

  let refreshing = false;
  let again = false;
  const refresh = () => {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    later(async () => {
      try {
        await Promise.all([fetchGoal(), fetchOutputs()]);
      } catch (err) {
        report(err);
      } finally {
        refreshing = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    }, 300);
  };

  // Live updates: GET /goals/{id}/stream read with fetch, the bearer in the
  // Authorization header (EventSource cannot send one). Each answer is a
  // long poll holding what changed after Last-Event-ID; when it ends the
  // page asks again (after its retry: hint), backing off while it fails.
  const setStream = (st, text, why = null) => {
    streamState.dataset.state = st;
    streamState.dataset.events = String(m.events);
    streamState.title = why || '';
    replace(streamState, h('span', { class: 'dot' }), text);
  };
  const seen = () => {
    m.events += 1;
    streamState.dataset.events = String(m.events);
  };
  const parse = (e) => {
    try {
      return JSON.parse(e.data);
    } catch {
      console.warn('mktg: an event with data that is not JSON', e.type, e.data);
      return null;
    }
  };

  const onEvent = {
    goal: (e) => {
      const d = parse(e);
      if (!d || !m.goal) return;
      const changed = d.status !== m.goal.status;
      m.goal.status = d.status ?? m.goal.status;
      m.goal.reason = d.reason ?? null;
      m.goalTouched = performance.now();
      renderHead();
      if (changed) refresh();
    },
    task: (e) => {
      const d = parse(e);
      if (!d || d.id == null) return;
      const old = m.tasks.get(d.id);
      m.touched.set(d.id, performance.now());
      if (!old) {
        m.tasks.set(d.id, { deps: [], ...d });
        refresh(); // learn its deps and reason
      } else {
        const newRevision = old.revision !== d.revision;
        const changed = newRevision || old.status !== d.status;
        Object.assign(old, d);
        if (changed && (newRevision || REFRESH_ON.has(d.status))) refresh();
      }
      scheduleRender();
    },
    trace: (e) => {
      const d = parse(e);
      if (d) addTrace([d]);
    },
    cursor: () => {}, // a bookmark the API sends after a batch: its id is all it carries
  };
  const dispatch = (e) => {
    if (e.lastEventId) m.lastEventId = e.lastEventId;
    if (!ctx.alive || !Object.hasOwn(onEvent, e.type)) return;
    if (e.type !== 'cursor') seen();
    try {
      onEvent[e.type](e);
    } catch (err) {
      report(err);
    }
  };

  const live = new AbortController();
  ctx.onLeave(() => live.abort());
  /** Waits `ms`, or less when the page is left. */
  const pause = (ms) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    live.signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

  const listen = async () => {
    const path = `/goals/${encodeURIComponent(id)}/stream`;
    let failures = 0;
    setStream('connecting', 'connecting…');
    while (ctx.alive) {
      let retry = null;
      const before = m.events;
      try {
        const headers = { Accept: 'text/event-stream' };
        if (m.lastEventId) headers['Last-Event-ID'] = m.lastEventId;
        const res = await authFetch(path, { headers, signal: live.signal, cache: 'no-store' });
        if (!res.ok) throw await errorOf(res);
        if (streamState.dataset.state !== 'live') setStream('live', 'live');
        const sse = await readEvents(res, dispatch, m.lastEventId);
        m.lastEventId = sse.lastId;
        retry = sse.retry;
        failures = 0;
      } catch (err) {
        if (!ctx.alive || err?.name === 'AbortError') return;
        if (err.status === 401 || err.status === 403) {
          // The sign-in ended (or no longer reaches this goal): said like any other refusal.
          report(err);
          setStream('closed', err.status === 401 ? 'stopped — signed out' : 'stopped — not allowed', err.message);
          return;
        }
        failures += 1;
        const secs = Math.min(10, failures);
        setStream('retrying', `reconnecting in ${secs} s…`, err.message);
        await pause(secs * 1000);
        if (ctx.alive) setStream('connecting', 'reconnecting…', err.message);
        continue;
      }
      if (TERMINAL.has(m.goal?.status)) {
        // The answer ended and the goal has settled: nothing more will come.
        setStream('closed', `closed — goal ${human(m.goal.status).toLowerCase()}`);
        return;
      }
      // At once, or after the answer's retry: hint; an answer that held
      // nothing and gave no hint is not asked again in a tight loop.
      const wait = retry ?? (m.events === before ? 1000 : 0);
      if (wait) await pause(wait);
    }
  };

  // First load: a goal submitted from this tab may not exist for a moment
  // (the director plans it from the queue), so its 404 is retried quietly
  // for about two minutes; any other goal gets a few quick retries.
  let tries = 0;
  const maxTries = state.submitted.has(id) ? 60 : 3;
  const first = async () => {
    try {
      await fetchGoal();
    } catch (err) {
      if (err.status === 404 && tries < maxTries) {
        tries += 1;
        replace(statusSlot, pill(state.submitted.has(id) ? 'SUBMITTED' : 'LOADING', 'goal-status', 'big'));
        replace(graph, loading(state.submitted.has(id) ? 'The director is planning this goal…' : 'Looking for this goal…'));
        later(first, Math.min(3000, 500 + tries * 250));
        return;
      }
      report(err);
      replace(statusSlot, pill('UNKNOWN', 'goal-status', 'big'));
      replace(graph, h('div', { class: 'empty error-text' }, `Could not load the goal: ${err.message}`));
      return;
    }
    try {
      const [tr] = await Promise.all([api('GET', `/goals/${encodeURIComponent(id)}/trace`), fetchOutputs()]);
      if (!ctx.alive) return;
      addTrace(tr.trace || []);
    } catch (err) {
      report(err);
    }
    listen();
  };
  first();
}

/** A trace line: the contract's `text`, or one built from subject/from/to/note. */
function traceText(tr) {
  if (typeof tr.text === 'string') return tr.text;
  const move = tr.from || tr.to ? `${tr.from || '—'} → ${tr.to || '—'}` : '';
  return [tr.subject, move, tr.note].filter(Boolean).join(' · ') || json(tr);
}

/** An output's body (simple markdown) and a button that switches it to the raw text. */
function outputBody(o) {
  const body = h('div', { class: 'output-body', testid: 'output-body' }, markdown(o.body));
  let raw = false;
  const toggle = h('button', {
    class: 'btn ghost small', type: 'button', title: 'Show the text as the agent wrote it',
    onclick: () => {
      raw = !raw;
      replace(body, raw ? h('pre', { class: 'raw' }, o.body ?? '') : markdown(o.body));
      toggle.textContent = raw ? 'Formatted' : 'Raw';
    },
  }, 'Raw');
  return { body, toggle };
}

function reviewCard(r) {
  const scores = Object.entries(r.scores || {});
  return h('div', { class: 'review', testid: 'review' },
    h('div', { class: 'review-head' },
      h('span', { class: 'reviewer' }, r.reviewer || 'reviewer'),
      pill(r.decision, 'review-decision', 'small'),
      h('span', { class: 'muted small' }, `rev ${r.revision}${r.at_ms ? ` · ${ago(r.at_ms)}` : ''}`),
      h('span', { class: `score ${scoreClass(r.overall)}`, testid: 'review-score', title: 'Overall score' },
        r.overall == null ? '—' : `${r.overall}/10`)),
    r.summary ? h('p', { class: 'review-summary' }, r.summary) : null,
    scores.length ? h('div', { class: 'dims' }, scores.map(([dim, v]) => h('div', { class: 'dim' },
      h('span', { class: 'dim-name' }, dim.replace(/_/g, ' ')),
      h('span', { class: 'dim-bar' }, h('span', { class: `dim-fill ${scoreClass(v)}`, style: `width:${Math.max(0, Math.min(10, Number(v) || 0)) * 10}%` })),
      h('span', { class: 'dim-val' }, String(v))))) : null,
    (r.findings || []).length ? h('ul', { class: 'findings' }, r.findings.map(finding)) : null);
}

/** A review finding: the contract's {severity, text}, or {severity, section, quote, problem, fix}. */
function finding(f) {
  const sev = h('span', { class: `sev sev-${String(f.severity || 'info').toLowerCase()}` }, f.severity || 'note');
  if (typeof f.text === 'string') return h('li', {}, sev, ' ', f.text);
  return h('li', {},
    h('div', {}, sev, f.section ? h('span', { class: 'tag' }, f.section) : null, ' ', f.problem || ''),
    f.quote ? h('blockquote', { class: 'quote' }, `“${f.quote}”`) : null,
    f.fix ? h('div', { class: 'fix' }, h('strong', {}, 'Fix: '), f.fix) : null);
}

function scoreClass(v) {
  if (v == null) return '';
  const n = Number(v);
  return n >= 8 ? 'good' : n >= 6 ? 'mid' : 'low';
}

/* ---------- Approvals ---------- */

function viewApprovals(ctx) {
  replace(ctx.el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Approvals')),
    h('p', { class: 'muted lead' }, 'Writes and spends wait for a person. Escalated tasks need a decision after reviewers could not approve them.'),
    asyncCard('Pending', async () => {
      const r = await api('GET', '/approvals');
      const calls = r.tool_calls || [];
      const shifts = r.budget_shifts || [];
      if (!calls.length && !shifts.length) return empty('Nothing is waiting for approval.');
      return h('div', { class: 'stack' },
        calls.length ? h('h3', {}, `Tool calls (${calls.length})`) : null,
        calls.map(toolCallCard),
        shifts.length ? h('h3', {}, `Budget shifts (${shifts.length})`) : null,
        shifts.map(shiftCard));
    }, { testid: 'approvals' }),
    asyncCard('Escalations', async () => {
      const r = await api('GET', '/escalations');
      const list = r.escalations || [];
      return list.length ? h('div', { class: 'stack' }, list.map(escalationCard)) : empty('No escalated tasks.');
    }, { testid: 'escalations' }));
}

function decisionButtons(reference) {
  const slot = h('div', { class: 'decide' });
  const done = (res) => replace(slot, pill(String(res.status || 'decided').toUpperCase()), h('span', { class: 'muted small' }, ` ${reference}`));
  const show = () => {
    const approve = h('button', {
      class: 'btn primary', type: 'button', testid: `approve-${reference}`, disabled: !can('editor'),
      onclick: handler(() => busy(approve, async () => {
        const res = await api('POST', `/approvals/${encodeURIComponent(reference)}/approve`);
        toast(`Approved ${reference}`);
        done(res);
      })),
    }, 'Approve');
    const deny = h('button', {
      class: 'btn danger', type: 'button', testid: `deny-${reference}`, disabled: !can('editor'),
      onclick: () => {
        const why = h('input', { type: 'text', placeholder: 'Why? The agent reads this.', testid: `deny-reason-${reference}` });
        const confirm = h('button', {
          class: 'btn danger', type: 'button',
          onclick: handler(async () => {
            if (!why.value.trim()) {
              why.focus();
              banner('error', 'A denial needs a reason.');
              return;
            }
            await busy(confirm, async () => {
              const res = await api('POST', `/approvals/${encodeURIComponent(reference)}/deny`, { reason: why.value.trim() });
              toast(`Denied ${reference}`);
              done(res);
            });
          }),
        }, 'Deny');
        replace(slot, h('div', { class: 'inline-form' }, why, confirm, h('button', { class: 'btn ghost', type: 'button', onclick: show }, 'Back')));
        why.focus();
      },
    }, 'Deny…');
    replace(slot, approve, deny);
  };
  show();
  return slot;
}

function toolCallCard(c) {
  return h('div', { class: 'item', testid: `approval-${c.reference}` },
    h('div', { class: 'item-head' },
      h('div', {}, h('strong', { class: 'mono' }, c.tool), ' ', pill(c.effect, null, 'small'),
        h('div', { class: 'muted small' }, 'goal ', goalLink(c.goal), ' · task ', h('span', { class: 'mono' }, c.task ?? '—'), ' · ', when(c.at_ms))),
      decisionButtons(c.reference)),
    h('pre', { class: 'json' }, json(c.input)));
}

function shiftCard(p) {
  const sh = p.shift || {};
  const channels = [...new Set([...Object.keys(sh.before || {}), ...Object.keys(sh.after || {})])];
  return h('div', { class: 'item', testid: `approval-${p.id}` },
    h('div', { class: 'item-head' },
      h('div', {},
        h('strong', {}, sh.from && sh.to ? `Move ${usd(sh.amount)} from ${sh.from} to ${sh.to}` : p.id),
        h('div', { class: 'muted small' },
          sh.from_roi != null ? `return per dollar: ${sh.from} ${Number(sh.from_roi).toFixed(2)} → ${sh.to} ${Number(sh.to_roi).toFixed(2)}` : '',
          p.window_days ? ` · last ${p.window_days} days` : '', p.created_ms ? ` · ${when(p.created_ms)}` : '')),
      decisionButtons(p.id)),
    channels.length ? table(['Channel', 'Before', 'After'], channels.map((ch) => h('tr', {},
      h('td', {}, ch), h('td', { class: 'num' }, usd(sh.before?.[ch])), h('td', { class: 'num' }, usd(sh.after?.[ch]))))) : h('pre', { class: 'json' }, json(p)));
}

function escalationCard(e) {
  const note = h('input', { type: 'text', placeholder: 'Note for the agent (needed to retry)', testid: `escalation-note-${e.goal}-${e.task}` });
  const slot = h('div', { class: 'decide' });
  const act = (action, label, cls) => {
    const b = h('button', {
      class: `btn ${cls}`, type: 'button', testid: `escalation-${action}-${e.goal}-${e.task}`, disabled: !can('editor'),
      onclick: handler(async () => {
        if (action === 'retry' && !note.value.trim()) {
          note.focus();
          banner('error', 'Tell the agent what to change before retrying.');
          return;
        }
        await busy(b, async () => {
          const res = await api('POST', `/escalations/${encodeURIComponent(e.goal)}/${encodeURIComponent(e.task)}/resolve`, { action, note: note.value.trim() });
          toast(`${label}: ${e.goal} / ${e.task}`);
          replace(slot, pill(String(res.action || action).toUpperCase()));
          note.disabled = true;
        });
      }),
    }, label);
    return b;
  };
  replace(slot, act('accept', 'Accept', 'primary'), act('retry', 'Retry', ''), act('cancel', 'Cancel', 'danger'));
  const lr = e.last_review;
  return h('div', { class: 'item', testid: `escalation-${e.goal}-${e.task}` },
    h('div', { class: 'item-head' },
      h('div', {},
        h('strong', {}, e.skill), ' ', h('span', { class: 'muted' }, `revision ${e.revision}`),
        h('div', { class: 'muted small' }, 'goal ', goalLink(e.goal), e.goal_text ? ` “${e.goal_text}”` : '', ' · task ', h('span', { class: 'mono' }, e.task))),
      pill('ESCALATED', null, 'small')),
    e.reason ? h('p', {}, e.reason) : null,
    lr ? h('div', { class: 'callout' }, h('strong', {}, lr.reviewer), ' ', pill(lr.decision, null, 'small'),
      lr.overall != null ? h('span', { class: 'muted' }, ` ${lr.overall}/10`) : null, ' ', lr.summary || '') : null,
    h('div', { class: 'inline-form' }, note, slot));
}

/* ---------- Cost & budget ---------- */

function viewCost(ctx) {
  replace(ctx.el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Cost & budget')),
    asyncCard('This month', async () => {
      const c = await api('GET', '/cost');
      const rows = [...(c.by_skill || [])].sort((a, b) => b.usd - a.usd);
      return h('div', {},
        h('div', { class: 'stats' },
          stat('Spent', usd(c.usd), c.month),
          stat('Model calls', int(c.calls)),
          stat('Tokens in', int(c.input_tokens)),
          stat('Tokens out', int(c.output_tokens))),
        h('h3', {}, 'By skill'),
        barChart(rows, { label: (r) => r.skill, value: (r) => Number(r.usd) || 0, format: usd, testid: 'cost-chart' }));
    }, { testid: 'cost' }),
    h('div', { class: 'grid2' },
      asyncCard('Budget', async () => budgetBody(await api('GET', '/budget')), { testid: 'budget' }),
      asyncCard('Plan & billing', async () => billingBody(await api('GET', '/billing')), { testid: 'billing' })));
}

function budgetBody(b) {
  const wrap = h('div');
  const render = (b) => {
    const pct = Number(b.percent_used) || 0;
    const monthly = h('input', { type: 'number', min: 0, step: '1', value: b.monthly_usd ?? '', testid: 'budget-monthly', required: true });
    const perGoal = h('input', { type: 'number', min: 0, step: '0.01', value: b.per_goal_usd ?? '', testid: 'budget-per-goal' });
    const save = h('button', { class: 'btn primary', type: 'submit', testid: 'budget-save' }, 'Save budget');
    replace(wrap,
      h('div', { class: 'stats' },
        stat('Monthly limit', usd(b.monthly_usd), b.source === 'tenant' ? 'set for this workspace' : 'from config'),
        stat('Per goal', usd(b.per_goal_usd)),
        stat('Spent', usd(b.spent_usd), b.month)),
      h('div', { class: 'budget-line' },
        h('span', {}, `${pct.toFixed(1)}% used`),
        h('span', { class: `level lvl-${levelClass(b.level, pct)}`, testid: 'budget-level' }, b.level || 'normal')),
      progress(pct, b.level),
      h('h3', {}, `Parked tasks (${(b.parked || []).length})`),
      (b.parked || []).length
        ? table(['Goal', 'Task', 'Rev', 'Why'], b.parked.map((p) => h('tr', {},
          h('td', {}, goalLink(p.goal)), h('td', { class: 'mono' }, p.task), h('td', {}, p.revision),
          h('td', {}, p.level ? [h('span', { class: 'tag' }, p.level), ' '] : null, p.reason))))
        : empty('No task is waiting for budget.'),
      can('owner')
        ? h('form', {
          class: 'inline-form budget-form',
          onsubmit: handler(async (e) => {
            e.preventDefault();
            const body = { monthly_usd: Number(monthly.value) };
            if (perGoal.value !== '') body.per_goal_usd = Number(perGoal.value);
            await busy(save, async () => {
              const nb = await api('PUT', '/budget', body);
              toast('Budget saved');
              render(nb);
            });
          }),
        }, field('Monthly USD', monthly), field('Per goal USD', perGoal), save)
        : h('p', { class: 'muted small' }, 'Only an owner can change the budget.'));
  };
  render(b);
  return wrap;
}

/**
 * The plan, its usage and the other plans. Reads the contract's fields and,
 * where the API names them otherwise, its own (usage.model_usd,
 * plans' per_goal_usd_limit and description, stripe.last_report_ms).
 */
function billingBody(b) {
  const wrap = h('div');
  const limit = (v, unit) => (v == null ? 'unlimited' : unit === '$' ? usd(v) : int(v));
  const planLine = (p) => [
    `${limit(p.monthly_usd_limit, '$')} / month`,
    p.per_goal_usd_limit != null ? `${usd(p.per_goal_usd_limit)} / goal` : null,
    p.goals_per_month !== undefined ? `${limit(p.goals_per_month)} goals` : null,
  ].filter(Boolean).join(' · ');
  const render = (b) => {
    const plan = b.plan || {};
    const u = b.usage || {};
    const spent = u.usd ?? u.model_usd ?? 0;
    const goalsPct = plan.goals_per_month ? (100 * (u.goals || 0)) / plan.goals_per_month : 0;
    const usdPct = plan.monthly_usd_limit ? (100 * spent) / plan.monthly_usd_limit : 0;
    const last = b.stripe?.last_reported ?? b.stripe?.last_report_ms;
    replace(wrap,
      h('div', { class: 'plan-now' },
        h('span', { class: 'muted' }, 'Current plan'),
        h('strong', { class: 'plan-name', testid: 'plan-name' }, plan.name || 'No plan'),
        plan.name ? h('span', { class: 'muted small' }, plan.description || planLine(plan)) : h('span', { class: 'muted small' }, 'The budget\'s limits apply.')),
      h('div', { class: 'usage' },
        h('div', {}, h('div', { class: 'budget-line' }, h('span', {}, 'Goals'), h('span', {}, `${int(u.goals || 0)} of ${limit(plan.goals_per_month)}`)),
          plan.goals_per_month ? progress(goalsPct) : null),
        h('div', {}, h('div', { class: 'budget-line' }, h('span', {}, 'Model spend'), h('span', {}, `${usd(spent)} of ${limit(plan.monthly_usd_limit, '$')}`)),
          plan.monthly_usd_limit ? progress(usdPct) : null)),
      h('div', { class: 'stats billing-usage', testid: 'billing-usage' },
        stat('Model cost', usd(u.model_usd ?? spent), `${u.month || 'this month'} · ${int(u.calls || 0)} calls`, 'billing-model-usd'),
        stat('Billable', u.billable_cents == null ? '—' : cents(u.billable_cents),
          u.billable_cents == null ? 'no plan, nothing billed' : plan.markup != null ? `at ${Number(plan.markup)}× markup` : null, 'billing-billable'),
        stat('Reported to Stripe', cents(u.reported_cents || 0),
          last ? `last ${typeof last === 'number' ? ago(last) : last}` : 'not reported yet', 'billing-reported')),
      customerForm(b, render),
      (b.plans || []).length ? h('div', { class: 'plans' }, b.plans.map((p) => {
        const current = p.name === plan.name;
        const btn = can('owner') && !current ? h('button', {
          class: 'btn small', type: 'button', testid: `plan-switch-${p.name}`,
          onclick: handler(() => busy(btn, async () => {
            const nb = await api('PUT', '/billing/plan', { plan: p.name });
            toast(`Switched to ${p.name}`);
            render(nb);
          })),
        }, 'Switch') : null;
        return h('div', { class: `plan-card ${current ? 'current' : ''}` },
          h('div', {}, h('strong', {}, p.name), current ? h('span', { class: 'tag' }, 'current') : null),
          p.description ? h('div', { class: 'small' }, p.description) : null,
          h('div', { class: 'muted small' }, planLine(p)),
          btn);
      })) : null);
  };
  render(b);
  return wrap;
}

const cents = (c) => usd(Number(c) / 100);

const STRIPE_CUSTOMER = /^cus_[A-Za-z0-9_]+$/;

/** The Stripe customer the usage is reported to, and (owners) the form to link it. */
function customerForm(b, render) {
  const linked = b.stripe?.customer || null;
  const current = h('p', { class: 'muted small', testid: 'billing-customer-current', 'data-customer': linked || '' },
    'Stripe customer: ', linked ? h('span', { class: 'mono' }, linked) : 'not linked',
    b.stripe?.meter_event ? [' · usage goes to the meter event ', h('span', { class: 'mono' }, b.stripe.meter_event)] : null);
  if (!can('owner')) return h('div', {}, current, h('p', { class: 'muted small' }, 'Only an owner can change the plan or the Stripe customer.'));
  const input = h('input', {
    type: 'text', testid: 'billing-customer', placeholder: 'cus_…', value: linked || '', maxlength: 64,
    autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Stripe customer id',
  });
  const save = h('button', { class: 'btn', type: 'submit', testid: 'billing-customer-save' }, linked ? 'Update' : 'Link customer');
  return h('div', {},
    current,
    h('form', {
      class: 'inline-form customer-form',
      onsubmit: handler(async (e) => {
        e.preventDefault();
        const customer = input.value.trim();
        if (!STRIPE_CUSTOMER.test(customer) || customer.length > 64) {
          input.focus();
          banner('error', 'A Stripe customer id is cus_ followed by letters and digits (from the customer\'s page in Stripe).');
          return;
        }
        await busy(save, async () => {
          const nb = await api('PUT', '/billing/customer', { customer });
          toast(`Stripe customer ${customer} linked`);
          render(nb);
        });
      }),
    }, field('Stripe customer', input, 'The report-usage schedule sends the billable usage to Stripe for this customer.'), save));
}

/* ---------- Learnings ---------- */

function viewLearnings(ctx) {
  replace(ctx.el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Learnings')),
    h('p', { class: 'muted lead' }, 'What reviews taught the agents. Patterns hold across several goals; learnings that stopped helping are pruned.'),
    asyncCard(null, async () => {
      const r = await api('GET', '/learnings');
      const patterns = r.patterns || [];
      const learnings = [...(r.learnings || [])].sort((a, b) => Number(!!a.pruned) - Number(!!b.pruned) || (b.score ?? 0) - (a.score ?? 0));
      return h('div', {},
        h('h2', {}, 'Patterns'),
        patterns.length ? h('div', { class: 'patterns' }, patterns.map((p) => h('div', { class: 'pattern' },
          h('span', { class: 'skill' }, p.skill),
          h('p', {}, p.text),
          h('div', { class: 'muted small' }, Array.isArray(p.goals)
            ? [`seen in ${p.goals.length} goal${p.goals.length === 1 ? '' : 's'}: `, p.goals.slice(0, 5).flatMap((g, i) => [i ? ', ' : '', goalLink(g)])]
            : `seen in ${p.goals ?? 0} goals`,
          p.mean_score != null ? ` · mean score ${Number(p.mean_score).toFixed(1)}` : '')))) : empty('No patterns yet: they appear when the same lesson helps several goals.'),
        h('h2', {}, 'Learnings'),
        learnings.length ? table(['Skill', 'Learning', 'Score', 'From goal', 'Pruned'], learnings.map((l) => h('tr', { class: l.pruned ? 'pruned' : '' },
          h('td', {}, h('span', { class: 'skill' }, l.skill)),
          h('td', {}, l.text, l.validated ? [' ', pill('VALIDATED', null, 'small')] : null),
          h('td', { class: 'num' }, l.score == null ? '—' : Number(l.score).toFixed(2)),
          h('td', {}, goalLink(l.source_goal)),
          h('td', {}, l.pruned ? pill('PRUNED', null, 'small') : h('span', { class: 'muted' }, 'no')))), { testid: 'learnings-table' })
          : empty('No learnings yet: they are written after reviews.'));
    }, { testid: 'learnings' }));
}

/* ---------- Schedules, events, metrics ---------- */

// Presets of the new-schedule form's "When": [cron, label].
const CRON_PRESETS = [
  ['0 9 * * *', 'Every day at 09:00'],
  ['0 9 * * 1-5', 'Weekdays at 09:00'],
  ['0 8 * * 1', 'Mondays at 08:00'],
  ['0 9 1 * *', 'The first of the month at 09:00'],
];

const SCHEDULE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The browser's IANA timezone (the default of a new schedule). */
function browserTimezone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** A schedule id made from its name: lower-case letters, digits and dashes, at most 64. */
const slugOf = (name) => name.toLowerCase().normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
  .replace(/[^a-z0-9]+/g, '-').replace(/^-+/, '').slice(0, 64).replace(/-+$/, '');

/** A fire time as the schedule's own clock shows it ("Mon 07:00"); '' when the zone is the browser's or unknown. */
function inZone(iso, timezone) {
  if (!timezone || timezone === browserTimezone()) return '';
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: timezone, weekday: 'short', hour: '2-digit', minute: '2-digit', hour12: false });
  } catch {
    return '';
  }
}

let pipelineNames = null; // the promise of the deployment's pipeline names

/**
 * The pipelines a goal or a schedule may name: the served OpenAPI document
 * lists this deployment's (NewGoal.pipeline's enum). [] when it cannot say.
 */
function loadPipelines() {
  pipelineNames ||= api('GET', '/openapi.json', undefined, { quiet: true, auth: false })
    .then((doc) => (doc?.components?.schemas?.NewGoal?.properties?.pipeline?.enum || []).filter((x) => typeof x === 'string' && x))
    .catch(() => {
      pipelineNames = null; // ask again next time
      return [];
    });
  return pipelineNames;
}

/** The PUT /schedules/{id} body of a schedule as GET /schedules shows it, with `changes`. */
function ownScheduleBody(x, changes = {}) {
  return {
    name: x.name,
    cron: x.cron,
    timezone: x.timezone || 'UTC',
    priority: x.priority || null,
    ...(x.kind === 'pipeline' ? { pipeline: x.what } : { goal: x.what }),
    enabled: x.enabled !== false,
    ...changes,
  };
}

/** An API error's message with its code, for an inline error slot. */
const errorText = (err) => [err.message, err.code ? h('span', { class: 'muted small' }, ` (${err.code})`) : null];

function viewSchedules(ctx) {
  const editor = can('editor');
  const body = h('div', { class: 'card-body' }, loading());
  const formSlot = h('div', { class: 'own-schedule-slot' });
  const listError = h('div', { class: 'form-error list-error', testid: 'own-schedule-list-error', role: 'alert' });
  let list = []; // GET /schedules, kept in step with each answer
  let saved = null; // the id of the own schedule just saved, marked in the list

  const draw = () => {
    if (ctx.alive) replace(body, schedulesTable(list, { editor, saved, edit: openForm, change, remove }));
  };
  /** Puts an answer of PUT /schedules/{id} in the list (replacing the one it saved). */
  const put = (x) => {
    const at = list.findIndex((y) => y.own && y.id === x.id);
    if (at < 0) list.push(x);
    else list[at] = x;
    saved = x.id;
    draw();
  };
  const closeForm = () => {
    replace(formSlot);
    if (newBtn) newBtn.hidden = false;
  };
  function openForm(x = null) {
    replace(listError);
    if (newBtn) newBtn.hidden = true;
    const form = ownScheduleForm(x, {
      taken: (id) => list.some((y) => y.id === id && (!x || y.id !== x.id)),
      onSaved: (r) => {
        toast(`${x ? 'Saved' : 'Created'} the schedule “${r.name}”`);
        closeForm();
        put(r);
      },
      onCancel: closeForm,
    });
    replace(formSlot, form);
    form.scrollIntoView({ block: 'nearest' });
    $('[data-testid=own-schedule-name]', form)?.focus();
  }
  /** On or off: the schedule PUT again with `enabled` switched. */
  async function change(x, enabled) {
    replace(listError);
    try {
      put(await api('PUT', `/schedules/${encodeURIComponent(x.id)}`, ownScheduleBody(x, { enabled }), { quiet: true }));
      toast(`“${x.name}” turned ${enabled ? 'on' : 'off'}`);
    } catch (err) {
      replace(listError, errorText(err));
      draw();
    }
  }
  async function remove(x) {
    replace(listError);
    try {
      await api('DELETE', `/schedules/${encodeURIComponent(x.id)}`, undefined, { quiet: true });
    } catch (err) {
      replace(listError, errorText(err));
      if (err.status !== 404) return false;
    }
    toast(`Deleted the schedule “${x.name}”`);
    list = list.filter((y) => !(y.own && y.id === x.id));
    if (saved === x.id) saved = null;
    draw();
    return true;
  }
  const newBtn = editor ? h('button', {
    class: 'btn primary', type: 'button', testid: 'own-schedule-new', onclick: () => openForm(null),
  }, 'New schedule') : null;

  replace(ctx.el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Schedules & events')),
    h('section', { class: 'card', testid: 'schedules' },
      h('div', { class: 'card-head-row' }, h('h2', {}, 'Schedules'), newBtn),
      h('p', { class: 'muted small' }, 'The deployment\'s schedules (turned on or off in Settings) and this team\'s own, marked “yours”: each starts a goal or a pipeline on its cron, in its timezone.',
        editor ? null : h('span', { testid: 'own-schedules-readonly' }, ` Editors and owners make schedules; as ${state.me?.role || 'a viewer'} you see them.`)),
      formSlot,
      listError,
      body),
    asyncCard('Event mappings', async () => {
      const r = await api('GET', '/events');
      const list = r.mappings || [];
      return list.length ? table(['Name', 'Event', 'Starts', 'Priority', 'Cooldown', 'Conditions'], list.map((x) => h('tr', {},
        h('td', {}, h('strong', {}, x.name)),
        h('td', {}, h('code', {}, x.event)),
        h('td', {}, x.pipeline || x.what || '—', x.kind && x.kind !== 'goal' ? h('span', { class: 'tag' }, x.kind) : null),
        h('td', {}, x.priority ? h('span', { class: 'tag' }, x.priority) : '—'),
        h('td', {}, x.cooldown_minutes != null ? `${x.cooldown_minutes} min` : '—'),
        h('td', {}, (x.conditions || []).length
          ? h('div', { class: 'chips' }, x.conditions.map((c) => h('code', { class: 'chip' }, typeof c === 'string' ? c : JSON.stringify(c))))
          : h('span', { class: 'muted' }, 'always')))), { testid: 'events-table' }) : empty('No event mappings.');
    }, { testid: 'events' }),
    asyncCard('Metrics', async () => {
      const r = await api('GET', '/metrics');
      const list = r.metrics || [];
      return list.length ? h('div', { class: 'metrics' }, list.map((x) => {
        const pts = [...(x.points || [])].sort((a, b) => String(a.day).localeCompare(String(b.day)));
        const last = pts[pts.length - 1];
        return h('div', { class: 'metric', testid: `metric-${x.series}` },
          h('div', { class: 'metric-head' },
            h('span', { title: x.series }, x.name ? [x.name, x.dimension ? h('span', { class: 'muted' }, ` · ${x.dimension}`) : null] : h('span', { class: 'mono' }, x.series)),
            h('strong', {}, last ? withUnit(last.value, x.unit) : '—')),
          sparkline(pts),
          h('div', { class: 'muted small' }, pts.length ? `${pts[0].day} → ${last.day} · ${pts.length} days` : 'no data'));
      })) : empty('No metrics recorded yet.');
    }, { testid: 'metrics' }));
  api('GET', '/schedules').then((r) => {
    list = r.schedules || [];
    draw();
  }).catch((err) => {
    if (ctx.alive) replace(body, h('div', { class: 'empty error-text' }, `Could not load: ${err.message}`));
  });
}

/**
 * Every schedule, the deployment's and this team's own ("yours"), with the
 * next fire times; an editor gets on/off, Edit and Delete… on their own.
 */
function schedulesTable(list, { editor, saved, edit, change, remove }) {
  if (!list.length) return empty('No schedules yet.');
  const nextTimes = (x) => h('td', { class: 'next', testid: x.own ? `own-schedule-next-${x.id}` : null, 'data-next': (x.next || [])[0] || null },
    (x.next || []).length
      ? x.next.slice(0, 3).map((n) => {
        const there = inZone(n, x.timezone);
        return h('div', { title: n }, `${when(Date.parse(n))} `, h('span', { class: 'muted small' }, `(${ago(Date.parse(n))}${there ? `; ${there} there` : ''})`));
      })
      : h('span', { class: 'muted' }, x.enabled === false ? 'off' : '—'));
  const rows = list.map((x) => h('tr', { testid: x.own ? `own-schedule-${x.id}` : `schedule-${x.id}`, 'data-own': String(!!x.own), 'data-enabled': String(x.enabled !== false) },
    h('td', {}, h('strong', {}, x.name),
      x.own ? h('span', { class: 'tag yours-tag', testid: `own-schedule-yours-${x.id}`, title: 'This team\'s own schedule' }, 'yours') : null,
      x.enabled === false ? h('span', { class: 'tag' }, 'off') : null,
      x.own && saved === x.id ? h('span', { class: 'saved', testid: `own-schedule-saved-${x.id}`, role: 'status' }, '✓ Saved') : null,
      h('div', { class: 'muted small mono' }, x.id)),
    h('td', {}, h('code', {}, x.cron), h('div', { class: 'muted small' }, x.timezone || 'UTC')),
    h('td', {}, h('span', { class: 'tag' }, x.kind)),
    h('td', { class: 'what' }, x.what),
    h('td', {}, x.priority ? h('span', { class: 'tag' }, x.priority) : '—'),
    nextTimes(x),
    editor ? h('td', { class: 'save-cell' }, x.own ? ownScheduleActions(x, { edit, change, remove })
      : h('a', { class: 'small', href: '#/settings', title: 'The deployment\'s schedules are turned on or off in Settings (owners)' }, 'Settings')) : null));
  return table(['Name', 'When', 'Kind', 'What', 'Priority', 'Next runs', editor ? '' : null].filter((x) => x != null), rows, { testid: 'schedules-table', cls: 'schedules-table' });
}

/** On/off, Edit and "Delete…" with an inline confirmation, for one of the team's own schedules. */
function ownScheduleActions(x, { edit, change, remove }) {
  const on = x.enabled !== false;
  const toggle = h('input', {
    type: 'checkbox', role: 'switch', class: 'switch', testid: `own-schedule-toggle-${x.id}`, checked: on,
    'data-enabled': String(on), 'aria-label': `${x.name} on or off`,
  });
  toggle.addEventListener('change', handler(async () => {
    toggle.disabled = true;
    await change(x, toggle.checked);
  }));
  const slot = h('span', { class: 'disconnect-slot' });
  const ask = () => {
    const yes = h('button', {
      class: 'btn danger small', type: 'button', testid: `own-schedule-delete-confirm-${x.id}`,
      onclick: handler(() => busy(yes, async () => {
        if (!(await remove(x))) show();
      })),
    }, 'Delete');
    replace(slot, h('span', { class: 'inline-form' }, h('span', { class: 'small muted' }, 'Delete this schedule? Runs already started go on.'), yes,
      h('button', { class: 'btn ghost small', type: 'button', testid: `own-schedule-delete-keep-${x.id}`, onclick: show }, 'Keep')));
  };
  const show = () => replace(slot, h('button', { class: 'btn danger small', type: 'button', testid: `own-schedule-delete-${x.id}`, onclick: ask }, 'Delete…'));
  show();
  return h('div', { class: 'own-actions' },
    h('label', { class: 'switch-wrap' }, toggle, h('span', { class: `switch-state ${on ? 'on' : ''}` }, on ? 'on' : 'off')),
    h('button', { class: 'btn small', type: 'button', testid: `own-schedule-edit-${x.id}`, onclick: () => edit(x) }, 'Edit'),
    slot);
}

/**
 * The form of one of the team's own schedules: new (x null) or x's, filled
 * in. Its id is made from the name until edited (a saved one's stays);
 * "When" offers presets that fill in the cron, which can also be typed.
 * PUT /schedules/{id}: `onSaved(answer)`; the API's refusal shows under it.
 */
function ownScheduleForm(x, { taken, onSaved, onCancel }) {
  const editing = !!x;
  const name = h('input', { type: 'text', testid: 'own-schedule-name', maxlength: 120, value: x?.name || '', placeholder: 'e.g. Morning growth tip', autocomplete: 'off' });
  const id = h('input', {
    type: 'text', testid: 'own-schedule-id', maxlength: 64, value: x?.id || '', readonly: editing, class: 'mono',
    placeholder: 'made from the name', autocomplete: 'off', spellcheck: 'false',
  });
  let idEdited = editing;
  name.addEventListener('input', () => {
    if (!idEdited) id.value = slugOf(name.value);
  });
  id.addEventListener('input', () => {
    idEdited = id.value.trim() !== '';
    if (!idEdited) id.value = slugOf(name.value);
  });

  const kind = h('select', { testid: 'own-schedule-kind' },
    h('option', { value: 'goal' }, 'Start a goal'),
    h('option', { value: 'pipeline' }, 'Run a pipeline'));
  kind.value = x?.kind === 'pipeline' ? 'pipeline' : 'goal';
  const goal = h('textarea', {
    testid: 'own-schedule-goal', rows: 2, maxlength: 4000, value: x?.kind === 'pipeline' ? '' : x?.what || '',
    placeholder: 'e.g. Post a growth tip for {date}',
  });
  const pipeline = h('select', { testid: 'own-schedule-pipeline' }, h('option', { value: '' }, 'Loading pipelines…'));
  const goalField = field('Goal', goal, ['The goal each run starts; ', h('code', {}, '{date}'), ' becomes the date of the run.']);
  const pipelineField = field('Pipeline', pipeline, 'A pipeline template of this deployment.');
  const showKind = () => {
    goalField.hidden = kind.value !== 'goal';
    pipelineField.hidden = kind.value !== 'pipeline';
  };
  kind.addEventListener('change', showKind);
  showKind();
  loadPipelines().then((names) => {
    const want = x?.kind === 'pipeline' ? x.what : '';
    const all = want && !names.includes(want) ? [...names, want] : names;
    replace(pipeline, all.length
      ? [h('option', { value: '' }, 'Choose a pipeline…'), all.map((n) => h('option', { value: n }, n))]
      : h('option', { value: '' }, 'No pipelines to choose from'));
    pipeline.value = want;
  });

  const preset = h('select', { testid: 'own-schedule-preset', 'aria-label': 'When' },
    CRON_PRESETS.map(([cron, label]) => h('option', { value: cron }, label)),
    h('option', { value: '' }, 'Custom (the cron below)'));
  const cron = h('input', {
    type: 'text', testid: 'own-schedule-cron', class: 'mono', value: x?.cron || CRON_PRESETS[0][0],
    autocomplete: 'off', spellcheck: 'false', placeholder: 'minute hour day-of-month month day-of-week',
  });
  const matchPreset = () => {
    const c = cron.value.trim().replace(/\s+/g, ' ');
    preset.value = CRON_PRESETS.some(([p]) => p === c) ? c : '';
  };
  preset.addEventListener('change', () => {
    if (preset.value) cron.value = preset.value;
    else cron.focus();
  });
  cron.addEventListener('input', matchPreset);
  matchPreset();

  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const zoneList = h('datalist', { id: 'own-schedule-zones' }, zones.map((z) => h('option', { value: z })));
  const timezone = h('input', {
    type: 'text', testid: 'own-schedule-timezone', list: 'own-schedule-zones', value: x?.timezone || browserTimezone(),
    autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. Europe/Berlin',
  });
  const priority = h('select', { testid: 'own-schedule-priority' },
    h('option', { value: '' }, 'Default (P2)'),
    ['P0', 'P1', 'P2', 'P3'].map((p) => h('option', { value: p }, p)));
  priority.value = x?.priority || '';
  const enabled = h('input', { type: 'checkbox', role: 'switch', class: 'switch', testid: 'own-schedule-enabled', checked: x ? x.enabled !== false : true });

  const error = h('div', { class: 'form-error', testid: 'own-schedule-error', role: 'alert' });
  const save = h('button', { class: 'btn primary', type: 'submit', testid: 'own-schedule-save' }, editing ? 'Save schedule' : 'Create schedule');
  const fail = (message, focus) => {
    replace(error, message);
    focus?.focus();
  };
  const form = h('form', {
    class: 'own-schedule-form', testid: 'own-schedule-form', autocomplete: 'off', 'data-editing': editing ? x.id : null,
    onsubmit: handler(async (e) => {
      e.preventDefault();
      replace(error);
      const sid = id.value.trim();
      const b = {
        name: name.value.trim(),
        cron: cron.value.trim().replace(/\s+/g, ' '),
        timezone: timezone.value.trim() || 'UTC',
        priority: priority.value || null,
        enabled: enabled.checked,
      };
      if (!b.name) return fail('Give the schedule a name.', name);
      if (!SCHEDULE_ID.test(sid)) return fail('The id may use only letters, digits, “-”, “_” and “.” (at most 64).', id);
      if (!editing && taken(sid)) return fail(`There is a schedule “${sid}” already: edit it, or give this one another id.`, id);
      if (b.cron.split(' ').length !== 5) return fail('A cron has 5 fields: minute hour day-of-month month day-of-week (e.g. 0 9 * * 1-5).', cron);
      if (kind.value === 'goal') {
        b.goal = goal.value.trim();
        if (!b.goal) return fail('Write the goal each run starts.', goal);
      } else {
        b.pipeline = pipeline.value;
        if (!b.pipeline) return fail('Choose the pipeline each run starts.', pipeline);
      }
      return busy(save, async () => {
        let r;
        try {
          r = await api('PUT', `/schedules/${encodeURIComponent(sid)}`, b, { quiet: true });
        } catch (err) {
          replace(error, errorText(err));
          return;
        }
        onSaved(r);
      });
    }),
  },
  h('h3', {}, editing ? `Edit “${x.name}”` : 'New schedule'),
  h('div', { class: 'row' },
    field('Name', name),
    field('Id', id, editing ? 'A saved schedule keeps its id.' : 'Made from the name unless you change it.')),
  h('div', { class: 'row' }, field('What', kind), h('div', { class: 'grow2' }, goalField, pipelineField)),
  h('div', { class: 'row' },
    field('When', preset),
    field('Cron', cron, 'minute hour day-of-month month day-of-week; at most once an hour.'),
    field('Timezone', timezone, 'An IANA name; fire times follow its clock.'),
    zoneList),
  h('div', { class: 'row' },
    field('Priority', priority, 'P0 is most urgent.'),
    h('label', { class: 'field switch-field' }, h('span', { class: 'field-label' }, 'On'),
      h('span', { class: 'switch-wrap' }, enabled, h('span', { class: 'small muted' }, 'Runs on its cron')))),
  error,
  h('div', { class: 'actions' }, save,
    h('button', { class: 'btn ghost', type: 'button', testid: 'own-schedule-cancel', onclick: onCancel }, 'Cancel')));
  return form;
}

function withUnit(v, unit) {
  if (unit === 'USD') return usd(v);
  if (unit === '%') return `${fmtNum(v)}%`;
  return unit && unit !== 'count' ? `${fmtNum(v)} ${unit}` : fmtNum(v);
}

function fmtNum(v) {
  const n = Number(v);
  return Number.isInteger(n) ? n.toLocaleString() : n.toLocaleString(undefined, { maximumFractionDigits: 2 });
}

/* ---------- Integrations ---------- */

function viewTools(ctx) {
  const use = serverGroup('In use', 'tools-in-use',
    'The deployment\'s servers and the catalogue servers this team connected: agents of the skills listed may call them. Writes and spends wait for approval.',
    'No tool servers in use yet: connect one from the catalogue below.');
  const catalogue = serverGroup('Catalogue: connect with your own credentials', 'tools-catalogue',
    'Servers this team may connect with its own account. The values go to the vault, are never shown again, and are used only for this team\'s goals.',
    'Every catalogue server is connected.');
  const place = (srv, el) => {
    (inUse(srv) ? use : catalogue).add(el);
    use.refresh();
    catalogue.refresh();
  };
  replace(ctx.el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Integrations')),
    h('p', { class: 'muted lead' }, 'Tool servers (MCP) the agents may call, and the ones this team may connect with its own credentials.'),
    can('owner') ? null : h('div', { class: 'callout', testid: 'tools-readonly' },
      `Only an owner connects tools; as ${state.me?.role || 'a non-owner'} you can see and test them.`),
    use.el,
    catalogue.el);
  (async () => {
    let servers;
    try {
      ({ servers = [] } = await api('GET', '/tools'));
    } catch (err) {
      use.fail(err);
      catalogue.fail(err);
      return;
    }
    if (!ctx.alive) return;
    for (const srv of servers) {
      const el = serverCard(srv, { compact: true, onChange: () => place(srv, el) });
      (inUse(srv) ? use : catalogue).add(el);
    }
    use.refresh();
    catalogue.refresh();
  })();
}

/* ---------- Settings ---------- */

const MAX_INSTRUCTIONS = 4000;

/**
 * This workspace's own settings over the deployment's configuration
 * (GET /settings): a tier and extra instructions per skill, schedules and
 * tool servers on or off. Owners change them; every PUT answers the whole
 * settings body, which is drawn again (keeping unsaved edits of other rows).
 */
function viewSettings(ctx) {
  const owner = can('owner');
  const skillsBody = h('div', { class: 'card-body' }, loading('Loading settings…'));
  const schedulesBody = h('div', { class: 'card-body' }, loading());
  const toolsBody = h('div', { class: 'card-body' }, loading());
  const rows = new Map(); // skill name -> {tier, text, server: {tier, instructions}}

  const switchRow = (kind, item, label, note) => {
    const on = !!item.enabled;
    const locked = kind === 'schedule' && item.configured === false;
    const input = h('input', {
      type: 'checkbox', role: 'switch', class: 'switch', testid: `${kind}-toggle-${item.id ?? item.name}`,
      checked: on, disabled: !owner || locked, 'data-enabled': String(on), 'aria-label': `${label} on or off`,
      title: !owner ? 'Only an owner can change settings' : locked ? 'Off in the deployment\'s configuration' : null,
    });
    input.addEventListener('change', handler(async () => {
      const want = input.checked;
      input.disabled = true;
      try {
        const path = kind === 'schedule'
          ? `/settings/schedules/${encodeURIComponent(item.id)}`
          : `/settings/tools/${encodeURIComponent(item.name)}`;
        // A tool server's approval choice is kept when it is turned on or off.
        const body = kind === 'schedule' ? { enabled: want } : { enabled: want, approval: item.approval ?? null };
        const data = await api('PUT', path, body);
        toast(`${label} turned ${want ? 'on' : 'off'}`);
        render(data, { kind, name: item.id ?? item.name });
      } catch (err) {
        input.checked = !want;
        input.disabled = false;
        throw err;
      }
    }));
    return { input, state: h('span', { class: `switch-state ${on ? 'on' : ''}` }, on ? 'on' : 'off'), note };
  };

  const savedMark = (testid) => h('span', { class: 'saved', testid, role: 'status' }, '✓ Saved');

  // Whether a tool server's writes ask a person first, for this team.
  const APPROVALS = { '': 'writes as configured', ask: 'every write asks first', auto: 'writes run unasked (spends still ask)' };
  const approvalSelect = (item) => {
    const sel = h('select', {
      testid: `tool-approval-${item.name}`, class: 'small', disabled: !owner,
      'aria-label': `Approval of ${item.name}'s writes`, title: owner ? null : 'Only an owner can change settings',
    }, Object.entries(APPROVALS).map(([value, text]) => h('option', { value }, text)));
    sel.value = item.approval || '';
    sel.addEventListener('change', handler(async () => {
      const want = sel.value || null;
      sel.disabled = true;
      try {
        const data = await api('PUT', `/settings/tools/${encodeURIComponent(item.name)}`, { enabled: !!item.enabled, approval: want });
        toast(`${item.name}: ${APPROVALS[want || '']}`);
        render(data, { kind: 'tool', name: item.name });
      } catch (err) {
        sel.value = item.approval || '';
        sel.disabled = !owner;
        throw err;
      }
    }));
    return sel;
  };

  const skillRow = (sk, tiers, saved) => {
    const server = { tier: sk.override?.tier || '', instructions: sk.override?.instructions || '' };
    const overridden = !!(server.tier || server.instructions);
    const tier = h('select', {
      testid: `skill-tier-${sk.name}`, disabled: !owner, 'aria-label': `Tier for ${sk.name}`,
    }, h('option', { value: '' }, 'default'), tiers.map((t) => h('option', { value: t }, t)));
    tier.value = server.tier;
    const text = h('textarea', {
      testid: `skill-instructions-${sk.name}`, rows: 2, maxlength: MAX_INSTRUCTIONS, disabled: !owner, readonly: !owner,
      placeholder: owner ? 'e.g. Write in British English. Never promise delivery dates.' : 'No extra instructions', value: server.instructions,
      'aria-label': `Extra instructions for ${sk.name}`,
    });
    const count = h('span', { class: 'counter muted small' });
    const status = h('span', { class: 'row-status' }, saved ? savedMark(`skill-saved-${sk.name}`) : null);
    const save = h('button', {
      class: 'btn small primary', type: 'button', testid: `skill-save-${sk.name}`, disabled: true,
      title: owner ? null : 'Only an owner can change settings',
    }, 'Save');
    const dirty = () => tier.value !== server.tier || text.value.trim() !== server.instructions;
    const changed = () => {
      count.textContent = text.value.length ? `${int(text.value.length)} / ${int(MAX_INSTRUCTIONS)}` : '';
      save.disabled = !owner || !dirty();
      if (dirty()) replace(status);
    };
    tier.addEventListener('change', changed);
    text.addEventListener('input', changed);
    save.addEventListener('click', handler(() => busy(save, async () => {
      const body = {};
      if (tier.value) body.tier = tier.value;
      const t = text.value.trim();
      if (t) body.instructions = t;
      const data = await api('PUT', `/settings/skills/${encodeURIComponent(sk.name)}`, body);
      toast(Object.keys(body).length ? `Saved the settings of ${sk.name}` : `${sk.name} is back to the defaults`);
      render(data, { kind: 'skill', name: sk.name });
    })));
    changed();
    rows.set(sk.name, { tier, text, dirty, changed });
    return h('tr', { testid: `skill-row-${sk.name}` },
      h('td', {}, h('strong', { class: 'mono' }, sk.name),
        h('div', {}, h('span', {
          class: `tag ${overridden ? 'custom-tag' : ''}`, testid: `skill-state-${sk.name}`, 'data-override': String(overridden),
          'data-tier': server.tier, title: overridden ? 'This team overrides the configuration' : 'As configured',
        }, overridden ? 'custom' : 'as configured'))),
      h('td', {}, h('span', { class: 'tag' }, sk.tier ?? '—')),
      h('td', { class: 'tier-cell' }, tier),
      h('td', { class: 'instructions-cell' }, text, count),
      owner ? h('td', { class: 'save-cell' }, save, status) : null);
  };

  const render = (data, saved = null) => {
    if (!ctx.alive) return;
    // Unsaved edits of other rows survive the redraw.
    const drafts = new Map();
    for (const [name, r] of rows) {
      if (!(saved?.kind === 'skill' && saved.name === name) && r.dirty()) drafts.set(name, { tier: r.tier.value, text: r.text.value });
    }
    rows.clear();
    const tiers = data.tiers || [];
    const squads = new Map();
    for (const sk of data.skills || []) {
      if (!squads.has(sk.squad || '')) squads.set(sk.squad || '', []);
      squads.get(sk.squad || '').push(sk);
    }
    replace(skillsBody, squads.size
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table settings-skills', testid: 'skills-table' },
        h('thead', {}, h('tr', {}, ['Skill', 'Default tier', 'Tier', 'Extra instructions for this team', owner ? '' : null].map((x) => (x == null ? null : h('th', {}, x))))),
        [...squads].map(([squad, list]) => h('tbody', { testid: `squad-${squad || 'none'}` },
          h('tr', { class: 'group' }, h('td', { colspan: owner ? 5 : 4 }, squad ? `${squad} squad` : 'No squad')),
          list.map((sk) => skillRow(sk, tiers, saved?.kind === 'skill' && saved.name === sk.name))))))
      : empty('No skills are configured.'));
    for (const [name, d] of drafts) {
      const r = rows.get(name);
      if (!r) continue;
      r.tier.value = d.tier;
      r.text.value = d.text;
      r.changed();
    }

    const switches = (kind, list, label, note) => (list.length
      ? table(['Name', 'On'], list.map((item) => {
        const sw = switchRow(kind, item, label(item), note(item));
        const id = item.id ?? item.name;
        return h('tr', { testid: `${kind}-row-${id}` },
          h('td', {}, h('strong', {}, label(item)),
            h('div', { class: 'muted small' }, item.id && item.name !== item.id ? [h('span', { class: 'mono' }, item.id), ' · '] : null, sw.note)),
          h('td', { class: 'switch-cell' }, h('label', { class: 'switch-wrap' }, sw.input, sw.state),
            saved?.kind === kind && saved.name === id ? savedMark(`${kind}-saved-${id}`) : null));
      }), { cls: 'settings-switches', testid: `${kind}s-table` })
      : empty(`No ${kind}s are configured.`));
    replace(schedulesBody, switches('schedule', data.schedules || [], (x) => x.name || x.id,
      (x) => (x.configured === false ? 'Off in the deployment\'s configuration' : x.enabled ? 'Runs for this team' : 'Does not run for this team')));
    replace(toolsBody, switches('tool', data.tools || [], (x) => x.name,
      (x) => [x.enabled ? 'Agents may call it' : 'Agents of this team do not call it', ' · ', approvalSelect(x)]));
  };

  replace(ctx.el,
    h('div', { class: 'page-head' }, h('h1', {}, 'Settings')),
    h('p', { class: 'muted lead' }, 'This team\'s own settings over the deployment\'s configuration: the model tier and extra instructions of each skill, and which schedules and tool servers run.'),
    owner ? null : h('div', { class: 'callout', testid: 'settings-readonly' },
      `Only an owner can change settings; as ${state.me?.role || 'a non-owner'} you see them read-only.`),
    h('section', { class: 'card', testid: 'settings-skills' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Skills')),
      h('p', { class: 'muted small' }, `A tier overrides the configured model tier for this team; the instructions (up to ${int(MAX_INSTRUCTIONS)} characters) are added to the skill's prompt. Choose “default” and clear the text to go back to the configuration.`),
      skillsBody),
    h('div', { class: 'grid2' },
      h('section', { class: 'card', testid: 'settings-schedules' }, h('div', { class: 'card-head' }, h('h2', {}, 'Schedules')), schedulesBody),
      h('section', { class: 'card', testid: 'settings-tools' }, h('div', { class: 'card-head' }, h('h2', {}, 'Tool servers')), toolsBody)));

  api('GET', '/settings').then((data) => render(data)).catch((err) => {
    if (!ctx.alive) return;
    const msg = h('div', { class: 'empty error-text' }, `Could not load the settings: ${err.message}`);
    replace(skillsBody, msg);
    replace(schedulesBody, msg.cloneNode(true));
    replace(toolsBody, msg.cloneNode(true));
  });
}

/* ---------- API keys ---------- */

const KEY_ROLES = [
  ['viewer', 'viewer — reads everything'],
  ['editor', 'editor — also starts goals and decides approvals'],
  ['owner', 'owner — also budget, settings, tools and keys'],
];

/** The id GET /keys gives a key: the first 16 hex digits of its SHA-256; null when it cannot be worked out here. */
async function keyIdOf(key) {
  if (!key || !crypto.subtle || state.me?.auth !== 'api_key') return null;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key)));
  return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The team's API keys for machines and scripts (owners): the list (never
 * the keys), a form making one (shown once in a secretPanel) and revoking.
 */
function viewKeys(ctx) {
  const head = [
    h('div', { class: 'page-head' }, h('h1', {}, 'API keys')),
    h('p', { class: 'muted lead' }, 'Keys for machines and scripts — CI, a lobby screen, a reporting job — each signing in as this team with its role. The keys themselves are never stored or shown again, only their records.'),
  ];
  if (!can('owner')) {
    replace(ctx.el, head, h('div', { class: 'callout', testid: 'keys-owner-only' },
      `Only an owner manages API keys; as ${state.me?.role || 'a non-owner'}, ask one of your owners for a key.`));
    return;
  }
  const list = h('div', { class: 'card-body' }, loading('Loading keys…'));
  const shown = h('div', { class: 'secret-slot', testid: 'key-created' });
  const load = async () => {
    let keys;
    let mine;
    try {
      ({ keys = [] } = await api('GET', '/keys'));
      mine = await keyIdOf(state.key).catch(() => null);
    } catch (err) {
      if (ctx.alive) replace(list, h('div', { class: 'empty error-text' }, `Could not load the keys: ${err.message}`));
      return;
    }
    if (ctx.alive) replace(list, keysTable(keys, { mine, reload: load }));
  };

  const label = h('input', { type: 'text', testid: 'key-label', maxlength: 80, autocomplete: 'off', placeholder: 'e.g. CI, lobby screen, weekly report' });
  const role = h('select', { testid: 'key-role' }, KEY_ROLES.map(([v, text]) => h('option', { value: v }, text)));
  const error = h('div', { class: 'form-error', testid: 'key-create-error', role: 'alert' });
  const create = h('button', { class: 'btn primary', type: 'submit', testid: 'key-create' }, 'Create key');
  const form = h('form', {
    class: 'key-form', testid: 'key-form', autocomplete: 'off',
    onsubmit: handler(async (e) => {
      e.preventDefault();
      replace(error);
      const text = label.value.trim();
      if (!text) {
        replace(error, 'Give the key a label: who or what will use it.');
        label.focus();
        return;
      }
      await busy(create, async () => {
        let r;
        try {
          r = await api('POST', '/keys', { role: role.value, label: text }, { quiet: true });
        } catch (err) {
          replace(error, err.message, err.code ? h('span', { class: 'muted small' }, ` (${err.code})`) : null);
          return;
        }
        label.value = '';
        replace(shown, secretPanel(r.key, {
          title: `New ${r.role} key “${r.label}”`,
          what: `It signs in as this team with the role ${r.role} until you revoke it.`,
          done: 'I saved it — hide the key',
        }));
        await load();
      });
    }),
  },
  h('div', { class: 'row' },
    field('Label', label, 'Who or what uses it: it names the key in the list and in the record of what it did.'),
    field('Role', role, 'Give it the least it needs.')),
  error,
  h('div', { class: 'actions' }, create));

  replace(ctx.el, ...head,
    h('section', { class: 'card', testid: 'keys-new' },
      h('div', { class: 'card-head' }, h('h2', {}, 'New key')),
      form,
      shown),
    h('section', { class: 'card', testid: 'keys' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Keys')),
      h('p', { class: 'muted small' }, 'Revoking a key refuses it at once; its record stays. Keys the deployment sets (MKTG_API_KEYS) and people who sign in with SSO are not listed.'),
      list));
  load();
}

function keysTable(keys, { mine, reload }) {
  if (!keys.length) return empty('No keys yet.');
  const sorted = [...keys].sort((a, b) => (a.revoked_ms != null) - (b.revoked_ms != null) || b.created_ms - a.created_ms);
  return table(['Label', 'Role', 'Created', 'Status', ''], sorted.map((k) => h('tr', {
    testid: `key-row-${k.id}`, 'data-revoked': String(k.revoked_ms != null), 'data-label': k.label,
  },
  h('td', {}, h('strong', {}, k.label),
    h('div', { class: 'muted small' }, h('span', { class: 'mono' }, k.id),
      k.id === mine ? h('span', { class: 'tag', title: 'The key this tab signed in with' }, 'this tab') : null)),
  h('td', {}, h('span', { class: `role role-${k.role}` }, k.role)),
  h('td', {}, h('span', { title: when(k.created_ms) }, ago(k.created_ms)), h('div', { class: 'muted small' }, 'by ', k.created_by || '—')),
  h('td', { testid: `key-status-${k.id}` }, k.revoked_ms != null
    ? [pill('REVOKED', null, 'small'), h('div', { class: 'muted small', title: when(k.revoked_ms) }, ago(k.revoked_ms))]
    : pill('ACTIVE', null, 'small')),
  h('td', { class: 'save-cell' }, k.revoked_ms != null ? null : revokeButton(k, { mine: k.id === mine, reload })))),
  { testid: 'keys-table', cls: 'keys-table' });
}

/** "Revoke…", then a confirmation: DELETE /keys/{id}. Revoking this tab's own key signs it out. */
function revokeButton(k, { mine, reload }) {
  const slot = h('span', { class: 'disconnect-slot' });
  const ask = () => {
    const yes = h('button', {
      class: 'btn danger small', type: 'button', testid: `key-revoke-confirm-${k.id}`,
      onclick: handler(() => busy(yes, async () => {
        await api('DELETE', `/keys/${encodeURIComponent(k.id)}`);
        toast(`Revoked the key “${k.label}”`);
        if (mine) {
          signOut();
          location.hash = '#/signin';
          return;
        }
        await reload();
      })),
    }, 'Revoke');
    replace(slot, h('span', { class: 'inline-form' },
      h('span', { class: 'small muted' }, mine ? 'This tab signed in with it: you will be signed out.' : 'Anything using it is refused at once.'),
      yes,
      h('button', { class: 'btn ghost small', type: 'button', onclick: show }, 'Keep')));
  };
  const show = () => replace(slot, h('button', { class: 'btn danger small', type: 'button', testid: `key-revoke-${k.id}`, onclick: ask }, 'Revoke…'));
  show();
  return slot;
}

/* ------------------------------------------------------------------ */
/* Router and chrome                                                    */
/* ------------------------------------------------------------------ */

const NAV = [
  ['goals', 'Goals'],
  ['approvals', 'Approvals'],
  ['cost', 'Cost & budget'],
  ['learnings', 'Learnings'],
  ['schedules', 'Schedules & events'],
  ['tools', 'Integrations'],
  ['settings', 'Settings'],
  ['keys', 'API keys', 'owner'], // [name, label, the role that sees it]
  ['onboarding', 'Onboarding'],
];

const ROUTES = [
  [/^#\/signin$/, viewSignIn, 'Sign in', 'signin'],
  [/^#\/onboarding(?:\/(\d))?$/, viewOnboarding, 'Onboarding', 'onboarding'],
  [/^#\/goals$/, viewGoals, 'Goals', 'goals'],
  [/^#\/goals\/([^/]+)$/, viewGoal, 'Goal', 'goals'],
  [/^#\/approvals$/, viewApprovals, 'Approvals', 'approvals'],
  [/^#\/cost$/, viewCost, 'Cost & budget', 'cost'],
  [/^#\/learnings$/, viewLearnings, 'Learnings', 'learnings'],
  [/^#\/schedules$/, viewSchedules, 'Schedules & events', 'schedules'],
  [/^#\/tools$/, viewTools, 'Integrations', 'tools'],
  [/^#\/settings$/, viewSettings, 'Settings', 'settings'],
  [/^#\/keys$/, viewKeys, 'API keys', 'keys'],
];

function renderChrome(active) {
  const signedIn = !!state.me;
  const items = signedIn ? NAV.filter(([, , role]) => !role || can(role)) : [['signin', 'Sign in']];
  replace($('#nav'), items.map(([name, label]) => h('a', {
    href: `#/${name}`, testid: `nav-${name}`, class: `nav-item ${name === active ? 'active' : ''}`,
    'aria-current': name === active ? 'page' : null,
  }, icon(name), h('span', {}, label))));
  const who = $('#whoami');
  who.hidden = !signedIn;
  who.dataset.auth = signedIn ? state.me.auth || '' : '';
  replace(who, signedIn ? [
    h('span', { class: 'tenant', testid: 'whoami-tenant' }, state.me.tenant),
    h('span', { class: `role role-${state.me.role}`, testid: 'whoami-role' }, state.me.role),
    state.me.auth === 'oidc' ? h('span', { class: 'via', testid: 'whoami-sso', title: 'Signed in through your company\'s sign-in provider (OpenID Connect)' }, 'signed in with SSO') : null,
  ] : null);
  $('#sign-out').hidden = !signedIn;
}

let current = null; // {leave: [fns], alive}

function route() {
  const hash = location.hash || '#/goals';
  if (current) {
    current.alive = false;
    for (const fn of current.leave) {
      try {
        fn();
      } catch (err) {
        console.error(err);
      }
    }
  }
  clearBanners();
  if (!state.me && hash !== '#/signin') {
    pendingNext = hash;
    location.replace('#/signin');
    return;
  }
  if (state.me && hash === '#/signin') {
    location.replace('#/goals');
    return;
  }
  while (flashes.length) report(flashes.shift());
  const found = ROUTES.map(([re, view, title, nav]) => ({ m: re.exec(hash), view, title, nav })).find((r) => r.m);
  const el = h('div', { class: 'page' });
  const ctx = {
    el,
    leave: [],
    alive: true,
    next: pendingNext,
    onLeave(fn) {
      this.leave.push(fn);
    },
  };
  current = ctx;
  replace($('#view'), el);
  if (!found) {
    renderChrome(null);
    replace($('#crumbs'), 'Not found');
    replace(el, card(null, empty(`No page at ${hash}.`), h('a', { href: '#/goals' }, 'Go to goals')));
    return;
  }
  renderChrome(found.nav);
  replace($('#crumbs'), found.title);
  document.title = `${found.title} — mktg`;
  try {
    found.view(ctx, ...found.m.slice(1));
  } catch (err) {
    report(err);
  }
}

let pendingNext = null;

async function health() {
  const el = $('#health');
  try {
    const r = await api('GET', '/health', undefined, { quiet: true, auth: false });
    el.dataset.state = r.status === 'ok' ? 'ok' : 'bad';
    replace($('.health-text', el), r.status === 'ok' ? 'API healthy' : `API ${r.status}`);
  } catch (err) {
    el.dataset.state = 'bad';
    replace($('.health-text', el), err.status ? `API error ${err.status}` : 'API unreachable');
  }
}

async function boot() {
  $('#sign-out').addEventListener('click', (e) => {
    e.preventDefault();
    signOut();
    location.hash = '#/signin';
  });
  health();
  setInterval(health, 30000);
  // An SSO sign-in is renewed before its ID token expires, even while idle.
  setInterval(() => {
    if (state.me && state.refresh) keepSignedIn().catch(() => {});
  }, REFRESH_CHECK_MS);
  // Back from the sign-in provider, or a one-click #key= link.
  const landed = await signInFromUrl();
  if (landed !== null) {
    const next = landed && !/^#\/(signin)?$/.test(landed) ? landed : null;
    const to = (await needsOnboarding()) ? '#/onboarding' : (next || '#/goals');
    history.replaceState(null, '', `${location.pathname}${location.search}${to}`);
  } else if (state.key && !state.me) {
    try {
      await signIn(state.key, { refresh: state.refresh });
      if (!location.hash || location.hash === '#/' || location.hash === '#/signin') {
        // Without a hashchange: route() below draws the page once.
        const to = (await needsOnboarding()) ? '#/onboarding' : '#/goals';
        history.replaceState(null, '', `${location.pathname}${location.search}${to}`);
      }
    } catch (err) {
      if (err.status !== 401 && err.status !== 403) report(err);
    }
  }
  window.addEventListener('hashchange', route);
  booted = true;
  route();
}

boot();
