// The person's pages in a real browser (issue 5): registration (name + e-mail -> code from the
// dev mailbox -> password), the profile with the identity form and the registry's answer,
// the consent page naming a withheld scope, the "account level too low" page. Each page:
// clean console, no CSP violation, styled, no horizontal scrolling.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';

import { assertPageHygiene, authRequest, idpTest, launchBrowser, screenshot, submitLogin, waitFor } from './support.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });
const getBrowser = () => browser;

async function registrationCode(idp) {
  let code = null;
  await waitFor(async () => {
    const body = await (await fetch(idp.url('/dev/mailbox'))).text();
    const m = body.match(/регистрации в Пропуске: (\d{6})/);
    code = m ? m[1] : null;
    return code !== null;
  }, 'the registration code in the dev mailbox', 15_000, 200);
  return code;
}

idpTest('registration, profile with documents, withheld consent line, level page: clean and styled', getBrowser, async ({ idp, rp, page, watcher, backend }) => {
  // Registration, step 1.
  let resp = await page.goto(idp.url('/register'));
  await assertPageHygiene(page, resp, 'registration page');
  await page.getByLabel('Фамилия').fill('Смирнова');
  await page.getByLabel('Имя', { exact: true }).fill('Анна');
  await page.getByLabel(/Мобильный телефон или эл. почта/).fill('anna@example.ru');
  [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/register'),
    page.getByRole('button', { name: 'Получить код' }).click(),
  ]);
  await assertPageHygiene(page, resp, 'registration code page');
  await screenshot(page, `register-code-${backend}`);
  // Step 2: the code from the dev mailbox.
  await page.getByLabel('Код из сообщения').fill(await registrationCode(idp));
  [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/register'),
    page.getByRole('button', { name: 'Подтвердить' }).click(),
  ]);
  await assertPageHygiene(page, resp, 'registration password page');
  // Step 3: the password; signed in on the profile.
  await page.getByLabel('Пароль', { exact: true }).fill('Zx9#mQ2!vLp4');
  await page.getByLabel('Пароль ещё раз').fill('Zx9#mQ2!vLp4');
  const profileGet = page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/account/profile');
  await page.getByRole('button', { name: 'Зарегистрироваться' }).click();
  resp = await profileGet;
  await assertPageHygiene(page, resp, 'profile page');
  assert.equal(await page.locator('#account-level').getAttribute('data-level'), 'simplified');

  // A mobile phone added on the profile: a code to the new number, saved after it.
  await page.getByLabel('Мобильный телефон: Новое значение').fill('+7 900 555-02-02');
  [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/account/profile/contact'),
    page.locator('form.contact-edit[data-kind="mobile"] button').click(),
  ]);
  await assertPageHygiene(page, resp, 'profile page with the contact code form');
  let contactCode = null;
  await waitFor(async () => {
    const body = await (await fetch(idp.url('/dev/mailbox'))).text();
    const m = body.match(/привязки контакта[^:]*: (\d{6})/);
    contactCode = m ? m[1] : null;
    return contactCode !== null;
  }, 'the contact code in the dev mailbox', 15_000, 200);
  await page.locator('#contact-code-input').fill(contactCode);
  const savedGet = page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/account/profile');
  await page.locator('#contact-code button').click();
  resp = await savedGet;
  await assertPageHygiene(page, resp, 'profile page, contact saved');
  assert.equal(await page.locator('[data-notice]').getAttribute('data-notice'), 'contact_changed');
  assert.match(await page.locator('[data-contact="mobile"]').innerText(), /\+79005550202/);

  // Documents through the form: a wrong division code first, then right.
  const fill = async (division) => {
    await page.getByLabel('Место рождения').fill('г. Великий Новгород');
    await page.getByLabel('Дата рождения (ДД.ММ.ГГГГ)').fill('17.04.1985');
    await page.getByLabel('СНИЛС').fill('112-233-445 95');
    await page.getByLabel('Серия паспорта').fill('4508');
    await page.getByLabel('Номер паспорта').fill('731904');
    await page.getByLabel('Дата выдачи (ДД.ММ.ГГГГ)').fill('20.05.2005');
    await page.getByLabel('Кем выдан').fill('ОВД Тверского района');
    await page.getByLabel('Код подразделения').fill(division);
    const [r] = await Promise.all([
      page.waitForResponse((x) => new URL(x.url()).pathname.startsWith('/account/profile') && x.request().method() === 'GET' || x.status() === 400),
      page.getByRole('button', { name: 'Отправить на проверку' }).click(),
    ]);
    return r;
  };
  resp = await fill('77-0001');
  assert.equal(resp.status(), 400);
  await assertPageHygiene(page, resp, 'profile page with an error');
  assert.equal(await page.locator('[data-error]').getAttribute('data-error'), 'division_code');
  resp = await fill('770-001');
  await waitFor(async () => {
    await page.reload();
    return (await page.locator('#account-level').getAttribute('data-level')) === 'standard';
  }, 'the registry check raises the account to standard', 20_000, 500);
  await assertPageHygiene(page, await page.reload(), 'profile page, standard');
  await screenshot(page, `profile-standard-${backend}`);

  // The default user is simplified: a portal approved for snils gets the withheld line.
  const client = await idp.addClient({ name: 'Налоговая', redirectUris: [rp.redirectUri], scopes: ['openid', 'fullname', 'snils'] });
  await page.context().clearCookies();
  const req = authRequest(idp, client, { scope: 'openid fullname snils' });
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.pathname === '/login');
  const consentGet = page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/consent');
  await submitLogin(page, idp.user.login, idp.user.password);
  resp = await consentGet;
  await assertPageHygiene(page, resp, 'consent page with a withheld scope');
  assert.ok(await page.locator('[data-withheld="snils"]').isVisible(), 'the withheld scope is named');
  await screenshot(page, `consent-withheld-${backend}`);

  // The portal requires a standard account: the explanation page.
  await idp.cli(['clients', 'set-min-level', client.id, '--level', 'standard']);
  const req2 = authRequest(idp, client, { scope: 'openid fullname' });
  const levelResp = page.waitForResponse((r) => r.status() === 403);
  await rp.follow(page, req2.url);
  resp = await levelResp;
  await assertPageHygiene(page, resp, 'level page');
  assert.ok(await page.locator('#cancel').isVisible(), 'a way back to the portal');
  await screenshot(page, `level-required-${backend}`);
  watcher.assertClean('identity pages');
});
