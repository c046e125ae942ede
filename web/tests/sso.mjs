// A browser walk through the dashboard's single sign-on (OpenID Connect,
// authorization code with PKCE) against the mock provider tests/mock-idp.mjs:
// the sign-in page offers SSO, a return with the wrong state and a code with
// the wrong PKCE verifier are refused with a reason, then a real sign-in
// comes back signed in as the token's tenant with role EDITOR and
// auth "oidc", Settings is read-only for that editor, and the dashboard
// refreshes the sign-in (grant_type=refresh_token) before the ID token
// expires, staying signed in (the mock started with MOCK_IDP_TTL_SECS=75
// makes that happen within the walk). When sign-up is
// open (GET /auth/config says signup: true), a person whose token names no
// tenant (the mock's login_hint=no-tenant:<name>) is offered "Create your
// organisation", creates one and is signed in with SSO as its owner.
// Optionally (with MKTG_WEB_KEY) a one-click #key= link signs in too.
// Run: node web/tests/sso.mjs
//
// Env: MKTG_WEB_URL (the API/dashboard, started with MKTG_OIDC_ISSUER,
// MKTG_OIDC_AUDIENCE=mktg-dashboard, MKTG_OIDC_JWKS_URL,
// MKTG_OIDC_AUTHORIZE_URL and MKTG_OIDC_TOKEN_URL naming the mock),
// MOCK_IDP_TENANT (the tenant the mock puts in its tokens; default
// sso-tenant), MKTG_SCREENSHOTS (directory, created), CHROMIUM (default
// /usr/bin/chromium), MKTG_WEB_KEY (optional: an API key for the #key= step).
// Exit 0 when every step passed; 1 with what was expected and what the page
// showed (and sso-failure.png) otherwise; 2 when the environment is incomplete.

import { createHash, randomBytes } from 'node:crypto';
import { Failure, harness, sleep, watch } from './harness.mjs';

const BASE = (process.env.MKTG_WEB_URL || '').replace(/\/+$/, '');
const TENANT = process.env.MOCK_IDP_TENANT || 'sso-tenant';
const KEY = process.env.MKTG_WEB_KEY || '';
const SHOTS = process.env.MKTG_SCREENSHOTS || 'web-walk-screenshots';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Whether the API lets a person in no tenant create one (MKTG_SIGNUP=open).
const SIGNUP = BASE ? await fetch(`${BASE}/auth/config`).then((r) => r.json()).then((c) => c?.signup === true).catch(() => false) : false;
const TOTAL = 6 + (SIGNUP ? 2 : 0) + (KEY ? 1 : 0);
// How long the walk waits for the dashboard to refresh the ID token: with
// MOCK_IDP_TTL_SECS=75 it has under a minute left ~15 s after sign-in.
const REFRESH_WAIT_MS = 40_000;
// The person in no tenant, and the organisation they create.
const NEWCOMER = `walk-${randomBytes(4).toString('hex')}`;
const NEW_ORG = `Solo Studio ${randomBytes(3).toString('hex')}`;

if (!BASE) {
  console.error('sso: set MKTG_WEB_URL (the API/dashboard URL, started with the MKTG_OIDC_* variables naming the mock provider)');
  process.exit(2);
}

// Failed requests count whether they go to the API or the provider; a step
// that provokes an error on purpose names the ones it expects (t.expected).
const t = harness({
  tag: 'sso', total: TOTAL, shots: SHOTS, prefix: 'sso-', failureShot: 'sso-failure.png', minutes: 4, chromiumPath: CHROMIUM,
  problemsAre: 'no page errors, console errors or failed requests', header: true,
});
const { step, visible, waitFor } = t;
let browser;
let context;
let page;
let oidc = null; // GET /auth/config's oidc
let signedInToken = ''; // the ID token the sign-in stored

/** A JWT's claims (not verified: the API does that). */
const claimsOf = (token) => {
  try {
    return JSON.parse(Buffer.from(String(token).split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
};

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A fresh browser context (its own sessionStorage) with the problem listeners. */
async function freshPage() {
  await context?.close();
  context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  page = await context.newPage();
  t.page = page;
  page.setDefaultTimeout(15_000);
  t.problems = [];
  t.expected = () => false;
  watch(t, page);
}

async function errorBanner(what, pattern) {
  const b = await visible(page.getByTestId('error-banner'), `an error banner (${what})`);
  const text = (await b.innerText()).replace(/\s+/g, ' ');
  if (!pattern.test(text)) throw new Failure(`the error banner to give the reason (${pattern})`, text);
  return text;
}

async function noQueryLeft() {
  await waitFor(() => !location.search, null, 'the ?code=&state= to be removed from the address');
}

async function main() {
  browser = await t.launch();

  await step('the sign-in page offers "Sign in with SSO"', async () => {
    const res = await fetch(`${BASE}/auth/config`).catch((e) => {
      throw new Failure(`GET ${BASE}/auth/config to answer`, e.message);
    });
    const cfg = await res.json().catch(() => null);
    oidc = cfg?.oidc;
    if (!oidc?.authorize_url || !oidc?.token_url) {
      throw new Failure('GET /auth/config to name an authorize_url and a token_url (start the API with MKTG_OIDC_ISSUER, '
        + 'MKTG_OIDC_AUDIENCE, MKTG_OIDC_JWKS_URL, MKTG_OIDC_AUTHORIZE_URL and MKTG_OIDC_TOKEN_URL)', JSON.stringify(cfg));
    }
    console.log(`sso:   provider ${oidc.issuer}, client ${oidc.client_id}, scopes "${oidc.scopes}"`);
    await freshPage();
    await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    await visible(page.getByTestId('key-input'), 'the API key field');
    await visible(page.getByTestId('sso-sign-in'), 'the "Sign in with SSO" button');
  });

  await step('a return with the wrong state is refused', async () => {
    // As if this tab had started a sign-in, and an answer to another came back.
    await page.evaluate((verifier) => {
      sessionStorage.setItem('mktg.sso', JSON.stringify({ state: 'the-state-this-tab-sent', verifier, next: null })); // app.js's SSO_STORE
    }, b64url(randomBytes(32)));
    await page.goto(`${BASE}/?code=forged-code&state=forged-state`, { waitUntil: 'domcontentloaded' });
    const text = await errorBanner('state mismatch', /state/i);
    await noQueryLeft();
    await visible(page.getByTestId('key-input'), 'the sign-in page');
    if (await page.getByTestId('whoami').isVisible()) throw new Failure('not to be signed in', await page.getByTestId('whoami').innerText());
    console.log(`sso:   ${text.replace(/^!\s*/, '').replace(/\s*×\s*$/, '')}`);
  });

  await step('a code with the wrong PKCE verifier is refused by the token endpoint', async () => {
    // The tab holds one verifier; the provider is asked with the challenge of
    // another, as if the code had been stolen: the token endpoint says 400.
    const stateValue = b64url(randomBytes(16));
    const other = b64url(randomBytes(32));
    await page.evaluate(([st, verifier]) => {
      sessionStorage.setItem('mktg.sso', JSON.stringify({ state: st, verifier, next: null })); // app.js's SSO_STORE
    }, [stateValue, b64url(randomBytes(32))]);
    const url = new URL(oidc.authorize_url);
    for (const [k, v] of Object.entries({
      response_type: 'code', client_id: oidc.client_id, redirect_uri: `${new URL(BASE).origin}/`, scope: oidc.scopes,
      state: stateValue, code_challenge: b64url(createHash('sha256').update(other).digest()), code_challenge_method: 'S256',
    })) url.searchParams.set(k, v);
    const tokenUrl = new URL(oidc.token_url);
    t.expected = (p) => (p.status === 400 && p.url === `${tokenUrl.origin}${tokenUrl.pathname}`)
      || (p.console && /Failed to load resource.*\b400\b/.test(p.text) && p.url.startsWith(tokenUrl.origin));
    await page.goto(url.href, { waitUntil: 'domcontentloaded' });
    const text = await errorBanner('the token endpoint refused the code', /invalid_grant/);
    await noQueryLeft();
    await visible(page.getByTestId('key-input'), 'the sign-in page');
    await sleep(300);
    console.log(`sso:   ${text.replace(/^!\s*/, '').replace(/\s*×\s*$/, '')}`);
  });

  await step('signed in with SSO', async () => {
    await freshPage();
    await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    await (await visible(page.getByTestId('sso-sign-in'), 'the "Sign in with SSO" button')).click();
    // To the provider and straight back to the dashboard's root.
    await waitFor((base) => location.href.startsWith(base) && !location.search && /^#\/./.test(location.hash)
      && document.querySelector('[data-testid=whoami]:not([hidden])'),
    BASE, 'to come back from the provider signed in (the header showing a tenant) on a page, with the code gone from the address', 30_000);
    const who = await page.evaluate(() => ({
      tenant: document.querySelector('[data-testid=whoami-tenant]')?.textContent.trim(),
      role: document.querySelector('[data-testid=whoami-role]')?.innerText.trim(),
      sso: document.querySelector('[data-testid=whoami-sso]')?.textContent.trim() || '',
      auth: document.querySelector('[data-testid=whoami]')?.dataset.auth,
      header: document.querySelector('[data-testid=whoami]')?.innerText.replace(/\s+/g, ' ').trim(),
      url: location.href,
    }));
    if (who.tenant !== TENANT) throw new Failure(`the header to show the token's tenant "${TENANT}"`, who.header);
    if (who.role !== 'EDITOR') throw new Failure('the header to show the role EDITOR (from cognito:groups)', who.header);
    if (!/signed in with SSO/i.test(who.sso)) throw new Failure('the header to say "signed in with SSO"', who.header);
    if (who.auth !== 'oidc') throw new Failure('the header to carry GET /me\'s auth "oidc"', `data-auth="${who.auth}"`);
    // And the API itself, asked with the bearer the tab now holds.
    const me = await page.evaluate(async () => {
      const token = sessionStorage.getItem('mktg.key') || '';
      const r = await fetch('/me', { headers: { Authorization: `Bearer ${token}` } });
      return {
        status: r.status, body: await r.json().catch(() => null), parts: token.split('.').length, sso: sessionStorage.getItem('mktg.sso'), token,
      };
    });
    signedInToken = me.token;
    if (me.status !== 200 || me.body?.auth !== 'oidc' || me.body?.tenant !== TENANT || me.body?.role !== 'editor') {
      throw new Failure(`GET /me with the stored ID token to say {tenant: "${TENANT}", role: "editor", auth: "oidc"}`, `HTTP ${me.status} ${JSON.stringify(me.body)}`);
    }
    if (me.parts !== 3) throw new Failure('the stored bearer to be the ID token (a JWT)', `${me.parts} dot-separated parts`);
    if (me.sso !== null) throw new Failure('the PKCE verifier and state to be gone from sessionStorage', me.sso);
    await sleep(300);
    const banners = await page.getByTestId('error-banner').allInnerTexts();
    if (banners.length) throw new Failure('no error banner after the sign-in', banners.join('\n'));
    console.log(`sso:   ${who.header}; GET /me ${JSON.stringify(me.body)}; landed on ${new URL(who.url).hash}`);
  }, 'sso-signed-in.png');

  await step('settings are read-only for an editor', async () => {
    await page.getByTestId('nav-settings').click();
    await waitFor(() => location.hash === '#/settings', null, 'the URL to become #/settings');
    await visible(page.getByTestId('skills-table'), 'the skills table');
    await visible(page.getByTestId('settings-readonly'), 'the note that only an owner can change settings');
    await waitFor(() => !document.querySelector('#view [data-testid=loading]'), null, 'the settings to finish loading', 20_000);
    const ro = await page.evaluate(() => {
      const all = (sel) => [...document.querySelectorAll(sel)];
      const editable = (el) => !el.disabled && !el.readOnly;
      return {
        tiers: all('[data-testid^="skill-tier-"]').length,
        texts: all('[data-testid^="skill-instructions-"]').length,
        saves: all('[data-testid^="skill-save-"]').length,
        toggles: all('[data-testid^="schedule-toggle-"], [data-testid^="tool-toggle-"]').length,
        editable: [
          ...all('[data-testid^="skill-tier-"], [data-testid^="skill-instructions-"]').filter(editable),
          ...all('[data-testid^="skill-save-"], [data-testid^="schedule-toggle-"], [data-testid^="tool-toggle-"]').filter((el) => !el.disabled),
        ].map((el) => el.dataset.testid),
      };
    });
    if (!ro.tiers || !ro.texts) throw new Failure('skill tier selects and instruction boxes on the settings page', JSON.stringify(ro));
    if (ro.editable.length) throw new Failure('every settings control to be read-only for an editor', `editable: ${ro.editable.join(', ')}`);
    const copy = page.getByTestId('skill-tier-copywriting');
    if (await copy.count() && !(await copy.isDisabled())) throw new Failure('the copywriting tier select to be disabled', 'it is enabled');
    const banners = await page.getByTestId('error-banner').allInnerTexts();
    if (banners.length) throw new Failure('no error banner on the settings page', banners.join('\n'));
    console.log(`sso:   ${ro.tiers} skills, ${ro.toggles} toggles, all read-only`);
  });

  await step('the sign-in is refreshed before the ID token expires, still signed in', async () => {
    const first = claimsOf(signedInToken);
    if (!first?.exp) throw new Failure('the ID token stored at sign-in to carry an exp', signedInToken.slice(0, 40));
    const kept = await page.evaluate(() => sessionStorage.getItem('mktg.refresh'));
    if (!kept) throw new Failure('the refresh token from the token endpoint kept beside the ID token (sessionStorage mktg.refresh)', 'none');
    const left = first.exp * 1000 - Date.now();
    if (left > 60_000 + REFRESH_WAIT_MS) {
      console.log(`sso:   the provider's ID tokens live ${first.exp - first.iat} s: not waiting for a refresh (start the mock with MOCK_IDP_TTL_SECS=75 to see one)`);
      return;
    }
    await waitFor((old) => {
      const now = sessionStorage.getItem('mktg.key');
      return now && now !== old && now.split('.').length === 3;
    }, signedInToken, `the dashboard to store a new ID token before the one from the sign-in (exp in ${Math.round(left / 1000)} s) has under a minute left`, REFRESH_WAIT_MS);
    const now = await page.evaluate(() => ({ token: sessionStorage.getItem('mktg.key'), refresh: sessionStorage.getItem('mktg.refresh') }));
    const fresh = claimsOf(now.token);
    if (fresh?.sub !== first.sub || fresh?.['custom:tenant'] !== first['custom:tenant']) {
      throw new Failure('the refreshed ID token to name the same person and tenant', JSON.stringify({ before: first, after: fresh }));
    }
    if (!(fresh.exp > first.exp)) throw new Failure('the refreshed ID token to expire later', `exp ${first.exp} then ${fresh.exp}`);
    if (!now.refresh) throw new Failure('a refresh token still kept after the refresh', 'none');
    const stats = await fetch(new URL('/stats', oidc.token_url)).then((r) => r.json()).catch((e) => ({ error: e.message }));
    if (!(stats.refreshes >= 1)) throw new Failure('the provider to have answered at least one refresh grant (GET /stats)', JSON.stringify(stats));
    // Still signed in: an API-backed page loads with the new token.
    await page.getByTestId('nav-goals').click();
    await waitFor(() => location.hash === '#/goals', null, 'the URL to become #/goals');
    await visible(page.getByTestId('goals-table'), 'the goals table');
    await waitFor(() => !document.querySelector('#view [data-testid=loading]'), null, 'the goals to finish loading', 20_000);
    const after = await page.evaluate(async () => {
      const r = await fetch('/me', { headers: { Authorization: `Bearer ${sessionStorage.getItem('mktg.key') || ''}` } });
      return {
        status: r.status, body: await r.json().catch(() => null), hash: location.hash,
        signedIn: !!document.querySelector('[data-testid=whoami]:not([hidden])'),
        banners: [...document.querySelectorAll('[data-testid=error-banner]')].map((b) => b.innerText),
      };
    });
    if (!after.signedIn || after.hash === '#/signin') throw new Failure('to stay signed in after the refresh', `at ${after.hash}, header ${after.signedIn ? 'shown' : 'hidden'}`);
    if (after.banners.length) throw new Failure('no error banner after the refresh', after.banners.join('\n'));
    if (after.status !== 200 || after.body?.auth !== 'oidc' || after.body?.tenant !== TENANT) {
      throw new Failure(`GET /me with the refreshed ID token to say {tenant: "${TENANT}", auth: "oidc"}`, `HTTP ${after.status} ${JSON.stringify(after.body)}`);
    }
    console.log(`sso:   ID token refreshed ${fresh.iat - first.iat} s after sign-in (it had ${first.exp - first.iat} s to live; `
      + `new exp +${fresh.exp - first.exp} s), refresh token ${now.refresh === kept ? 'kept' : 'rotated'}; provider refreshes: ${stats.refreshes}; goals page loaded`);
  });

  if (SIGNUP) {
    await step('a person in no organisation is offered to create one', async () => {
      await freshPage();
      // The dashboard's own authorize request, with the mock's hint for a
      // token that names no tenant (a new person each run).
      await page.route(`${new URL(oidc.authorize_url).origin}/authorize?**`, (route) => {
        const url = new URL(route.request().url());
        url.searchParams.set('login_hint', `no-tenant:${NEWCOMER}`);
        return route.continue({ url: url.href });
      });
      // GET /me answers 401 no_tenant: expected, the page turns it into the offer.
      t.expected = (p) => (p.status === 401 && p.url === `${BASE}/me`)
        || (p.console && /Failed to load resource.*\b401\b/.test(p.text) && p.url.startsWith(BASE));
      await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
      await (await visible(page.getByTestId('sso-sign-in'), 'the "Sign in with SSO" button')).click();
      await visible(page.getByTestId('no-tenant'), 'the "Create your organisation" panel after coming back from the provider', 30_000);
      await noQueryLeft();
      const got = await page.evaluate(() => ({
        who: document.querySelector('[data-testid=no-tenant-who]')?.textContent.trim(),
        text: document.querySelector('[data-testid=no-tenant]')?.innerText.replace(/\s+/g, ' ').trim(),
        signedIn: !!document.querySelector('[data-testid=whoami]:not([hidden])'),
        stored: sessionStorage.getItem('mktg.key'),
      }));
      if (got.who !== `${NEWCOMER}@example.com`) throw new Failure(`the panel to name the person signed in (${NEWCOMER}@example.com)`, got.text);
      if (!/belong to no organisation/i.test(got.text)) throw new Failure('the panel to say they belong to no organisation yet', got.text);
      if (got.signedIn) throw new Failure('not to be signed in to any tenant yet', 'the header shows one');
      if (got.stored) throw new Failure('no bearer kept as the session before an organisation exists', 'sessionStorage mktg.key is set');
      await visible(page.getByTestId('signup-name'), 'the organisation name field');
      await sleep(300);
      const banners = await page.getByTestId('error-banner').allInnerTexts();
      if (banners.length) throw new Failure('no error banner: the offer, not a dead end', banners.join('\n'));
      console.log(`sso:   ${got.text.replace(/ Organisation name.*$/, '')}`);
    });

    await step('their organisation created: signed in with SSO as its OWNER', async () => {
      t.problems = t.problems.filter((p) => !t.expected(p)); // the 401 before it existed
      t.expected = () => false;
      await page.getByTestId('signup-name').fill(NEW_ORG);
      const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url() === `${BASE}/signup`);
      await page.getByTestId('signup-create').click();
      const res = await answer;
      const body = await res.json().catch(() => null);
      if (res.status() !== 201 || !body?.tenant?.startsWith('solo-studio-') || body.role !== 'owner' || body.key) {
        throw new Failure('POST /signup with the ID token to answer 201 {tenant: "solo-studio-…", role: "owner"} and no key', `HTTP ${res.status()} ${JSON.stringify(body)}`);
      }
      await visible(page.locator('[data-testid=wizard-step][data-step="1"]'), 'onboarding step 1 for the new organisation');
      await waitFor(() => location.hash === '#/onboarding', null, 'the URL to become #/onboarding');
      const who = await page.evaluate(() => ({
        tenant: document.querySelector('[data-testid=whoami-tenant]')?.textContent.trim(),
        role: document.querySelector('[data-testid=whoami-role]')?.innerText.trim(),
        auth: document.querySelector('[data-testid=whoami]')?.dataset.auth,
        header: document.querySelector('[data-testid=whoami]')?.innerText.replace(/\s+/g, ' ').trim(),
      }));
      if (who.tenant !== body.tenant || who.role !== 'OWNER' || who.auth !== 'oidc') {
        throw new Failure(`the header to show ${body.tenant}, OWNER, signed in with SSO`, `${who.header} (auth ${who.auth})`);
      }
      const me = await page.evaluate(async () => {
        const r = await fetch('/me', { headers: { Authorization: `Bearer ${sessionStorage.getItem('mktg.key') || ''}` } });
        return { status: r.status, body: await r.json().catch(() => null) };
      });
      if (me.status !== 200 || me.body?.tenant !== body.tenant || me.body?.role !== 'owner' || me.body?.auth !== 'oidc') {
        throw new Failure(`GET /me with the stored ID token to say {tenant: "${body.tenant}", role: "owner", auth: "oidc"}`, `HTTP ${me.status} ${JSON.stringify(me.body)}`);
      }
      await sleep(300);
      const banners = await page.getByTestId('error-banner').allInnerTexts();
      if (banners.length) throw new Failure('no error banner after creating the organisation', banners.join('\n'));
      console.log(`sso:   ${who.header}; GET /me ${JSON.stringify(me.body)}`);
    }, 'sso-new-organisation.png');
  }

  if (KEY) {
    await step('a one-click #key= link signs in', async () => {
      await freshPage();
      await page.goto(`${BASE}/#key=${encodeURIComponent(KEY)}`, { waitUntil: 'domcontentloaded' });
      await waitFor(() => document.querySelector('[data-testid=whoami]:not([hidden])') && /^#\/./.test(location.hash),
        null, 'to be signed in on a page, with the key taken out of the address');
      const got = await page.evaluate(() => ({
        header: document.querySelector('[data-testid=whoami]')?.innerText.replace(/\s+/g, ' ').trim(),
        auth: document.querySelector('[data-testid=whoami]')?.dataset.auth,
        url: location.href,
      }));
      if (got.url.includes(KEY)) throw new Failure('the key to be gone from the address', got.url);
      if (got.auth !== 'api_key') throw new Failure('GET /me to say auth "api_key"', `data-auth="${got.auth}"`);
      console.log(`sso:   ${got.header}, at ${new URL(got.url).hash}`);
    });
  }

  console.log(`sso: passed, ${TOTAL} steps; screenshots in ${SHOTS} (sso-signed-in.png)`);
}

await t.run(main);
