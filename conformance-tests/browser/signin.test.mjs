// Password sign-in in a real browser: relying-party request -> login page -> consent page ->
// back to the relying party with code, state and iss; the code works at /token. And the
// readable error for a wrong password, in Russian by default and in English on request.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  authRequest, assertPageHygiene, exchangeCode, idpTest, launchBrowser, pathOn,
  screenshot, submitLogin, verifyIdToken,
} from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

idpTest('password sign-in: login, consent, redirect with code, state and iss; code exchange', getBrowser, async ({ idp, rp, page, watcher, backend }) => {
  const req = authRequest(idp, idp.client);

  // The user follows the relying party's link to /authorize; the IdP shows its login page.
  const [first] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/login'),
    rp.follow(page, req.url),
  ]);
  await page.waitForURL((u) => u.pathname === '/login');
  assert.equal(first.status(), 200);
  assert.equal(first.request().redirectedFrom()?.url(), req.url, 'the login page is reached by redirect from /authorize');
  await assertPageHygiene(page, first, 'login page');
  await assert.doesNotReject(page.getByRole('heading', { name: 'Вход' }).waitFor(), 'Russian login heading');
  assert.match(await page.locator('p.lead').innerText(), /Browser RP/, 'the login page names the portal');
  await screenshot(page, `login-ru-${backend}`);

  // Sign in; the consent page follows (first visit of this portal).
  const post = await submitLogin(page, idp.user.login, idp.user.password);
  assert.equal(post.status(), 303, 'a successful sign-in answers 303');
  await page.waitForURL((u) => u.pathname === '/consent');
  await assert.doesNotReject(page.getByRole('heading', { name: 'Разрешить доступ к данным?' }).waitFor());
  const lead = await page.locator('p.lead').innerText();
  assert.match(lead, /Browser RP/, `the consent page names the portal: ${lead}`);
  const scopes = await page.locator('ul.scopes li').allInnerTexts();
  assert.ok(scopes.length >= 3, `the requested scopes are listed: ${JSON.stringify(scopes)}`);
  assert.ok(scopes.some((s) => /почты/i.test(s)), `scope email is described in Russian: ${JSON.stringify(scopes)}`);
  assert.match(await page.locator('main').innerText(), new RegExp(idp.user.login.replace('.', '\\.')), 'the consent page says who is signed in');
  await screenshot(page, `consent-ru-${backend}`);

  // Agree: the browser lands on the registered redirect_uri.
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
    page.getByRole('button', { name: 'Разрешить' }).click(),
  ]);
  const cb = new URL(page.url());
  assert.equal(cb.origin + cb.pathname, rp.redirectUri);
  const code = cb.searchParams.get('code');
  assert.ok(code, `no code in ${cb}`);
  assert.equal(cb.searchParams.get('state'), req.state, 'state comes back unchanged');
  assert.equal(cb.searchParams.get('iss'), idp.base, 'RFC 9207 iss equals the issuer');
  assert.equal(cb.searchParams.get('error'), null);
  const hit = await rp.waitForHit('/cb', 'GET');
  assert.equal(hit.query.code, code, 'the RP server received the same code');

  // The relying party exchanges the code (server to server).
  const tok = await exchangeCode(idp, idp.client, code, req);
  assert.equal(tok.status, 200, `token endpoint: ${tok.text}`);
  assert.match(tok.headers.get('cache-control') || '', /no-store/);
  assert.ok(tok.json.access_token && tok.json.id_token, `token response: ${tok.text}`);
  const [, claims] = await verifyIdToken(idp, tok.json.id_token);
  assert.equal(claims.iss, idp.base, 'ID token iss');
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  assert.ok(aud.includes(idp.client.id), `ID token aud ${JSON.stringify(claims.aud)} must contain ${idp.client.id}`);
  assert.equal(claims.nonce, req.nonce, 'ID token nonce');
  assert.equal(claims.sub, idp.user.sub, 'ID token sub is the signed-in user');
  assert.ok(claims.exp > Date.now() / 1000, 'ID token not expired');
  assert.ok(Array.isArray(claims.amr) && claims.amr.includes('pwd'), `amr: ${JSON.stringify(claims.amr)}`);

  // The code is single-use.
  const again = await exchangeCode(idp, idp.client, code, req);
  assert.equal(again.status, 400, `a reused code must fail: ${again.text}`);
  assert.equal(again.json?.error, 'invalid_grant');

  // The SSO session lives in the browser: a second request with prompt=none, again by a
  // cross-site click on the RP (the SameSite=Lax cookie must travel), comes straight back
  // with a code, no page in between.
  const req2 = authRequest(idp, idp.client, { prompt: 'none' });
  await rp.follow(page, req2.url);
  await page.waitForURL((u) => u.href.startsWith(rp.redirectUri));
  const cb2 = new URL(page.url());
  assert.ok(cb2.searchParams.get('code'), `prompt=none with a live session must succeed: ${cb2}`);
  assert.equal(cb2.searchParams.get('state'), req2.state);
  const tok2 = await exchangeCode(idp, idp.client, cb2.searchParams.get('code'), req2);
  assert.equal(tok2.status, 200, tok2.text);
  const [, claims2] = await verifyIdToken(idp, tok2.json.id_token);
  assert.equal(claims2.nonce, req2.nonce);

  watcher.assertClean('password sign-in');
});

// ---------------------------------------------------------------- wrong password

/** Goes to the login page, submits a wrong password, returns the error text. */
async function wrongPassword(idp, page, extra = {}) {
  const req = authRequest(idp, idp.client, extra);
  await page.goto(req.url);
  assert.equal(pathOn(page, idp.base), '/login', `expected the login page, at ${page.url()}`);
  const resp = await submitLogin(page, idp.user.login, 'not-the-password-1');
  assert.equal(resp.status(), 200, 'a wrong password renders the login page again (HTTP 200)');
  await page.waitForLoadState('load');
  assert.equal(pathOn(page, idp.base), '/login', 'the browser stays on the login page');
  await assertPageHygiene(page, resp, 'login page with an error');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.ok(await alert.isVisible(), 'the error is visible');
  // What was typed stays, the password does not.
  assert.equal(await page.locator('#identifier').inputValue(), idp.user.login, 'the identifier is kept');
  assert.equal(await page.locator('#password').inputValue(), '', 'the password is not echoed back');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'password', 'focus goes to the password field');
  return { text: (await alert.innerText()).trim(), lang: await page.evaluate(() => document.documentElement.lang) };
}

const RU_ERROR = /^Неверный логин или пароль/;
const EN_ERROR = /^The login or password is incorrect/;

idpTest('wrong password: readable Russian error for a Russian browser', getBrowser, async ({ idp, page, watcher, backend }) => {
  const { text, lang } = await wrongPassword(idp, page);
  assert.match(text, RU_ERROR);
  assert.equal(lang, 'ru');
  await screenshot(page, `login-error-ru-${backend}`);
  watcher.assertClean('wrong password (ru)');
}, { contextOptions: { locale: 'ru-RU' } });

idpTest('wrong password: Russian is the default for a language the IdP does not speak', getBrowser, async ({ idp, page, watcher }) => {
  const { text, lang } = await wrongPassword(idp, page);
  assert.match(text, RU_ERROR);
  assert.equal(lang, 'ru');
  watcher.assertClean('wrong password (de browser)');
}, { contextOptions: { locale: 'de-DE' } });

idpTest('wrong password: English with ui_locales=en', getBrowser, async ({ idp, page, watcher, backend }) => {
  const { text, lang } = await wrongPassword(idp, page, { ui_locales: 'en' });
  assert.match(text, EN_ERROR);
  assert.equal(lang, 'en');
  await assert.doesNotReject(page.getByRole('heading', { name: 'Sign in' }).waitFor());
  await screenshot(page, `login-error-en-${backend}`);
  watcher.assertClean('wrong password (ui_locales=en)');
}, { contextOptions: { locale: 'ru-RU' } });

idpTest('wrong password: English for an English browser (Accept-Language)', getBrowser, async ({ idp, page, watcher }) => {
  const { text, lang } = await wrongPassword(idp, page);
  assert.match(text, EN_ERROR);
  assert.equal(lang, 'en');
  watcher.assertClean('wrong password (en browser)');
}, { contextOptions: { locale: 'en-GB' } });

// ---------------------------------------------------------------- consent refused

idpTest('refusing consent returns access_denied with state and iss, and no code', getBrowser, async ({ idp, rp, page, watcher }) => {
  const req = authRequest(idp, idp.client);
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.pathname === '/login');
  await submitLogin(page, idp.user.login, idp.user.password);
  await page.waitForURL((u) => u.pathname === '/consent');
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
    page.getByRole('button', { name: 'Отказать' }).click(),
  ]);
  const cb = new URL(page.url());
  assert.equal(cb.searchParams.get('error'), 'access_denied', `expected access_denied: ${cb}`);
  assert.equal(cb.searchParams.get('code'), null, 'no code after a refusal');
  assert.equal(cb.searchParams.get('state'), req.state);
  assert.equal(cb.searchParams.get('iss'), idp.base);
  watcher.assertClean('consent refused');
});
