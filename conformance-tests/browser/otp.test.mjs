// Password + one-time code by SMS in a real browser: a portal asks for two factors
// (acr_values), the person signs in with the password, asks for a code by SMS on the
// second-factor page, reads it (here: from the dev mailbox the SMS gateway would have
// received), types it, agrees, and the ID token says amr ["pwd","sms","mfa"], acr 2.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  authRequest, assertPageHygiene, exchangeCode, idpTest, launchBrowser, pathOn,
  screenshot, submitLogin, verifyIdToken, waitFor,
} from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

const ACR2 = 'urn:propusk:acr:2';
const PHONE = '+79161234567';

/** The newest 6-digit code the dev mailbox holds for `to`, beyond the first `seen` ones. */
async function codeFromMailbox(idp, to, seen = 0) {
  let code = null;
  await waitFor(async () => {
    const html = await (await fetch(idp.url('/dev/mailbox'))).text();
    const codes = html.split('<li>').slice(1)
      .filter((li) => li.includes(`→ ${to} ·`))
      .map((li) => (li.match(/(?<!\d)\d{6}(?!\d)/) || [])[0])
      .filter(Boolean);
    if (codes.length > seen) code = codes[0];
    return code !== null;
  }, `a code to ${to} in the dev mailbox`, 20_000, 200);
  return code;
}

idpTest('password + SMS code: second-factor page, code from the gateway mailbox, amr sms', getBrowser, async ({ idp, rp, page, backend }) => {
  const user = await idp.addUser('anna@example.ru', 'Correct-Horse-7!', ['--given-name', 'Anna', '--phone', PHONE]);
  const req = authRequest(idp, idp.client, { acr_values: ACR2 });
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.pathname === '/login');
  assert.match(await page.locator('main').innerText(), /Забыли пароль\?/, 'the login page links to password recovery');

  const post = await submitLogin(page, user.login, user.password);
  assert.equal(post.status(), 303);
  await page.waitForURL((u) => u.pathname === '/login/second-factor');
  const sf = await page.reload(); // the GET is idempotent: its response, for the checks
  await assertPageHygiene(page, sf, 'second-factor page');
  await assert.doesNotReject(page.getByRole('heading', { name: 'Подтверждение входа' }).waitFor());

  // Ask for the code by SMS; the page says where it went and preselects SMS.
  const [sent] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login/otp/send'),
    page.getByRole('button', { name: /Отправить код по SMS/ }).click(),
  ]);
  assert.equal(sent.status(), 303, 'sending a code answers 303 back to the page');
  await page.waitForURL((u) => u.pathname === '/login/second-factor');
  await assert.doesNotReject(page.getByText('Код отправлен: +7 *** ***-45-67').waitFor());
  assert.equal(await page.getByLabel('Код по SMS').isChecked(), true, 'SMS is preselected');
  await screenshot(page, `otp-sms-sent-${backend}`);

  // "Send again" at once: refused, with the seconds to wait.
  const [again] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login/otp/send'),
    page.getByRole('button', { name: /Отправить код по SMS/ }).click(),
  ]);
  assert.equal(again.status(), 429);
  await assert.doesNotReject(page.getByText(/Новый код можно запросить через \d+ с/).waitFor());

  // A wrong code first, then the right one.
  const code = await codeFromMailbox(idp, PHONE);
  const wrong = code === '000000' ? '111111' : '000000';
  await page.getByLabel('Код по SMS').check();
  await page.getByLabel('Код', { exact: true }).fill(wrong);
  await page.getByRole('button', { name: 'Подтвердить' }).click();
  await assert.doesNotReject(page.getByText('Код не подходит. Осталось попыток: 2.').waitFor());
  await page.getByLabel('Код по SMS').check();
  await page.getByLabel('Код', { exact: true }).fill(code);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/consent'),
    page.getByRole('button', { name: 'Подтвердить' }).click(),
  ]);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
    page.getByRole('button', { name: 'Разрешить' }).click(),
  ]);
  const cb = new URL(page.url());
  assert.equal(pathOn(page, idp.base), null, 'back at the portal');
  const tok = await exchangeCode(idp, idp.client, cb.searchParams.get('code'), req);
  assert.equal(tok.status, 200, tok.text);
  const [, claims] = await verifyIdToken(idp, tok.json.id_token);
  assert.deepEqual(claims.amr, ['pwd', 'sms', 'mfa']);
  assert.equal(claims.acr, ACR2);
  assert.equal(claims.sub, user.sub);
});
