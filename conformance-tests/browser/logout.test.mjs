// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) in a real browser.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  assertPageHygiene, authRequest, exchangeCode, idpCookies, idpTest, launchBrowser, pathOn,
  signIn,
} from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

/** A prompt=none request from the RP in `page`; returns the callback's query. */
async function silentAuth(page, idp, rp) {
  const req = authRequest(idp, idp.client, { prompt: 'none' });
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.href.startsWith(rp.redirectUri));
  const q = new URL(page.url()).searchParams;
  assert.equal(q.get('state'), req.state);
  assert.equal(q.get('iss'), idp.base);
  return q;
}

/** A fresh authorization request must show the login page again. */
async function assertSignedOut(page, idp, rp) {
  const q = await silentAuth(page, idp, rp);
  assert.equal(q.get('error'), 'login_required', `after logout prompt=none must fail: ${page.url()}`);
  assert.equal(q.get('code'), null);
  const req = authRequest(idp, idp.client);
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.pathname === '/login' || u.href.startsWith(rp.redirectUri));
  assert.equal(pathOn(page, idp.base), '/login', `after logout /authorize must show the login page, at ${page.url()}`);
}

idpTest('logout without id_token_hint: a confirmation form; the GET alone ends nothing; confirming does', getBrowser, async ({ idp, rp, context, page, watcher }) => {
  await signIn(page, idp, rp);

  // The RP links to /logout with no hint: the IdP asks, it does not redirect.
  const [resp] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/logout'),
    rp.follow(page, idp.url('/logout')),
  ]);
  await page.waitForURL((u) => u.pathname === '/logout');
  assert.equal(resp.status(), 200);
  await assertPageHygiene(page, resp, 'logout confirmation');
  await page.getByRole('heading', { name: 'Выйти из Пропуска?' }).waitFor();
  assert.equal(pathOn(page, idp.base), '/logout', 'the browser stays on the IdP');
  assert.deepEqual(rp.hitsTo('/logged-out'), [], 'no redirect to the post-logout URI without a hint');
  assert.ok((await idpCookies(context, idp)).propusk_session, 'the session cookie is still there before confirming');

  // Merely showing the page must not sign out (a link on any site could do that): the
  // session still answers prompt=none in another tab.
  const other = await context.newPage();
  const q = await silentAuth(other, idp, rp);
  assert.ok(q.get('code'), `the session must survive an unconfirmed logout page: ${other.url()}`);
  await other.close();

  // Confirm.
  const [done] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/logout'),
    page.getByRole('button', { name: 'Выйти' }).click(),
  ]);
  assert.equal(done.status(), 200);
  await page.waitForLoadState('load');
  await assertPageHygiene(page, done, 'signed-out page');
  const heading = await page.locator('h1').innerText();
  assert.notEqual(heading, 'Выйти из Пропуска?', 'after confirming, the page says the user is signed out');
  assert.equal((await idpCookies(context, idp)).propusk_session, undefined, 'the SSO cookie is removed');

  await assertSignedOut(page, idp, rp);
  watcher.assertClean('logout with confirmation');
});

idpTest('logout with id_token_hint and a registered post_logout_redirect_uri goes back to the RP with state', getBrowser, async ({ idp, rp, context, page, watcher }) => {
  const { req, code } = await signIn(page, idp, rp);
  const tok = await exchangeCode(idp, idp.client, code, req);
  assert.equal(tok.status, 200, tok.text);

  const u = new URL(idp.url('/logout'));
  u.searchParams.set('id_token_hint', tok.json.id_token);
  u.searchParams.set('post_logout_redirect_uri', rp.postLogoutUri);
  u.searchParams.set('state', 'logout-state-1');
  await rp.follow(page, u.toString());
  await page.waitForURL((x) => x.href.startsWith(rp.postLogoutUri));
  const back = new URL(page.url());
  assert.equal(back.origin + back.pathname, rp.postLogoutUri);
  assert.equal(back.searchParams.get('state'), 'logout-state-1', 'state is passed back');
  assert.equal((await rp.waitForHit('/logged-out', 'GET')).query.state, 'logout-state-1');
  assert.equal((await idpCookies(context, idp)).propusk_session, undefined, 'the SSO cookie is removed');

  await assertSignedOut(page, idp, rp);
  watcher.assertClean('logout with id_token_hint');
});

idpTest('logout to an unregistered post_logout_redirect_uri: an error page, no redirect, session kept', getBrowser, async ({ idp, rp, page, watcher }) => {
  const { req, code } = await signIn(page, idp, rp);
  const tok = await exchangeCode(idp, idp.client, code, req);
  assert.equal(tok.status, 200, tok.text);

  const u = new URL(idp.url('/logout'));
  u.searchParams.set('id_token_hint', tok.json.id_token);
  u.searchParams.set('post_logout_redirect_uri', `${rp.base}/evil`);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/logout'),
    rp.follow(page, u.toString()),
  ]);
  await page.waitForURL((x) => x.pathname === '/logout');
  assert.equal(resp.status(), 400);
  assert.equal(resp.headers().location, undefined);
  await assertPageHygiene(page, resp, 'logout error page');
  assert.equal(pathOn(page, idp.base), '/logout', 'the browser stays on the IdP');
  assert.deepEqual(rp.hitsTo('/evil'), [], 'nothing reached the unregistered URI');
  const q = await silentAuth(page, idp, rp);
  assert.ok(q.get('code'), 'a refused logout leaves the session alone');
  watcher.assertClean('logout to an unregistered URI');
});
