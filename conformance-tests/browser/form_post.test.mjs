// response_mode=form_post (OAuth 2.0 Form Post Response Mode): the IdP answers a page whose
// script (/static/form_post.js, no inline script, strict CSP) posts code, state and iss to
// the redirect_uri. Without JavaScript the same page offers a button that does it.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  authRequest, assertPageHygiene, exchangeCode, idpTest, launchBrowser, pathOn, screenshot,
  submitLogin, verifyIdToken,
} from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

/** authorize(form_post) -> login -> consent; returns the request and the consent POST's response promise. */
async function toConsent(idp, page) {
  const req = authRequest(idp, idp.client, { response_mode: 'form_post' });
  await page.goto(req.url);
  assert.equal(pathOn(page, idp.base), '/login', `expected the login page, at ${page.url()}`);
  await submitLogin(page, idp.user.login, idp.user.password);
  await page.waitForURL((u) => u.pathname === '/consent');
  return req;
}

const consentPost = (page) => page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/consent');

function checkFormPostResponse(resp, rp) {
  assert.equal(resp.status(), 200, 'the form_post page is HTTP 200');
  const h = resp.headers();
  assert.match(h['content-type'] || '', /^text\/html/);
  assert.match(h['cache-control'] || '', /no-store/, 'the page carries the code: no-store');
  assert.equal(h.location, undefined, 'form_post must not redirect');
  const csp = h['content-security-policy'] || '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  // Nothing went to the RP by GET: the code never appears in a URL.
  assert.deepEqual(rp.hitsTo('/cb', 'GET'), [], 'no GET to the redirect_uri in form_post mode');
}

function checkPostedForm(hit, idp, req) {
  assert.equal(hit.method, 'POST');
  assert.match(hit.headers['content-type'] || '', /^application\/x-www-form-urlencoded/);
  assert.deepEqual(hit.query, {}, 'the response is in the body, not the query');
  assert.ok(hit.form.code, `no code posted: ${JSON.stringify(hit.form)}`);
  assert.equal(hit.form.state, req.state, 'state posted back unchanged');
  assert.equal(hit.form.iss, idp.base, 'iss posted (RFC 9207)');
  assert.equal(hit.form.error, undefined);
}

idpTest('form_post: the page posts code, state and iss to the redirect_uri by itself under the strict CSP', getBrowser, async ({ idp, rp, page, watcher }) => {
  const req = await toConsent(idp, page);
  const script = page.waitForResponse((r) => new URL(r.url()).pathname === '/static/form_post.js');
  const [resp] = await Promise.all([
    consentPost(page),
    page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
    page.getByRole('button', { name: 'Разрешить' }).click(),
  ]);
  checkFormPostResponse(resp, rp);
  // The submission was done by the external script, served as JavaScript.
  const js = await script;
  assert.equal(js.status(), 200);
  assert.match(js.headers()['content-type'] || '', /^text\/javascript/);
  assert.equal(js.headers()['x-content-type-options'], 'nosniff');

  const hit = await rp.waitForHit('/cb', 'POST');
  checkPostedForm(hit, idp, req);
  assert.equal(page.url(), rp.redirectUri, 'the browser ends on the RP after the POST');

  const tok = await exchangeCode(idp, idp.client, hit.form.code, req);
  assert.equal(tok.status, 200, tok.text);
  const [, claims] = await verifyIdToken(idp, tok.json.id_token);
  assert.equal(claims.nonce, req.nonce);
  assert.equal(claims.iss, idp.base);

  watcher.assertClean('form_post with JavaScript');
});

idpTest('form_post without JavaScript: a readable page with a Continue button that posts the response', getBrowser, async ({ idp, rp, page, watcher, backend }) => {
  const req = await toConsent(idp, page);
  const [resp] = await Promise.all([consentPost(page), page.getByRole('button', { name: 'Разрешить' }).click()]);
  checkFormPostResponse(resp, rp);
  await page.waitForLoadState('load');
  assert.equal(pathOn(page, idp.base), '/consent', 'without script the browser stays on the IdP page');
  await assertPageHygiene(page, resp, 'form_post page');
  await page.getByRole('heading', { name: /Возвращаем вас на портал/ }).waitFor();
  await screenshot(page, `form-post-nojs-${backend}`);
  assert.deepEqual(rp.hitsTo('/cb'), [], 'nothing was posted before the button');

  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
    page.getByRole('button', { name: 'Продолжить / Continue' }).click(),
  ]);
  const hit = await rp.waitForHit('/cb', 'POST');
  checkPostedForm(hit, idp, req);
  const tok = await exchangeCode(idp, idp.client, hit.form.code, req);
  assert.equal(tok.status, 200, tok.text);

  watcher.assertClean('form_post without JavaScript');
}, { contextOptions: { javaScriptEnabled: false } });
