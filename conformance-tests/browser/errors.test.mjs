// Authorization requests the IdP must not answer by redirect (RFC 6749 §4.1.2.1, §3.1.2.4):
// an unknown client_id or a redirect_uri not registered for the client renders an error
// page, and the browser stays on the IdP. Nothing reaches the URI in the request.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import { assertPageHygiene, authRequest, idpTest, launchBrowser, pathOn, screenshot } from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

/**
 * Follows an RP link to `url`; asserts an HTTP 400 HTML error page on the IdP with the
 * heading `heading`, no redirect and no request to the RP's `path`; returns the page text.
 */
async function expectErrorPage({ idp, rp, page }, url, heading, path, what) {
  const [resp] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/authorize'),
    rp.follow(page, url),
  ]);
  await page.waitForURL((u) => u.pathname === '/authorize');
  assert.equal(resp.status(), 400, `${what}: HTTP status`);
  assert.equal(resp.headers().location, undefined, `${what}: no Location header`);
  assert.equal(resp.request().redirectedFrom(), null);
  assert.match(resp.headers()['content-type'] || '', /^text\/html/);
  await assertPageHygiene(page, resp, what);
  await page.getByRole('heading', { name: heading }).waitFor();
  // Settled: the document is loaded and nothing (meta refresh, script) moved the browser on.
  await page.waitForLoadState('networkidle');
  assert.equal(pathOn(page, idp.base), '/authorize', `${what}: the browser stays on the IdP, at ${page.url()}`);
  assert.equal(await page.locator('meta[http-equiv="refresh" i]').count(), 0, `${what}: no meta refresh`);
  assert.deepEqual(rp.hitsTo(path), [], `${what}: nothing may reach ${path}`);
  assert.equal(await page.locator('form').count(), 0, `${what}: an error page offers no form to continue`);
  return page.locator('main').innerText();
}

idpTest('unknown client_id: error page on the IdP, no redirect', getBrowser, async (ctx) => {
  const { idp, rp, page, watcher, backend } = ctx;
  const req = authRequest(idp, { id: 'no-such-portal', redirectUris: [rp.redirectUri] });
  const text = await expectErrorPage(ctx, req.url, 'Портал не найден', '/cb', 'unknown client_id');
  assert.match(text, /Вернитесь на сайт портала/, 'the page says what to do next');
  assert.doesNotMatch(text, /no-such-portal.*localhost|code_challenge/, 'no request dump on the page');
  await screenshot(page, `error-unknown-client-${backend}`);
  watcher.assertClean('unknown client_id');
});

idpTest('redirect_uri not registered for the client: error page on the IdP, no redirect', getBrowser, async (ctx) => {
  const { idp, rp, page, watcher, backend } = ctx;
  const req = authRequest(idp, idp.client, { redirect_uri: `${rp.base}/evil` });
  await expectErrorPage(ctx, req.url, 'Не получится вернуть вас на портал', '/evil', 'unregistered redirect_uri');
  await screenshot(page, `error-bad-redirect-uri-${backend}`);
  // A near miss (extra query) is just as unregistered: exact matching.
  const near = authRequest(idp, idp.client, { redirect_uri: `${rp.redirectUri}?x=1` });
  await expectErrorPage(ctx, near.url, 'Не получится вернуть вас на портал', '/cb', 'redirect_uri with an extra query');
  watcher.assertClean('unregistered redirect_uri');
});

idpTest('error pages follow the browser language: English for an English browser', getBrowser, async (ctx) => {
  const { idp, rp, watcher } = ctx;
  await expectErrorPage(ctx, authRequest(idp, { id: 'no-such-portal', redirectUris: [rp.redirectUri] }).url, 'Portal not recognised', '/cb', 'unknown client_id (en)');
  await expectErrorPage(ctx, authRequest(idp, idp.client, { redirect_uri: `${rp.base}/evil` }).url, "We can't take you back to the portal", '/evil', 'unregistered redirect_uri (en)');
  watcher.assertClean('error pages in English');
}, { contextOptions: { locale: 'en-US' } });
