// A browser walk through self-serve sign-up and API keys: a fresh visitor
// creates an organisation from the sign-in page, is shown its first owner
// key once, continues into onboarding as the owner of the new tenant; makes
// a viewer key for a lobby screen (shown once, then nowhere in the page),
// revokes it (the API refuses it at once); signs out and back in with the
// owner key from sign-up. Run: node web/tests/signup.mjs
//
// Env: MKTG_WEB_URL (the API/dashboard, started with MKTG_SIGNUP=open),
// MKTG_SCREENSHOTS (directory, created), CHROMIUM (default
// /usr/bin/chromium). The steps, screenshots and failure report are
// tests/harness.mjs's.
// Exit 0 when every step passed; 1 with what was expected and what the page
// showed (and signup-failure.png) otherwise; 2 when the environment is
// incomplete.

import { randomBytes } from 'node:crypto';
import { Failure, harness, sleep, watch } from './harness.mjs';

const BASE = (process.env.MKTG_WEB_URL || '').replace(/\/+$/, '');
const SHOTS = process.env.MKTG_SCREENSHOTS || 'web-walk-screenshots';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOTAL = 7;
const ORG = `Walk Labs ${randomBytes(3).toString('hex')}`;
const LABEL = 'lobby screen';

if (!BASE) {
  console.error('signup: set MKTG_WEB_URL (the API/dashboard URL, started with MKTG_SIGNUP=open)');
  process.exit(2);
}

const t = harness({
  tag: 'signup', total: TOTAL, shots: SHOTS, prefix: 'signup-', failureShot: 'signup-failure.png', minutes: 3,
  chromiumPath: CHROMIUM, header: true,
});
const { step, visible, waitFor } = t;
let page;
let ownerKey = '';
let tenant = '';
let lobbyKey = '';
let lobbyId = '';

const oneLine = (text) => text.replace(/\s+/g, ' ').trim();

async function header() {
  return page.evaluate(() => ({
    tenant: document.querySelector('[data-testid=whoami-tenant]')?.textContent.trim() || '',
    role: document.querySelector('[data-testid=whoami-role]')?.innerText.trim() || '',
    auth: document.querySelector('[data-testid=whoami]')?.dataset.auth || '',
    text: document.querySelector('[data-testid=whoami]')?.innerText.replace(/\s+/g, ' ').trim() || '',
  }));
}

async function noErrorBanner(where) {
  const banners = await page.getByTestId('error-banner').allInnerTexts();
  if (banners.length) throw new Failure(`no error banner ${where}`, banners.join('\n'));
}

/** Where a value shows in the page: its text, a field's value, the markup. */
function leaks(value) {
  return page.evaluate((v) => ({
    text: document.body.innerText.includes(v),
    fields: [...document.querySelectorAll('input, textarea, select')].filter((el) => String(el.value).includes(v))
      .map((el) => el.dataset.testid || el.name || el.type),
    markup: document.documentElement.outerHTML.includes(v),
  }), value);
}

/** Reads the one-time key panel: the key, the warning; checks Copy puts the key on the clipboard. */
async function readKeyPanel(what) {
  await visible(page.getByTestId('new-key-panel'), `the one-time key panel (${what})`);
  const got = await page.evaluate(() => ({
    key: document.querySelector('[data-testid=new-key]')?.value || '',
    readOnly: document.querySelector('[data-testid=new-key]')?.readOnly,
    warning: document.querySelector('[data-testid=new-key-warning]')?.innerText || '',
  }));
  if (!/^mk_[A-Za-z0-9]{20,}$/.test(got.key)) throw new Failure(`the ${what} in the panel (mk_…)`, JSON.stringify(got.key));
  if (!got.readOnly) throw new Failure(`the ${what}'s field to be read-only`, 'it is editable');
  if (!/shown once/i.test(got.warning) || !/keep it/i.test(got.warning)) {
    throw new Failure('the panel to warn that the key is shown once and to keep it', got.warning);
  }
  await page.getByTestId('new-key-copy').click();
  await waitFor(() => /copied/i.test(document.querySelector('[data-testid=new-key-copied]')?.textContent || ''), null,
    'the panel to say "Copied" after Copy');
  const clip = await page.evaluate(() => navigator.clipboard.readText().catch((e) => `(unreadable: ${e.message})`));
  if (clip !== got.key) throw new Failure(`Copy to put the ${what} on the clipboard`, clip.startsWith('(') ? clip : 'the clipboard holds something else');
  return got.key;
}

async function main() {
  const browser = await t.launch();

  await step('the sign-in page offers "Create an organisation"', async () => {
    const cfg = await fetch(`${BASE}/auth/config`).then((r) => r.json()).catch((e) => ({ error: e.message }));
    if (cfg?.signup !== true) throw new Failure('GET /auth/config to say signup: true (start the API with MKTG_SIGNUP=open)', JSON.stringify(cfg));
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(BASE).origin });
    page = await context.newPage();
    t.page = page;
    page.setDefaultTimeout(15_000);
    watch(t, page, { only: BASE });
    await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
    await visible(page.getByTestId('key-input'), 'the API key field');
    await visible(page.getByTestId('signup'), 'the "Create an organisation" card');
    await visible(page.getByTestId('signup-name'), 'the organisation name field');
  });

  await step('an organisation created, its owner key shown once', async () => {
    await page.getByTestId('signup-name').fill(ORG);
    const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url() === `${BASE}/signup`);
    await page.getByTestId('signup-create').click();
    const res = await answer;
    const body = await res.json().catch(() => null);
    if (res.status() !== 201 || !body?.tenant || body.role !== 'owner' || !body.key) {
      throw new Failure('POST /signup to answer 201 {tenant, name, role: "owner", key}', `HTTP ${res.status()} ${JSON.stringify(body)}`);
    }
    ownerKey = await readKeyPanel('owner key');
    if (ownerKey !== body.key) throw new Failure('the panel to show the key POST /signup answered', 'another value');
    tenant = oneLine(await page.getByTestId('signup-tenant').innerText());
    if (tenant !== body.tenant || !tenant.startsWith('walk-labs-')) {
      throw new Failure(`the new tenant's id (walk-labs-…, as POST /signup said: ${body.tenant}) on the page`, tenant);
    }
    if (await page.getByTestId('whoami').isVisible()) throw new Failure('not to be signed in before "continue"', await page.getByTestId('whoami').innerText());
    console.log(`signup:   "${ORG}": tenant ${tenant}, owner key ${ownerKey.slice(0, 6)}… (copied)`);
  });

  await step('continued into onboarding as the OWNER of the new tenant', async () => {
    await page.getByTestId('new-key-done').click();
    await visible(page.locator('[data-testid=wizard-step][data-step="1"]'), 'onboarding step 1 (a new tenant has no product context)');
    await waitFor(() => location.hash === '#/onboarding', null, 'the URL to become #/onboarding');
    const who = await header();
    if (who.tenant !== tenant || who.role !== 'OWNER' || who.auth !== 'api_key') {
      throw new Failure(`the header to show ${tenant}, OWNER, signed in with an API key`, `${who.text} (auth ${who.auth || '-'})`);
    }
    const seen = await leaks(ownerKey);
    if (seen.text || seen.fields.length || seen.markup) throw new Failure('the owner key to be gone from the page', JSON.stringify(seen));
    await noErrorBanner('in onboarding');
    console.log(`signup:   ${who.text}`);
  });

  await step(`API keys: a viewer key "${LABEL}" created, shown once`, async () => {
    await (await visible(page.getByTestId('nav-keys'), 'the "API keys" item in the side bar (owners)')).click();
    await waitFor(() => location.hash === '#/keys', null, 'the URL to become #/keys');
    await visible(page.getByTestId('keys-table'), 'the list of keys (the first owner key of sign-up)');
    await page.getByTestId('key-label').fill(LABEL);
    await page.getByTestId('key-role').selectOption('viewer');
    const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.url() === `${BASE}/keys`);
    await page.getByTestId('key-create').click();
    const res = await answer;
    const body = await res.json().catch(() => null);
    if (res.status() !== 201 || body?.role !== 'viewer' || body?.label !== LABEL || !body?.id || !body?.key) {
      throw new Failure(`POST /keys to answer 201 {id, role: "viewer", label: "${LABEL}", key}`, `HTTP ${res.status()} ${JSON.stringify(body)}`);
    }
    lobbyId = body.id;
    lobbyKey = await readKeyPanel('viewer key');
    if (lobbyKey !== body.key) throw new Failure('the panel to show the key POST /keys answered', 'another value');
    const row = await visible(page.getByTestId(`key-row-${lobbyId}`), `the row of "${LABEL}" in the list`);
    const text = oneLine(await row.innerText());
    if (!text.includes(LABEL) || !/viewer/i.test(text) || !/active/i.test(text)) throw new Failure(`the row to say ${LABEL}, viewer, active`, text);
    const me = await page.evaluate(async (key) => {
      const r = await fetch('/me', { headers: { Authorization: `Bearer ${key}` } });
      return { status: r.status, body: await r.json().catch(() => null) };
    }, lobbyKey);
    if (me.status !== 200 || me.body?.tenant !== tenant || me.body?.role !== 'viewer') {
      throw new Failure(`GET /me with the new key to say {tenant: "${tenant}", role: "viewer"}`, `HTTP ${me.status} ${JSON.stringify(me.body)}`);
    }
    const rows = await page.locator('[data-testid^="key-row-"]').count();
    console.log(`signup:   ${text}; ${rows} keys listed; GET /me with it: ${JSON.stringify(me.body)}`);
  });

  await step('the key dismissed: nowhere in the page', async () => {
    await page.getByTestId('new-key-done').click();
    await waitFor(() => !document.querySelector('[data-testid=new-key-panel]'), null, 'the one-time key panel to close');
    const seen = await leaks(lobbyKey);
    if (seen.text || seen.fields.length || seen.markup) throw new Failure('the viewer key to appear nowhere in the page once dismissed', JSON.stringify(seen));
    await visible(page.getByTestId(`key-row-${lobbyId}`), `the row of "${LABEL}", still listed`);
  });

  await step('the key revoked: the API refuses it', async () => {
    await page.getByTestId(`key-revoke-${lobbyId}`).click();
    const answer = page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url() === `${BASE}/keys/${lobbyId}`);
    await (await visible(page.getByTestId(`key-revoke-confirm-${lobbyId}`), 'the confirmation of "Revoke…"')).click();
    const res = await answer;
    const body = await res.json().catch(() => null);
    if (res.status() !== 200 || !body?.revoked_ms) throw new Failure(`DELETE /keys/${lobbyId} to answer 200 with revoked_ms`, `HTTP ${res.status()} ${JSON.stringify(body)}`);
    await waitFor((id) => document.querySelector(`[data-testid="key-row-${id}"]`)?.dataset.revoked === 'true', lobbyId,
      `the row of "${LABEL}" to show it revoked`);
    const status = oneLine(await page.getByTestId(`key-status-${lobbyId}`).innerText());
    if (!/revoked/i.test(status)) throw new Failure('the status to say REVOKED', status);
    // The page's own request with the revoked key is refused: that 401 is expected.
    t.expected = (p) => (p.status === 401 && p.url === `${BASE}/me`)
      || (p.console && /Failed to load resource.*\b401\b/.test(p.text) && p.url.startsWith(BASE));
    const me = await page.evaluate(async (key) => {
      const r = await fetch('/me', { headers: { Authorization: `Bearer ${key}` } });
      return { status: r.status, body: await r.json().catch(() => null) };
    }, lobbyKey);
    if (me.status !== 401) throw new Failure('GET /me with the revoked key to answer 401', `HTTP ${me.status} ${JSON.stringify(me.body)}`);
    await sleep(300);
    await noErrorBanner('after revoking');
    console.log(`signup:   ${status}; GET /me with it: HTTP ${me.status} ${me.body?.code || ''}`);
  });

  await step('signed out, and back in with the owner key: the same tenant', async () => {
    // The revoked key's 401 was expected; from here on, any is a problem.
    t.problems = t.problems.filter((p) => !t.expected(p));
    t.expected = () => false;
    await page.getByTestId('sign-out').click();
    const input = await visible(page.getByTestId('key-input'), 'the sign-in page');
    if (await page.getByTestId('whoami').isVisible()) throw new Failure('to be signed out', await page.getByTestId('whoami').innerText());
    await input.fill(ownerKey);
    await page.getByTestId('sign-in').click();
    await waitFor(() => document.querySelector('[data-testid=whoami]:not([hidden])') && /^#\/./.test(location.hash) && location.hash !== '#/signin',
      null, 'to be signed in on a page');
    const who = await header();
    if (who.tenant !== tenant || who.role !== 'OWNER') throw new Failure(`the header to show ${tenant}, OWNER`, who.text);
    await noErrorBanner('after signing back in');
    console.log(`signup:   ${who.text}, at ${new URL(page.url()).hash}`);
  });

  console.log(`signup: passed, ${TOTAL} steps; screenshots in ${SHOTS} (signup-*.png)`);
}

await t.run(main);
