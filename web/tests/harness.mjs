// What the browser walks share (walk.mjs, sso.mjs): headless Chromium, the
// numbered steps with a full-page screenshot each, the capture of page
// errors, console errors and failed requests, and the failure report (what
// was expected, what the page showed, a screenshot, exit 1).
//
//   const t = harness({ tag: 'walk', total: 12, shots: SHOTS, minutes: 8 });
//   await t.run(async () => {
//     await t.launch();
//     t.page = await context.newPage(); watch(t, t.page, { only: BASE });
//     await t.step('label', async () => { ... });
//   });

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export class Failure extends Error {
  constructor(expected, saw = '') {
    super(expected);
    this.expected = expected;
    this.saw = saw;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);

/**
 * One walk's state and helpers.
 * tag: the log prefix ("walk"); total: the number of steps; shots: the
 * screenshot directory (created); prefix: of the step screenshots' names;
 * failureShot: the failure screenshot's name; minutes: the whole walk's
 * limit; problemsAre: how checkProblems names what it expected none of;
 * header: describePage also shows the header (#whoami).
 */
export function harness({
  tag, total, shots, prefix = '', failureShot = 'failure.png', minutes, chromiumPath,
  problemsAre = 'no page errors, console errors or failed API calls', header = false,
}) {
  mkdirSync(shots, { recursive: true });
  const t = {
    browser: null,
    page: null,
    n: 0,
    current: 'start',
    // Uncaught page errors, console errors and failed requests, as {text,
    // url, ...}; `expected(p)` says which of them a step provoked on purpose.
    problems: [],
    expected: () => false,
  };

  t.real = () => t.problems.filter((p) => !t.expected(p)).map((p) => p.text);

  t.launch = async () => {
    t.browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    return t.browser;
  };

  t.shot = async (name) => {
    await t.page.screenshot({ path: join(shots, name), fullPage: true });
  };

  t.checkProblems = () => {
    const list = t.real();
    if (list.length) throw new Failure(problemsAre, list.join('\n'));
  };

  t.step = async (label, fn, name) => {
    t.current = label;
    await fn();
    t.checkProblems();
    t.n += 1;
    await t.shot(name || `${prefix}${String(t.n).padStart(2, '0')}-${slug(label)}.png`);
    console.log(`${tag}: ${t.n}/${total} ${label}`);
  };

  /** Waits for a locator to be visible; a timeout becomes a Failure naming what was expected. */
  t.visible = async (locator, what, timeout = 15_000) => {
    try {
      await locator.first().waitFor({ state: 'visible', timeout });
    } catch {
      throw new Failure(`${what} to be visible within ${timeout / 1000} s`);
    }
    return locator.first();
  };

  t.waitFor = async (fn, arg, what, timeout = 15_000) => {
    try {
      return await t.page.waitForFunction(fn, arg, { timeout, polling: 250 });
    } catch {
      throw new Failure(`${what} within ${timeout / 1000} s`);
    }
  };

  t.describePage = async () => {
    const page = t.page;
    try {
      const view = await page.locator('#view').innerText({ timeout: 2000 });
      const banners = await page.locator('#banners').innerText({ timeout: 2000 });
      const who = header ? await page.locator('#whoami').innerText({ timeout: 2000 }).catch(() => '') : null;
      return [
        `URL: ${page.url()}`,
        header ? `header: ${who.replace(/\s+/g, ' ').trim() || '(empty)'}` : null,
        banners.trim() ? `banners: ${banners.trim()}` : 'banners: none',
        `view: ${view.trim().replace(/\n{2,}/g, '\n').slice(0, 2000)}`,
      ].filter((x) => x != null).join('\n');
    } catch (e) {
      return `(could not read the page: ${e.message})`;
    }
  };

  /** Runs the walk: exit 0 when it passed; 1 with the failure report otherwise, or when it takes too long. */
  t.run = async (main) => {
    const guard = setTimeout(() => {
      console.error(`${tag}: FAILED: the walk took more than ${minutes} minutes (at: ${t.current})`);
      process.exit(1);
    }, minutes * 60_000);
    try {
      await main();
      clearTimeout(guard);
      await t.browser.close();
      process.exit(0);
    } catch (err) {
      clearTimeout(guard);
      const f = err instanceof Failure ? err : new Failure('the walk to run', err?.stack || String(err));
      console.error(`${tag}: FAILED at step ${t.n + 1}/${total} (${t.current})`);
      console.error(`${tag}: expected: ${f.expected}`);
      if (f.saw) console.error(`${tag}: saw: ${f.saw}`);
      if (t.page) {
        console.error(`${tag}: the page showed:\n${await t.describePage()}`);
        if (t.real().length) console.error(`${tag}: problems seen:\n${t.real().join('\n')}`);
        try {
          await t.shot(failureShot);
          console.error(`${tag}: screenshot ${join(shots, failureShot)}`);
        } catch (e) {
          console.error(`${tag}: no failure screenshot: ${e.message}`);
        }
      }
      await t.browser?.close().catch(() => {});
      process.exit(1);
    }
  };

  return t;
}

/**
 * Records a page's problems in t.problems: uncaught errors, console errors
 * and HTTP answers of 400 or more. With `only` (the API's base URL) just the
 * API's answers count, named "API <method> <path>"; without, every answer
 * does, named by its full URL. Each problem carries the fields a step's
 * t.expected needs: url, and status (answers), console (console errors), and
 * notFound (a GET answered 404, or the console's "Failed to load resource"
 * line for a 404).
 */
export function watch(t, page, { only = '' } = {}) {
  page.on('pageerror', (e) => t.problems.push({ text: `uncaught page error: ${e.message}` }));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url || '';
    t.problems.push({
      text: `console error: ${msg.text()}${url ? ` (${url})` : ''}`,
      url,
      console: true,
      notFound: /^Failed to load resource/.test(msg.text()) && /\b404\b/.test(msg.text()),
    });
  });
  page.on('response', async (res) => {
    if ((only && !res.url().startsWith(only)) || res.status() < 400) return;
    const url = new URL(res.url());
    const method = res.request().method();
    let body = '';
    try {
      body = (await res.text()).slice(0, 300);
    } catch { /* body gone */ }
    t.problems.push({
      text: only
        ? `API ${method} ${url.pathname} answered ${res.status()}: ${body}`
        : `${method} ${url.origin}${url.pathname} answered ${res.status()}: ${body}`,
      url: `${url.origin}${url.pathname}`,
      status: res.status(),
      notFound: res.status() === 404 && method === 'GET',
    });
  });
}
