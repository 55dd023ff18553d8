// Every page type in the browser: no CSP violation, no console error, no inline script, the
// stylesheet applied, no horizontal scrolling (desktop and phone width); the cookies as the
// browser keeps them are HttpOnly, SameSite=Lax and invisible to page script; the session
// cookie changes at every sign-in. A full-page screenshot of each page type goes to
// target/browser-screenshots/.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  authRequest, assertPageHygiene, idpCookies, idpTest, launchBrowser, screenshot,
  signIn, submitLogin,
} from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

/** Navigates to `url` and checks the page; returns the response. */
async function visit(page, url, what, status, shot) {
  const resp = await page.goto(url);
  assert.equal(resp.status(), status, `${what}: HTTP status`);
  await assertPageHygiene(page, resp, what);
  if (shot) await screenshot(page, shot);
  return resp;
}

function checkCookie(c, name) {
  assert.ok(c, `cookie ${name} must be set`);
  assert.equal(c.httpOnly, true, `${name} must be HttpOnly`);
  assert.equal(c.sameSite, 'Lax', `${name} must be SameSite=Lax`);
  assert.equal(c.path, '/', `${name} path`);
  // Dev mode on plain http: no Secure and no __Host- prefix (browsers would refuse them).
  assert.equal(c.secure, false, `${name}: dev mode over http`);
  assert.equal(c.domain, '127.0.0.1', `${name} is a host-only cookie`);
}

idpTest('login, consent, error, expired, not-found and logout pages: clean console, no CSP violation, styled; cookies HttpOnly + SameSite=Lax', getBrowser, async ({ idp, rp, context, page, watcher, backend }) => {
  // Login page.
  const req = authRequest(idp, idp.client);
  const [loginResp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/login'),
    rp.follow(page, req.url),
  ]);
  await page.waitForURL((u) => u.pathname === '/login');
  await assertPageHygiene(page, loginResp, 'login page');
  const bidOnly = await idpCookies(context, idp);
  checkCookie(bidOnly.propusk_bid, 'propusk_bid (login transaction binding)');
  assert.equal(bidOnly.propusk_session, undefined, 'no session before sign-in');

  // Consent page.
  const consentGet = page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/consent');
  const post = await submitLogin(page, idp.user.login, idp.user.password);
  assert.equal(post.status(), 303);
  const consentResp = await consentGet;
  await page.waitForURL((u) => u.pathname === '/consent');
  await assertPageHygiene(page, consentResp, 'consent page');
  const cookies = await idpCookies(context, idp);
  checkCookie(cookies.propusk_session, 'propusk_session (SSO)');
  checkCookie(cookies.propusk_bid, 'propusk_bid');
  assert.equal(cookies.propusk_session.expires, -1, 'without "remember me" the SSO cookie ends with the browser session');
  // HttpOnly in practice: page script sees no cookie at all.
  assert.equal(await page.evaluate(() => document.cookie), '', 'document.cookie must not show HttpOnly cookies');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
    page.getByRole('button', { name: 'Разрешить' }).click(),
  ]);

  // Error pages: unknown portal, expired login transaction, unknown path, in both languages.
  await visit(page, authRequest(idp, { id: 'no-such-portal', redirectUris: [rp.redirectUri] }).url, 'error page (unknown client)', 400, `error-invalid-client-${backend}`);
  await visit(page, idp.url('/login?tx=does-not-exist'), 'expired transaction page', 400, `error-expired-${backend}`);
  await visit(page, idp.url('/no/such/page'), 'not found page', 404, `error-not-found-${backend}`);
  await visit(page, authRequest(idp, { id: 'no-such-portal', redirectUris: [rp.redirectUri] }, { ui_locales: 'en' }).url, 'error page (en)', 400, `error-invalid-client-en-${backend}`);

  // Logout confirmation and the signed-out page.
  await visit(page, idp.url('/logout'), 'logout confirmation page', 200, `logout-confirm-${backend}`);
  const [done] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/logout'),
    page.getByRole('button', { name: 'Выйти' }).click(),
  ]);
  assert.equal(done.status(), 200);
  await page.waitForLoadState('load');
  await assertPageHygiene(page, done, 'signed-out page');
  await screenshot(page, `logged-out-${backend}`);
  assert.equal((await idpCookies(context, idp)).propusk_session, undefined, 'the SSO cookie is removed at logout');

  watcher.assertClean('page tour');
});

idpTest('the session cookie is replaced at every sign-in (prompt=login)', getBrowser, async ({ idp, rp, context, page, watcher }) => {
  await signIn(page, idp, rp);
  const first = (await idpCookies(context, idp)).propusk_session;
  checkCookie(first, 'propusk_session');
  // Sign in again over the live session.
  const { req } = await signIn(page, idp, rp, { prompt: 'login' });
  assert.equal(req.params.prompt, 'login');
  const second = (await idpCookies(context, idp)).propusk_session;
  checkCookie(second, 'propusk_session');
  assert.notEqual(second.value, first.value, 'a new sign-in must issue a new session id (no fixation)');
  watcher.assertClean('re-sign-in');
});

idpTest('"remember me" makes the SSO cookie persistent, still HttpOnly and SameSite=Lax', getBrowser, async ({ idp, rp, context, page, watcher }) => {
  const req = authRequest(idp, idp.client);
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.pathname === '/login');
  await page.getByLabel(/Запомнить меня/).check();
  await submitLogin(page, idp.user.login, idp.user.password);
  await page.waitForURL((u) => u.pathname === '/consent');
  const c = (await idpCookies(context, idp)).propusk_session;
  checkCookie(c, 'propusk_session (remembered)');
  assert.ok(c.expires > Date.now() / 1000 + 3600, `a remembered session outlives the browser session: expires=${c.expires}`);
  watcher.assertClean('remember me');
});

idpTest('phone-width pages: no horizontal scrolling, stylesheet applied', getBrowser, async ({ idp, rp, page, watcher, backend }) => {
  const req = authRequest(idp, idp.client);
  const [loginResp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/login'),
    rp.follow(page, req.url),
  ]);
  await page.waitForURL((u) => u.pathname === '/login');
  await assertPageHygiene(page, loginResp, 'login page (phone)');
  // The error state is the longest login page.
  const resp = await submitLogin(page, idp.user.login, 'wrong-password-1');
  await page.waitForLoadState('load');
  await assertPageHygiene(page, resp, 'login page with an error (phone)');
  await screenshot(page, `login-error-phone-${backend}`);
  const consentGet = page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/consent');
  const loginPost = await submitLogin(page, idp.user.login, idp.user.password);
  assert.equal(loginPost.status(), 303);
  const consentResp = await consentGet;
  await page.waitForURL((u) => u.pathname === '/consent');
  await assertPageHygiene(page, consentResp, 'consent page (phone)');
  await screenshot(page, `consent-phone-${backend}`);
  // Buttons stack and fill the width on a phone.
  const widths = await page.locator('.actions button').evaluateAll((bs) => bs.map((b) => b.getBoundingClientRect().width));
  const main = await page.locator('main').evaluate((m) => m.getBoundingClientRect().width);
  for (const w of widths) assert.ok(w > main * 0.8, `buttons fill the card on a phone: ${w} of ${main}`);
  watcher.assertClean('phone width');
}, { contextOptions: { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 } });
