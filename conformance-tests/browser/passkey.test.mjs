// Passkeys in a real browser, with Chromium's virtual WebAuthn authenticator (CDP): sign in
// with the password through the security page, enrol a passkey there, then in a new
// browser context holding the same credential sign in to a portal with the passkey alone
// -> code -> token, whose ID token says acr 3 and amr hwk/user/mfa: once by autofill
// (conditional UI; Chromium's virtual authenticator answers it by itself) and once by the
// passkey button. The app QR code page. And a security key as the second factor after the
// password (acr 2, amr pwd/hwk/mfa). A portal that needs acr 3: a password session steps up
// with the passkey (amr pwd/hwk/user/mfa); without a passkey the page that explains it, and
// its button back to the portal (access_denied).
//
// WebAuthn does not accept IP addresses as relying-party ids: in dev mode the server's
// relying party for an issuer on 127.0.0.1 is `localhost`, so the pages are opened at
// http://localhost:PORT (Chromium treats it as a secure context).

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  authRequest, assertPageHygiene, exchangeCode, idpTest, launchBrowser, screenshot,
  submitLogin, verifyIdToken,
} from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

const local = (url) => url.replace('://127.0.0.1:', '://localhost:');

/**
 * A CTAP2 authenticator with resident keys and user verification on `page`: a platform one
 * (`internal`, a passkey on the device) or a USB security key.
 */
async function virtualAuthenticator(context, page, transport = 'internal') {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport,
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/** Opens the security page; signs in with the password on the way. */
async function openSecurityPage(idp, page) {
  await page.goto(local(idp.url('/account/security')));
  await page.waitForURL((u) => u.pathname === '/login');
  const post = await submitLogin(page, idp.user.login, idp.user.password);
  assert.equal(post.status(), 303, 'the sign-in answers 303');
  await page.waitForURL((u) => u.pathname === '/account/security');
  await page.getByRole('heading', { name: 'Безопасность' }).waitFor();
}

/** Clicks an enrol button on the security page; fails with the page's text if it did not work. */
async function enrol(page, button) {
  const [start] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/account/security/webauthn/start'),
    page.waitForURL((u) => u.pathname === '/account/security/webauthn/finish' || u.searchParams.get('done') === 'enrolled'),
    page.locator(button).click(),
  ]);
  assert.equal(start.status(), 200, 'enrolment started');
  await page.waitForLoadState('load');
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('done'), 'enrolled', `enrolment failed at ${url}: ${await page.locator('main').innerText()}`);
}

async function claimsOf(idp, req, code) {
  const tok = await exchangeCode(idp, idp.client, code, req);
  assert.equal(tok.status, 200, `token endpoint: ${tok.text}`);
  const [, claims] = await verifyIdToken(idp, tok.json.id_token);
  return claims;
}

/** From the current page, through consent when it comes, to the RP; returns the code. */
async function backAtRp(page, rp) {
  await page.waitForURL((u) => u.pathname === '/consent' || u.href.startsWith(rp.redirectUri));
  if (new URL(page.url()).pathname === '/consent') {
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
      page.getByRole('button', { name: 'Разрешить' }).click(),
    ]);
  }
  const code = new URL(page.url()).searchParams.get('code');
  assert.ok(code, `no code at ${page.url()}`);
  return code;
}

idpTest('passkey: enrol on the security page, then sign in with it alone (acr 3)', getBrowser, async ({ idp, rp, context, page, watcher, backend }) => {
  const { cdp, authenticatorId } = await virtualAuthenticator(context, page);
  await openSecurityPage(idp, page);
  const resp = await page.goto(page.url());
  await assertPageHygiene(page, resp, 'security page');
  assert.match(await page.locator('main').innerText(), /Кроме пароля, способов входа нет/);

  // Enrol a passkey (a fresh sign-in allows changes without another confirmation).
  await page.locator('#key-name').fill('Рабочий ноутбук');
  await enrol(page, '#add-passkey');
  const listed = await page.locator('#factors').innerText();
  assert.match(listed, /Ключ доступа \(биометрия\)/, listed);
  assert.match(listed, /Рабочий ноутбук/, listed);
  await screenshot(page, `security-passkey-${backend}`);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1, 'one credential on the authenticator');
  assert.ok(credentials[0].isResidentCredential, `a passkey is discoverable: ${JSON.stringify(credentials[0])}`);
  assert.equal(credentials[0].rpId, 'localhost');

  // A new browser (no session) holding the same passkey.
  const context2 = await getBrowser().newContext({ locale: 'ru-RU' });
  try {
    const page2 = await context2.newPage();
    const va2 = await virtualAuthenticator(context2, page2);
    await va2.cdp.send('WebAuthn.addCredential', { authenticatorId: va2.authenticatorId, credential: credentials[0] });

    const req = authRequest(idp, idp.client);
    const [startResp] = await Promise.all([
      // Conditional UI: the login page asks for options as soon as it loads.
      page2.waitForResponse((r) => new URL(r.url()).pathname === '/login/passkey/start'),
      rp.follow(page2, local(req.url)),
    ]);
    assert.equal(startResp.status(), 200, 'conditional UI started');
    await page2.waitForURL((u) => u.pathname !== '/start');
    // With a virtual authenticator Chromium may complete the conditional (autofill)
    // request by itself; otherwise the person presses the passkey button.
    const byAutofill = await page2
      .waitForURL((u) => u.pathname === '/consent' || u.href.startsWith(rp.redirectUri), { timeout: 3000 })
      .then(() => true, () => false);
    console.log(`passkey sign-in [${backend}]: by ${byAutofill ? 'autofill (conditional UI)' : 'the passkey button'}`);
    if (!byAutofill) {
      const button = page2.locator('#passkey-signin');
      await button.waitFor({ state: 'visible' });
      await screenshot(page2, `login-passkey-${backend}`);
      await button.click();
    }
    const code = await backAtRp(page2, rp);
    const claims = await claimsOf(idp, req, code);
    assert.equal(claims.sub, idp.user.sub);
    assert.equal(claims.acr, 'urn:propusk:acr:3', `acr: ${claims.acr}`);
    assert.deepEqual(claims.amr, ['hwk', 'user', 'mfa']);
  } finally {
    await context2.close();
  }

  // The button: a browser whose authenticator gets the passkey only after the login page
  // started its (then empty) autofill request; the button aborts that and asks anew.
  const context3 = await getBrowser().newContext({ locale: 'ru-RU' });
  try {
    const page3 = await context3.newPage();
    const va3 = await virtualAuthenticator(context3, page3);
    const req = authRequest(idp, idp.client);
    await page3.goto(local(req.url));
    await page3.waitForURL((u) => u.pathname === '/login');
    const button = page3.locator('#passkey-signin');
    await button.waitFor({ state: 'visible' });
    await screenshot(page3, `login-passkey-${backend}`);
    // The counter moves on from where the other browser left it (a copy with an old counter
    // would be refused as a possible clone).
    const moved = { ...credentials[0], signCount: 1000 };
    await va3.cdp.send('WebAuthn.addCredential', { authenticatorId: va3.authenticatorId, credential: moved });
    await button.click();
    const code = await backAtRp(page3, rp);
    const claims = await claimsOf(idp, req, code);
    assert.equal(claims.acr, 'urn:propusk:acr:3');
    assert.deepEqual(claims.amr, ['hwk', 'user', 'mfa']);
  } finally {
    await context3.close();
  }

  // The security page shows when the passkey was last used.
  await page.goto(local(idp.url('/account/security')));
  assert.match(await page.locator('#factors').innerText(), /последний вход/);

  // An authenticator app: the QR code is an SVG drawn by the server (no script, CSP-clean).
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/account/security/totp'),
    page.locator('#add-app').click(),
  ]);
  await page.locator('#qr svg').waitFor({ state: 'visible' });
  const box = await page.locator('#qr svg').boundingBox();
  assert.ok(box && box.width >= 150, `QR code size: ${JSON.stringify(box)}`);
  assert.match(await page.locator('#otpauth-uri').innerText(), /^otpauth:\/\/totp\//);
  await screenshot(page, `security-totp-${backend}`);
  watcher.assertClean('passkey enrolment and sign-in');
});

idpTest('security key: enrolled on the security page, asked after the password (acr 2)', getBrowser, async ({ idp, rp, context, page, watcher }) => {
  await virtualAuthenticator(context, page, 'usb');
  await openSecurityPage(idp, page);
  await enrol(page, '#add-security-key');
  assert.match(await page.locator('#factors').innerText(), /Аппаратный ключ/);

  // Sign in to the portal in the same browser with prompt=login: password, then the key.
  const req = authRequest(idp, idp.client, { prompt: 'login' });
  await rp.follow(page, local(req.url));
  await page.waitForURL((u) => u.pathname === '/login');
  await submitLogin(page, idp.user.login, idp.user.password);
  await page.waitForURL((u) => u.pathname === '/login/second-factor');
  const key = page.locator('#use-security-key');
  await key.waitFor({ state: 'visible' });
  await key.click();
  const code = await backAtRp(page, rp);
  const claims = await claimsOf(idp, req, code);
  assert.equal(claims.acr, 'urn:propusk:acr:2', `acr: ${claims.acr}`);
  assert.deepEqual(claims.amr, ['pwd', 'hwk', 'mfa']);
  watcher.assertClean('security key as the second factor');
});

idpTest('acr 3: a session signed in with the password steps up with the passkey', getBrowser, async ({ idp, rp, context, page, watcher, backend }) => {
  await virtualAuthenticator(context, page);
  await openSecurityPage(idp, page);
  await enrol(page, '#add-passkey');

  // The same browser (a session at acr 1), a portal that needs acr 3: the passkey page,
  // no password again.
  const req = authRequest(idp, idp.client, { acr_values: 'urn:propusk:acr:3' });
  await rp.follow(page, local(req.url));
  await page.waitForURL((u) => u.pathname === '/login/passkey-step-up');
  const resp = await page.reload();
  await assertPageHygiene(page, resp, 'passkey step-up page');
  const button = page.locator('#passkey-step-up');
  await button.waitFor({ state: 'visible' });
  await screenshot(page, `passkey-step-up-${backend}`);
  await button.click();
  const code = await backAtRp(page, rp);
  const claims = await claimsOf(idp, req, code);
  assert.equal(claims.acr, 'urn:propusk:acr:3', `acr: ${claims.acr}`);
  assert.deepEqual(claims.amr, ['pwd', 'hwk', 'user', 'mfa']);
  watcher.assertClean('passkey step-up');
});

idpTest('acr 3 without a passkey: the page explains, its button returns access_denied', getBrowser, async ({ idp, rp, page, watcher, backend }) => {
  const req = authRequest(idp, idp.client, { acr_values: 'urn:propusk:acr:3' });
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.pathname === '/login');
  // The login page leads with the passkey.
  assert.match(await page.locator('#passkey-required').innerText(), /ключом доступа/);
  await submitLogin(page, idp.user.login, idp.user.password);
  await page.waitForURL((u) => u.pathname === '/login/passkey-needed');
  const resp = await page.reload();
  await assertPageHygiene(page, resp, 'passkey needed page');
  const text = await page.locator('main').innerText();
  assert.match(text, /Как добавить ключ доступа/, text);
  await screenshot(page, `passkey-needed-${backend}`);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
    page.getByRole('button', { name: 'Вернуться на портал' }).click(),
  ]);
  const back = new URL(page.url());
  assert.equal(back.searchParams.get('error'), 'access_denied', back.href);
  assert.equal(back.searchParams.get('state'), req.state);
  watcher.assertClean('passkey needed');
});

idpTest('a flood of passkey requests: the page says so (429)', getBrowser, async ({ idp, rp, page, watcher }) => {
  const req = authRequest(idp, idp.client);
  await rp.follow(page, local(req.url));
  await page.waitForURL((u) => u.pathname === '/login');
  const button = page.locator('#passkey-signin');
  await button.waitFor({ state: 'visible' });
  const [start] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/login/passkey/start' && r.request().method() === 'POST'),
    button.click(),
  ]);
  assert.equal(start.status(), 429);
  const alert = page.locator('#passkey-form [role="alert"]');
  await alert.waitFor({ state: 'visible' });
  assert.match(await alert.innerText(), /Слишком много запросов ключа доступа/);
  assert.equal(new URL(page.url()).pathname, '/login', 'the page stays');
  // The refused starts themselves are the only problems the browser reports.
  const unexpected = watcher.problems().filter((p) => !p.includes('/login/passkey/start'));
  assert.deepEqual(unexpected, [], unexpected.join('\n'));
}, { extraEnv: { IDP_LOCKOUT__CEREMONY_IP_MAX: '0' } });
