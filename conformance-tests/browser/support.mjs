// Shared helpers of the browser suite: a real `idp serve` per test (fresh port, fresh
// SQLite file or Postgres database), a tiny relying-party HTTP server that records what
// the browser delivers to it, headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core), and a watcher that fails a test on any console error, page error or
// CSP violation.
//
// Mirrors conformance-tests/tests/conformance/harness.rs: `idp migrate`,
// `idp clients add ... --json`, `idp users add ... --json`, then `idp serve`, dev mode,
// cheap argon2, everything through IDP_* environment variables.
//
// Knobs: IDP_BIN (binary), IDP_TEST_LOG (server RUST_LOG, default "info"), CHROMIUM_BIN
// (browser, default /usr/bin/chromium), TEST_DATABASE_URL + TEST_REDIS_URL (adds the
// Postgres + Redis backend; a fresh database per server), SCREENSHOT_DIR (default
// <workspace>/target/browser-screenshots).

import { spawn, execFile } from 'node:child_process';
import { createHash, createPublicKey, randomBytes, verify as verifySig } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);

export const WORKSPACE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const LOGIN = 'ivan@example.ru';
export const PASSWORD = 'Correct-Horse-7!';
export const GIVEN_NAME = 'Ivan';
export const FAMILY_NAME = 'Petrov';

// ------------------------------------------------------------------ binaries and backends

/** The `idp` binary: IDP_BIN, else $CARGO_TARGET_DIR or <workspace>/target, + /debug/idp. */
export function idpBin() {
  if (process.env.IDP_BIN) {
    assert.ok(existsSync(process.env.IDP_BIN), `IDP_BIN=${process.env.IDP_BIN} does not exist`);
    return process.env.IDP_BIN;
  }
  const t = process.env.CARGO_TARGET_DIR;
  const target = t ? (isAbsolute(t) ? t : join(WORKSPACE, t)) : join(WORKSPACE, 'target');
  const bin = join(target, 'debug', 'idp');
  assert.ok(existsSync(bin), `the idp binary was not found at ${bin}; build it first: cargo build -p idp --bins (or set IDP_BIN)`);
  return bin;
}

export function chromiumBin() {
  return process.env.CHROMIUM_BIN || '/usr/bin/chromium';
}

/** 'sqlite' always; 'postgres' (Postgres + Redis) when both TEST_* URLs are set. */
export function backends() {
  const v = ['sqlite'];
  if (process.env.TEST_DATABASE_URL && process.env.TEST_REDIS_URL) v.push('postgres');
  return v;
}

// ------------------------------------------------------------------ small utilities

export const b64url = (buf) => Buffer.from(buf).toString('base64url');
export const randomB64 = (n) => b64url(randomBytes(n));
const randomHex = (n) => randomBytes(n).toString('hex');

export function pkce() {
  const verifier = randomB64(32);
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

/** Waits until `cond()` returns a truthy value (polling), or fails after `timeoutMs`. */
export async function waitFor(cond, what, timeoutMs = 10_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createNetServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function psql(url, sql) {
  try {
    await execFileP('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql]);
  } catch (e) {
    throw new Error(`psql failed (${sql}): ${e.stderr || e.message}`);
  }
}

// ------------------------------------------------------------------ the relying party

/**
 * A relying party on its own site: it listens on 127.0.0.1 but is addressed as `localhost`,
 * so for the browser it is cross-site to the IdP (http://127.0.0.1:PORT) and the two never
 * share cookies (cookies ignore ports). Records every request (method, path, query, form
 * body, headers) and answers a small HTML page. `/cb` is the redirect URI, `/logged-out` the
 * post-logout URI, and `/start?to=URL` a page with a link to URL (`#go`), so a test can
 * leave the RP for the IdP by a real cross-site click, as a user does.
 */
export async function startRp() {
  const hits = [];
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://localhost');
      const body = Buffer.concat(chunks).toString('utf8');
      const form = (req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded')
        ? Object.fromEntries(new URLSearchParams(body))
        : null;
      hits.push({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), form, headers: req.headers });
      const link = url.pathname === '/start' ? `<p><a id="go" href="${esc(url.searchParams.get('to') || '/')}">Войти через Пропуск</a></p>` : '';
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>RP</title></head><body><p id="rp">relying party: ${esc(url.pathname)}</p>${link}</body></html>`);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://localhost:${server.address().port}`;
  return {
    base,
    redirectUri: `${base}/cb`,
    postLogoutUri: `${base}/logged-out`,
    hits,
    /** Requests to `path` (optionally only `method`). */
    hitsTo: (path, method) => hits.filter((h) => h.path === path && (!method || h.method === method)),
    /** Waits for the first request to `path` and returns it. */
    waitForHit(path, method) {
      return waitFor(() => this.hitsTo(path, method)[0], `${method || 'a request'} to the RP at ${path}`);
    },
    /** Opens an RP page with a link to `url` and clicks it (a cross-site navigation). */
    async follow(page, url) {
      await page.goto(`${base}/start?to=${encodeURIComponent(url)}`);
      await page.locator('#go').click();
    },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}

// ------------------------------------------------------------------ the identity provider

/**
 * Starts a fresh `idp serve` on `backend` with a default confidential client
 * (client_secret_basic, redirect URI and post-logout URI of `rp`) and the test user.
 */
export async function startIdp({ backend = 'sqlite', rp, extraEnv = {} } = {}) {
  const bin = idpBin();
  const dir = mkdtempSync(join(tmpdir(), 'propusk-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    IDP_LISTEN: `127.0.0.1:${port}`,
    IDP_ISSUER: base,
    IDP_DEV: 'true',
    IDP_DATA_DIR: join(dir, 'data'),
    // Cheaper argon2 than production: these tests are about pages, not hashing.
    IDP_PASSWORD__MEMORY_KIB: '4096',
    IDP_PASSWORD__ITERATIONS: '1',
    IDP_WORKERS: '2',
  };
  let pg = null;
  if (backend === 'sqlite') {
    env.IDP_DATABASE_URL = `sqlite://${join(dir, 'propusk.db')}`;
  } else if (backend === 'postgres') {
    const adminUrl = process.env.TEST_DATABASE_URL;
    const name = `propusk_b_${randomHex(8)}`;
    await psql(adminUrl, `CREATE DATABASE ${name}`);
    const u = new URL(adminUrl);
    u.pathname = `/${name}`;
    env.IDP_DATABASE_URL = u.toString();
    env.IDP_DB_POOL_SIZE = '4';
    env.IDP_REDIS_URL = process.env.TEST_REDIS_URL;
    env.IDP_REDIS_PREFIX = `${name}:`;
    pg = { adminUrl, name };
  } else {
    throw new Error(`unknown backend ${backend}`);
  }
  Object.assign(env, extraEnv);

  const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IDP_')));
  Object.assign(childEnv, env, { RUST_LOG: process.env.IDP_TEST_LOG || 'info', NO_COLOR: '1' });

  const idp = {
    backend,
    base,
    dir,
    client: null,
    user: null,
    log: '',
    child: null,
    url: (path) => `${base}${path}`,
    logTail(lines = 60) {
      return this.log.split('\n').slice(-lines).join('\n');
    },
    /** Runs an `idp` subcommand; throws with its output on failure; returns stdout. */
    async cli(args) {
      try {
        const { stdout } = await execFileP(bin, args, { cwd: dir, env: childEnv, maxBuffer: 16 << 20 });
        return stdout;
      } catch (e) {
        throw new Error(`\`idp ${args.join(' ')}\` failed: ${e.message}\nstdout: ${e.stdout}\nstderr: ${e.stderr}`);
      }
    },
    async addClient({ name = 'Browser RP', redirectUris, postLogoutUris = [], method = 'client_secret_basic', scopes = [] }) {
      const args = ['clients', 'add', '--name', name];
      for (const u of redirectUris) args.push('--redirect-uri', u);
      for (const u of postLogoutUris) args.push('--post-logout-redirect-uri', u);
      args.push('--auth-method', method);
      for (const s of scopes) args.push('--scope', s);
      args.push('--json');
      const j = lastJson(await this.cli(args));
      assert.ok(j.client_id, `clients add: no client_id in ${JSON.stringify(j)}`);
      return { id: j.client_id, secret: j.client_secret ?? null, method, redirectUris, postLogoutUris };
    },
    async addUser(login, password, extra = []) {
      const j = lastJson(await this.cli(['users', 'add', '--login', login, '--password', password, ...extra, '--json']));
      assert.ok(j.sub, `users add: no sub in ${JSON.stringify(j)}`);
      return { sub: j.sub, login, password };
    },
    async stop() {
      const c = this.child;
      this.child = null;
      if (c && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (pg) {
        await psql(pg.adminUrl, `DROP DATABASE IF EXISTS ${pg.name} WITH (FORCE)`).catch((e) => console.error(`warning: ${e.message}`));
        // Best effort: this server's Redis keys (they also expire on their own).
        await execFileP('sh', ['-c', `command -v redis-cli >/dev/null && redis-cli -u "$R" --scan --pattern "${pg.name}:*" | xargs -r redis-cli -u "$R" DEL >/dev/null`], { env: { ...process.env, R: process.env.TEST_REDIS_URL } }).catch(() => {});
        pg = null;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await idp.cli(['migrate']);
    idp.client = await idp.addClient({
      redirectUris: [rp ? rp.redirectUri : 'https://rp.example.org/cb'],
      postLogoutUris: [rp ? rp.postLogoutUri : 'https://rp.example.org/logged-out'],
    });
    idp.user = await idp.addUser(LOGIN, PASSWORD, ['--given-name', GIVEN_NAME, '--family-name', FAMILY_NAME, '--email', LOGIN]);

    const child = spawn(bin, ['serve'], { cwd: dir, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    idp.child = child;
    const keep = (d) => {
      idp.log += d.toString('utf8');
      if (idp.log.length > 256 * 1024) idp.log = idp.log.slice(-128 * 1024);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`idp serve exited with ${child.exitCode}:\n${idp.logTail()}`);
      try {
        const r = await fetch(idp.url('/.well-known/openid-configuration'));
        return r.status === 200;
      } catch {
        return false;
      }
    }, `idp serve to answer discovery at ${base} (${backend})`, 20_000, 100);
  } catch (e) {
    await idp.stop().catch(() => {});
    throw e;
  }
  return idp;
}

function lastJson(stdout) {
  const line = stdout.split('\n').reverse().find((l) => l.trimStart().startsWith('{'));
  assert.ok(line, `no JSON in CLI output: ${stdout}`);
  return JSON.parse(line);
}

// ------------------------------------------------------------------ OAuth helpers

/** An authorization request: code + PKCE S256, random state and nonce. */
export function authRequest(idp, client, extra = {}) {
  const p = pkce();
  const params = {
    response_type: 'code',
    client_id: client.id,
    redirect_uri: client.redirectUris[0],
    scope: 'openid profile email',
    state: randomB64(12),
    nonce: randomB64(12),
    code_challenge: p.challenge,
    code_challenge_method: 'S256',
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) if (v === undefined) delete params[k];
  const u = new URL(idp.url('/authorize'));
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return { url: u.toString(), params, verifier: p.verifier, state: params.state, nonce: params.nonce };
}

function basicAuth(id, secret) {
  // RFC 6749 §2.3.1: form-urlencode both parts before base64.
  const enc = (s) => new URLSearchParams({ x: s }).toString().slice(2);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/** Exchanges a code at /token with client_secret_basic; returns { status, headers, json }. */
export async function exchangeCode(idp, client, code, req) {
  const r = await fetch(idp.url('/token'), {
    method: 'POST',
    headers: { authorization: basicAuth(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: req.verifier, redirect_uri: req.params.redirect_uri }),
    redirect: 'manual',
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* asserted by the caller */ }
  return { status: r.status, headers: r.headers, text, json };
}

/** Verifies an ES256 compact JWS against the server's JWKS; returns [header, claims]. */
export async function verifyIdToken(idp, jwt) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, `not a compact JWS: ${jwt}`);
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  assert.equal(header.alg, 'ES256', `ID token alg: ${JSON.stringify(header)}`);
  const jwks = await (await fetch(idp.url('/jwks'))).json();
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} not in JWKS ${JSON.stringify(jwks)}`);
  const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
  const ok = verifySig('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2], 'base64url'));
  assert.ok(ok, `ID token signature does not verify with kid ${header.kid}`);
  return [header, claims];
}

// ------------------------------------------------------------------ the browser

export async function launchBrowser() {
  const exe = chromiumBin();
  assert.ok(existsSync(exe), `Chromium not found at ${exe} (apt-get install chromium, or set CHROMIUM_BIN)`);
  return chromium.launch({ executablePath: exe, headless: true });
}

/**
 * Records console errors/warnings, uncaught page errors, CSP violations (reported from a
 * `securitypolicyviolation` listener installed before any page script) and failed
 * requests of every page of `context`. `assertClean(what)` fails with all of them.
 */
export async function watchContext(context) {
  const problems = [];
  // Console errors "Failed to load resource" for documents that are error pages on purpose
  // (HTTP 4xx answers to bad requests) are expected; the same for any sub-resource is not.
  const loadErrors = [];
  const documents = new Set();
  await context.exposeBinding('__propuskCspViolation', ({ page }, v) => {
    problems.push(`CSP violation on ${page.url()}: ${v}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      // eslint-disable-next-line no-undef
      window.__propuskCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile || ''}:${e.lineNumber || ''} ${e.sample || ''}`);
    });
  });
  const onPage = (page) => {
    page.on('console', (m) => {
      if (m.type() !== 'error' && m.type() !== 'warning') return;
      const at = m.location()?.url || '';
      const line = `console ${m.type()} on ${page.url()}: ${m.text()} [${at}]`;
      if (m.type() === 'error' && m.text().startsWith('Failed to load resource')) loadErrors.push({ at, line });
      else problems.push(line);
    });
    page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
    page.on('response', (r) => {
      const type = r.request().resourceType();
      if (type === 'document') documents.add(r.url());
      // Sub-resources (CSS, JS, icons) must load; documents may be error pages on purpose.
      else if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${type} ${r.url()} (from ${page.url()})`);
    });
    page.on('requestfailed', (r) => {
      // Navigations replaced by the next one are "aborted"; everything else is a real failure.
      const why = r.failure()?.errorText || '';
      if (!why.includes('ERR_ABORTED')) problems.push(`request failed: ${r.method()} ${r.url()}: ${why}`);
    });
  };
  context.on('page', onPage);
  for (const p of context.pages()) onPage(p);
  const all = () => [...problems, ...loadErrors.filter((e) => !documents.has(e.at)).map((e) => e.line)];
  return {
    problems: all,
    assertClean(what) {
      const found = all();
      assert.deepEqual(found, [], `${what}: the browser reported problems:\n${found.join('\n')}`);
    },
  };
}

/**
 * Checks a rendered IdP page: the stylesheet is loaded and applied, no inline script
 * (every <script> has a same-origin src, no on* attributes, no javascript: URLs), and the
 * response carries a CSP that forbids inline script.
 */
export async function assertPageHygiene(page, response, what) {
  assert.ok(response, `${what}: no response`);
  const csp = response.headers()['content-security-policy'] || '';
  assert.match(csp, /script-src 'self'/, `${what}: CSP must restrict scripts: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `${what}: CSP must not allow inline script: ${csp}`);
  assert.match(csp, /frame-ancestors 'none'/, `${what}: CSP frame-ancestors: ${csp}`);
  const facts = await page.evaluate(() => {
    const scripts = [...document.scripts].map((s) => ({ src: s.src, inline: !s.src && s.textContent.trim().length > 0 }));
    const handlers = [];
    for (const el of document.querySelectorAll('*')) {
      for (const a of el.attributes) {
        if (/^on/i.test(a.name)) handlers.push(`<${el.localName} ${a.name}>`);
        if (/^\s*javascript:/i.test(a.value)) handlers.push(`<${el.localName} ${a.name}="${a.value}">`);
      }
    }
    const sheets = [...document.styleSheets].map((s) => s.href);
    const brand = document.querySelector('.brand');
    const brandColor = brand ? getComputedStyle(brand).color : null;
    const card = document.querySelector('main.card');
    const overflow = document.documentElement.scrollWidth > document.documentElement.clientWidth;
    return {
      overflow, scripts, handlers, sheets, brandColor,
      cardMax: card ? getComputedStyle(card).maxWidth : null,
      lang: document.documentElement.lang,
      title: document.title,
      h1: document.querySelector('h1')?.textContent ?? null,
    };
  });
  assert.deepEqual(facts.scripts.filter((s) => s.inline), [], `${what}: inline script found`);
  for (const s of facts.scripts) assert.ok(s.src.startsWith(new URL(page.url()).origin + '/static/'), `${what}: script from elsewhere: ${s.src}`);
  assert.deepEqual(facts.handlers, [], `${what}: inline event handlers / javascript: URLs`);
  assert.ok(facts.sheets.some((h) => h && h.endsWith('/static/propusk.css')), `${what}: propusk.css not loaded: ${JSON.stringify(facts.sheets)}`);
  // The stylesheet is applied: the brand colour and the card width come from propusk.css.
  assert.equal(facts.brandColor, 'rgb(13, 76, 211)', `${what}: brand colour (stylesheet not applied?)`);
  assert.equal(facts.cardMax, '448px', `${what}: .card max-width (stylesheet not applied?)`);
  assert.equal(facts.overflow, false, `${what}: the page is wider than the viewport (horizontal scrolling)`);
  assert.ok(facts.title && facts.h1 && facts.h1.trim(), `${what}: page needs a title and a heading: ${JSON.stringify(facts)}`);
  assert.ok(['ru', 'en'].includes(facts.lang), `${what}: <html lang> = ${facts.lang}`);
  return facts;
}

/** Full-page screenshot to target/browser-screenshots/<name>.png (or $SCREENSHOT_DIR). */
export async function screenshot(page, name) {
  const dir = process.env.SCREENSHOT_DIR || join(WORKSPACE, 'target', 'browser-screenshots');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/**
 * Fills the login form through its labels (Russian or English) and submits it with the
 * button; returns the response to the POST (a 303 on success, the page again on failure).
 * Callers wait for the page they expect next.
 */
export async function submitLogin(page, login, password) {
  await page.getByLabel(/Телефон, почта|Phone, e-mail/).fill(login);
  await page.getByLabel(/^(Пароль|Password)$/).fill(password);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login'),
    page.getByRole('button', { name: /^(Войти|Sign in)$/ }).click(),
  ]);
  return resp;
}

/** The path of the page's current URL when it is on `base`, else null. */
export function pathOn(page, base) {
  const u = new URL(page.url());
  return u.origin === new URL(base).origin ? u.pathname : null;
}

/**
 * The whole sign-in as a user does it: from an RP page link to /authorize, the login form,
 * the consent page when it comes, back at the redirect_uri. Returns the request and the
 * code (query response mode).
 */
export async function signIn(page, idp, rp, extra = {}) {
  const req = authRequest(idp, idp.client, extra);
  await rp.follow(page, req.url);
  await page.waitForURL((u) => u.pathname === '/login' || u.href.startsWith(rp.redirectUri));
  if (pathOn(page, idp.base) === '/login') {
    await submitLogin(page, idp.user.login, idp.user.password);
    await page.waitForURL((u) => u.pathname === '/consent' || u.href.startsWith(rp.redirectUri));
  }
  if (pathOn(page, idp.base) === '/consent') {
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(rp.redirectUri)),
      page.getByRole('button', { name: /^(Разрешить|Allow)$/ }).click(),
    ]);
  }
  const cb = new URL(page.url());
  assert.equal(cb.origin + cb.pathname, rp.redirectUri, `expected to be back at the RP, at ${page.url()}`);
  const code = cb.searchParams.get('code');
  assert.ok(code, `no code in ${cb}`);
  assert.equal(cb.searchParams.get('state'), req.state);
  return { req, code };
}

/** The IdP's cookies as the browser keeps them, by name. */
export async function idpCookies(context, idp) {
  return Object.fromEntries((await context.cookies(idp.base)).map((c) => [c.name, c]));
}

// ------------------------------------------------------------------ test registration

/**
 * Registers `name` once per backend. Each run gets its own RP server, its own `idp serve`
 * and database, and a fresh browser context (`contextOptions`, e.g. { locale }) on the
 * shared browser returned by `getBrowser()`. On failure the tail of the server log is
 * attached to the error.
 */
export function idpTest(name, getBrowser, fn, { contextOptions = {}, extraEnv = {}, timeout = 90_000 } = {}) {
  for (const backend of backends()) {
    test(`${name} [${backend}]`, { timeout }, async () => {
      const rp = await startRp();
      let idp = null;
      let context = null;
      try {
        idp = await startIdp({ backend, rp, extraEnv });
        context = await getBrowser().newContext({ locale: 'ru-RU', ...contextOptions });
        const watcher = await watchContext(context);
        const page = await context.newPage();
        await fn({ idp, rp, context, page, watcher, backend });
      } catch (e) {
        if (idp) e.message += `\n--- idp log tail (${backend}, ${idp.base}) ---\n${idp.logTail()}\n--- end ---`;
        throw e;
      } finally {
        if (context) await context.close().catch(() => {});
        if (idp) await idp.stop();
        await rp.close();
      }
    });
  }
}
