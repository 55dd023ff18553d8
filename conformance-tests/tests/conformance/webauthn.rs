//! WebAuthn through the real endpoints, with a software authenticator written here (ECDSA
//! P-256 by ring, "none" attestation and COSE key encoded as CBOR by hand): a passkey
//! enrolled on the security page signs in alone (acr 3), a security key is a second factor
//! after the password (acr 2), and bad answers (another challenge, another origin, a
//! counter going backwards, a replayed finish, malformed JSON, an unknown key) are refused
//! with a readable page while the server stays up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::browser::{exchange, expect_callback, Authz, Browser, Page};
use super::harness::{for_each_backend, Idp};

const ACR2: &str = "urn:propusk:acr:2";
const ACR3: &str = "urn:propusk:acr:3";

// ------------------------------------------------------------------ CBOR, by hand

fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n < 256 {
        out.extend([m | 24, n as u8]);
    } else if n < 65536 {
        out.push(m | 25);
        out.extend((n as u16).to_be_bytes());
    } else {
        out.push(m | 26);
        out.extend((n as u32).to_be_bytes());
    }
}

fn cbor_int(v: i64, out: &mut Vec<u8>) {
    if v >= 0 {
        cbor_head(0, v as u64, out)
    } else {
        cbor_head(1, (-1 - v) as u64, out)
    }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len() as u64, out);
    out.extend(b);
}

fn cbor_text(s: &str, out: &mut Vec<u8>) {
    cbor_head(3, s.len() as u64, out);
    out.extend(s.as_bytes());
}

/// COSE_Key of an EC2 P-256 ES256 public key (RFC 9053 §7.1).
fn cose_key(point: &[u8]) -> Vec<u8> {
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    let mut out = Vec::new();
    cbor_head(5, 5, &mut out);
    cbor_int(1, &mut out); // kty
    cbor_int(2, &mut out); // EC2
    cbor_int(3, &mut out); // alg
    cbor_int(-7, &mut out); // ES256
    cbor_int(-1, &mut out); // crv
    cbor_int(1, &mut out); // P-256
    cbor_int(-2, &mut out); // x
    cbor_bytes(&point[1..33], &mut out);
    cbor_int(-3, &mut out); // y
    cbor_bytes(&point[33..65], &mut out);
    out
}

// ------------------------------------------------------------------ the software authenticator

const UP: u8 = 0x01;
const UV: u8 = 0x04;
/// Backup eligible and backed up: a passkey synced between devices (amr `swk`).
const BE_BS: u8 = 0x08 | 0x10;
const AT: u8 = 0x40;

struct SoftKey {
    key: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    cred_id: Vec<u8>,
    user_handle: Vec<u8>,
    rp_id: String,
    /// Extra authenticator-data flags of every response (`BE_BS` for a synced passkey).
    flags: u8,
}

/// What to get wrong in a response.
#[derive(Default, Clone)]
struct Twist<'a> {
    challenge: Option<&'a str>,
    origin: Option<&'a str>,
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })
        .to_string()
        .into_bytes()
}

fn rp_hash(rp_id: &str) -> Vec<u8> {
    Sha256::digest(rp_id.as_bytes()).to_vec()
}

impl SoftKey {
    /// `navigator.credentials.create` for `options` (the server's `options`), at `origin`.
    fn register(options: &Value, origin: &str) -> (SoftKey, String) {
        Self::register_with(options, origin, 0)
    }

    /// `register` with extra flags (`BE_BS`: a synced passkey).
    fn register_with(options: &Value, origin: &str, flags: u8) -> (SoftKey, String) {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().unwrap().to_string();
        let challenge = pk["challenge"].as_str().unwrap();
        let user_handle = B64.decode(pk["user"]["id"].as_str().unwrap()).unwrap();
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap();
        let cred_id: Vec<u8> = (0..32).map(|_| rand_byte(&rng)).collect();

        let mut auth_data = rp_hash(&rp_id);
        auth_data.push(UP | UV | AT | flags);
        auth_data.extend(0u32.to_be_bytes());
        auth_data.extend([0u8; 16]); // aaguid
        auth_data.extend((cred_id.len() as u16).to_be_bytes());
        auth_data.extend(&cred_id);
        auth_data.extend(cose_key(key.public_key().as_ref()));

        let mut att = Vec::new();
        cbor_head(5, 3, &mut att);
        cbor_text("fmt", &mut att);
        cbor_text("none", &mut att);
        cbor_text("attStmt", &mut att);
        cbor_head(5, 0, &mut att);
        cbor_text("authData", &mut att);
        cbor_bytes(&auth_data, &mut att);

        let cdj = client_data("webauthn.create", challenge, origin);
        let id = B64.encode(&cred_id);
        let body = json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": { "attestationObject": B64.encode(&att), "clientDataJSON": B64.encode(&cdj) },
            "extensions": {}
        });
        (
            SoftKey {
                key,
                pkcs8: doc.as_ref().to_vec(),
                cred_id,
                user_handle,
                rp_id,
                flags,
            },
            body.to_string(),
        )
    }

    /// `navigator.credentials.get` for `options`, with signature counter `counter`.
    fn assert(&self, options: &Value, origin: &str, counter: u32, twist: Twist<'_>) -> String {
        let pk = &options["publicKey"];
        let challenge = twist
            .challenge
            .unwrap_or_else(|| pk["challenge"].as_str().unwrap());
        let mut auth_data = rp_hash(&self.rp_id);
        auth_data.push(UP | UV | self.flags);
        auth_data.extend(counter.to_be_bytes());
        let cdj = client_data("webauthn.get", challenge, twist.origin.unwrap_or(origin));
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&cdj));
        let sig = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        let id = B64.encode(&self.cred_id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(&auth_data),
                "clientDataJSON": B64.encode(&cdj),
                "signature": B64.encode(sig.as_ref()),
                "userHandle": B64.encode(&self.user_handle)
            },
            "extensions": {}
        })
        .to_string()
    }
}

impl SoftKey {
    /// The same key pair and credential (ring key pairs are not `Clone`: rebuilt from PKCS#8).
    fn clone_key(&self) -> SoftKey {
        SoftKey {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                &self.pkcs8,
                &SystemRandom::new(),
            )
            .unwrap(),
            pkcs8: self.pkcs8.clone(),
            cred_id: self.cred_id.clone(),
            user_handle: self.user_handle.clone(),
            rp_id: self.rp_id.clone(),
            flags: self.flags,
        }
    }
}

fn rand_byte(rng: &SystemRandom) -> u8 {
    let mut b = [0u8; 1];
    ring::rand::SecureRandom::fill(rng, &mut b).unwrap();
    b[0]
}

/// The origin the server expects: in dev mode a loopback-IP issuer is served as `localhost`.
fn origin(idp: &Idp) -> String {
    idp.base.replace("127.0.0.1", "localhost")
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn json_of(p: &Page) -> Value {
    assert_eq!(p.status, 200, "{}", p.describe());
    serde_json::from_str(&p.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", p.describe()))
}

fn amr(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Waits until the dev mailbox shows `needle` (the outbox is delivered in the background).
async fn mailbox_shows(idp: &Idp, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = idp.http.get(idp.url("/dev/mailbox")).send().await.unwrap();
        let body = r.text().await.unwrap();
        if body.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dev mailbox never showed {needle:?}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The base32 secret of the otpauth URI on a page.
fn uri_secret(body: &str) -> String {
    body.split("secret=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_alphanumeric()).next())
        .expect("an otpauth URI with a secret")
        .to_string()
}

/// The current RFC 6238 code of a base32 secret, by the independent `oathtool`.
fn oathtool(secret: &str) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool is installed (scripts/ensure-services.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Signs in through the security page; returns its page.
async fn security_page(idp: &Idp, b: &Browser) -> Page {
    let page = b.navigate(&idp.url("/account/security")).await;
    let page = b
        .submit_login(&page, &idp.user.login, &idp.user.password)
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert_eq!(page.url.path(), "/account/security", "{}", page.describe());
    page
}

/// Enrols a key of `kind` from the security page.
async fn enrol(idp: &Idp, b: &Browser, page: &Page, kind: &str, name: &str) -> SoftKey {
    enrol_with(idp, b, page, kind, name, 0).await
}

/// `enrol` of a key with extra authenticator flags (`BE_BS`: a synced passkey).
async fn enrol_with(
    idp: &Idp,
    b: &Browser,
    page: &Page,
    kind: &str,
    name: &str,
    flags: u8,
) -> SoftKey {
    let csrf = page.hidden("csrf").expect("csrf on the security page");
    let start = b
        .post_form(
            "/account/security/webauthn/start",
            &form(&[("csrf", &csrf), ("kind", kind), ("name", name)]),
        )
        .await;
    let start = json_of(&start);
    if kind == "passkey" {
        assert_eq!(
            start["options"]["publicKey"]["authenticatorSelection"]["residentKey"], "required",
            "{start}"
        );
    }
    let (key, body) = SoftKey::register_with(&start["options"], &origin(idp), flags);
    let fin = form(&[
        ("csrf", &csrf),
        ("ceremony", start["ceremony"].as_str().unwrap()),
        ("credential", &body),
    ]);
    let done = b.post_form("/account/security/webauthn/finish", &fin).await;
    assert_eq!(done.status, 303, "{}", done.describe());
    let page = b.follow(done).await;
    assert!(page.body.contains(name), "{}", page.describe());

    // The same finish again: the ceremony was taken.
    let again = b.post_form("/account/security/webauthn/finish", &fin).await;
    assert_eq!(again.status, 400, "{}", again.describe());
    assert!(
        again.body.contains("устарел или уже использован"),
        "{}",
        again.describe()
    );
    key
}

/// Starts a passkey sign-in on a login page: (tx, csrf, options, ceremony).
async fn passkey_start(b: &Browser, login: &Page) -> (String, String, Value, String) {
    assert!(login.is_login_page(), "{}", login.describe());
    assert!(
        login.body.contains("autocomplete=\"username webauthn\""),
        "conditional UI needs the autofill token"
    );
    assert!(login.body.contains("/static/webauthn.js"));
    let tx = login.hidden("tx").unwrap();
    let csrf = login.hidden("csrf").unwrap();
    let s = b
        .post_form(
            "/login/passkey/start",
            &form(&[("tx", &tx), ("csrf", &csrf)]),
        )
        .await;
    let s = json_of(&s);
    assert_eq!(s["options"]["mediation"], "conditional", "{s}");
    let ceremony = s["ceremony"].as_str().unwrap().to_string();
    (tx, csrf, s["options"].clone(), ceremony)
}

async fn passkey_finish(b: &Browser, tx: &str, csrf: &str, ceremony: &str, cred: &str) -> Page {
    let p = b
        .post_form(
            "/login/passkey/finish",
            &form(&[
                ("tx", tx),
                ("csrf", csrf),
                ("ceremony", ceremony),
                ("credential", cred),
            ]),
        )
        .await;
    b.follow(p).await
}

/// A refused passkey answer: the login page again, with `needle` in its alert.
fn refused(p: &Page, needle: &str) {
    assert!(
        p.status == 200 && p.body.contains("action=\"/login\""),
        "expected the login page: {}",
        p.describe()
    );
    assert!(
        p.body.contains("role=\"alert\"") && p.body.contains(needle),
        "expected {needle:?}: {}",
        p.describe()
    );
}

#[tokio::test]
async fn webauthn_passkey_enrol_sign_in_and_bad_answers() {
    for_each_backend(|mut idp| async move {
        let b = Browser::new(&idp);
        let page = security_page(&idp, &b).await;
        let key = enrol(&idp, &b, &page, "passkey", "Мой ноутбук").await;
        let o = origin(&idp);

        // Sign in to a portal with the passkey alone.
        let b2 = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let login = b2.authorize(&idp, &a).await;
        let (tx, csrf, opts, cer) = passkey_start(&b2, &login).await;

        // Bad answers first, each on a fresh ceremony of the same sign-in.
        let wrong_challenge = key.assert(
            &opts,
            &o,
            1,
            Twist {
                challenge: Some(&B64.encode([7u8; 32])),
                ..Twist::default()
            },
        );
        let p = passkey_finish(&b2, &tx, &csrf, &cer, &wrong_challenge).await;
        refused(&p, "другому запросу");

        let (_, _, opts, cer) = passkey_start(&b2, &login).await;
        let evil = key.assert(
            &opts,
            &o,
            1,
            Twist {
                origin: Some("https://evil.example"),
                ..Twist::default()
            },
        );
        let p = passkey_finish(&b2, &tx, &csrf, &cer, &evil).await;
        refused(&p, "другого сайта");

        let (_, _, _, cer) = passkey_start(&b2, &login).await;
        let p = passkey_finish(&b2, &tx, &csrf, &cer, "{\"id\": [1, 2").await;
        refused(&p, "не удалось прочитать");

        let (_, _, opts, cer) = passkey_start(&b2, &login).await;
        let stranger = SoftKey {
            cred_id: vec![9; 32],
            ..SoftKey::register(&opts_for_register(&opts), &o).0
        };
        let p = passkey_finish(
            &b2,
            &tx,
            &csrf,
            &cer,
            &stranger.assert(&opts, &o, 1, Twist::default()),
        )
        .await;
        refused(&p, "не привязан");

        // The right key claiming to be another user (another user handle): refused too.
        let (_, _, opts, cer) = passkey_start(&b2, &login).await;
        let impostor = SoftKey {
            user_handle: vec![1; 16],
            ..key.clone_key()
        };
        let p = passkey_finish(
            &b2,
            &tx,
            &csrf,
            &cer,
            &impostor.assert(&opts, &o, 2, Twist::default()),
        )
        .await;
        refused(&p, "не привязан");

        // The right answer.
        let (_, _, opts, cer) = passkey_start(&b2, &login).await;
        let good = key.assert(&opts, &o, 5, Twist::default());
        let page = passkey_finish(&b2, &tx, &csrf, &cer, &good).await;
        let page = if page.is_consent_page() {
            b2.consent(page, "allow").await
        } else {
            page
        };
        let cb = expect_callback(&idp, &page, &a);
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR3, "{}", t.claims);
        assert_eq!(amr(&t.claims), ["hwk", "user", "mfa"]);
        assert_eq!(t.claims["sub"], idp.user.sub.as_str());

        // Replaying the finish that worked: the ceremony is gone.
        let b3 = Browser::new(&idp);
        let login3 = b3.authorize(&idp, &Authz::new(&idp.client)).await;
        let (tx3, csrf3, opts3, cer3) = passkey_start(&b3, &login3).await;
        let p = passkey_finish(&b3, &tx3, &csrf3, &cer, &good).await;
        refused(&p, "устарел или уже использован");

        // A counter that went backwards (5 was seen): a cloned key, refused.
        let cloned = key.assert(&opts3, &o, 3, Twist::default());
        let p = passkey_finish(&b3, &tx3, &csrf3, &cer3, &cloned).await;
        refused(&p, "счётчик");
        mailbox_shows(&idp, "счётчик подписей уменьшился").await;

        // A ceremony of another sign-in (b2's tx is spent; b3 starts, b2's browser finishes).
        let (_, _, opts4, cer4) = passkey_start(&b3, &login3).await;
        let b4 = Browser::new(&idp);
        let login4 = b4.authorize(&idp, &Authz::new(&idp.client)).await;
        let (tx4, csrf4, _, _) = passkey_start(&b4, &login4).await;
        let other = key.assert(&opts4, &o, 6, Twist::default());
        let p = passkey_finish(&b4, &tx4, &csrf4, &cer4, &other).await;
        refused(&p, "другому запросу");

        // The security page shows the last use.
        let page = b.navigate(&idp.url("/account/security")).await;
        assert!(page.body.contains("Мой ноутбук"), "{}", page.describe());
        assert!(page.body.contains("последний вход"), "{}", page.describe());
        // The owner was told about the new passkey (dev mailbox: the outbox's dev channel).
        mailbox_shows(&idp, "добавлен ключ доступа").await;
        // Every refusal is in the audit trail with its precise reason.
        let kinds = idp.audit_kinds();
        for k in ["passkey.enrolled", "login.passkey", "login.passkey_failure"] {
            assert!(kinds.iter().any(|x| x == k), "{k} not in {kinds:?}");
        }
        let reasons =
            idp.sql("SELECT detail FROM audit_events WHERE kind = 'login.passkey_failure'");
        for r in [
            "wrong_challenge",
            "wrong_origin",
            "malformed",
            "unknown_credential",
            "no_ceremony",
            "counter_regression",
            "other_browser",
        ] {
            assert!(reasons.contains(r), "no {r} in {reasons}");
        }
        // The user handle is random, not the sub or the login.
        let handle = idp.sql("SELECT handle FROM webauthn_handles");
        let handle = handle.trim();
        assert_eq!(handle.len(), 36, "a UUID: {handle}");
        assert!(handle != idp.user.sub && handle != idp.user.login);
        idp.assert_alive("bad WebAuthn answers").await;
    })
    .await;
}

/// Registration-shaped options from request options (for a stranger's key of the same site).
fn opts_for_register(req: &Value) -> Value {
    json!({ "publicKey": {
        "rp": { "id": req["publicKey"]["rpId"] },
        "challenge": req["publicKey"]["challenge"],
        "user": { "id": B64.encode([1u8; 16]) }
    }})
}

async fn sk_start(b: &Browser, tx: &str, csrf: &str) -> Value {
    let f = form(&[("tx", tx), ("csrf", csrf)]);
    json_of(&b.post_form("/login/security-key/start", &f).await)
}

async fn sk_finish(b: &Browser, tx: &str, csrf: &str, cer: &str, cred: &str) -> Page {
    let f = form(&[
        ("tx", tx),
        ("csrf", csrf),
        ("ceremony", cer),
        ("credential", cred),
    ]);
    let p = b.post_form("/login/security-key/finish", &f).await;
    b.follow(p).await
}

#[tokio::test]
async fn webauthn_security_key_second_factor() {
    for_each_backend(|mut idp| async move {
        let b = Browser::new(&idp);
        let page = security_page(&idp, &b).await;
        let key = enrol(&idp, &b, &page, "security_key", "YubiKey").await;
        let o = origin(&idp);

        let b2 = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let login = b2.authorize(&idp, &a).await;
        let page = b2
            .submit_login(&login, &idp.user.login, &idp.user.password)
            .await;
        assert_eq!(
            page.url.path(),
            "/login/second-factor",
            "{}",
            page.describe()
        );
        assert!(
            page.body.contains("security-key-form"),
            "{}",
            page.describe()
        );
        let tx = page.hidden("tx").unwrap();
        let csrf = page.hidden("csrf").unwrap();
        let s = sk_start(&b2, &tx, &csrf).await;
        assert!(
            s["options"]["publicKey"]["allowCredentials"][0]["id"].is_string(),
            "{s}"
        );
        // Another origin: refused on the second-factor page, the sign-in goes on.
        let evil = key.assert(
            &s["options"],
            &o,
            1,
            Twist {
                origin: Some("http://localhost:1"),
                ..Twist::default()
            },
        );
        let p = sk_finish(&b2, &tx, &csrf, s["ceremony"].as_str().unwrap(), &evil).await;
        // The second-factor page again, with the reason.
        assert_eq!(p.status, 200, "{}", p.describe());
        assert!(p.body.contains("security-key-form"), "{}", p.describe());
        assert!(p.body.contains("другого сайта"), "{}", p.describe());

        let s = sk_start(&b2, &tx, &csrf).await;
        let good = key.assert(&s["options"], &o, 1, Twist::default());
        let page = sk_finish(&b2, &tx, &csrf, s["ceremony"].as_str().unwrap(), &good).await;
        let page = if page.is_consent_page() {
            b2.consent(page, "allow").await
        } else {
            page
        };
        let cb = expect_callback(&idp, &page, &a);
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR2, "{}", t.claims);
        assert_eq!(amr(&t.claims), ["pwd", "hwk", "mfa"]);
        idp.assert_alive("security key sign-in").await;
    })
    .await;
}

#[tokio::test]
async fn webauthn_security_page_needs_session_and_confirmation() {
    for_each_backend(|idp| async move {
        // Without a session: the sign-in page, which comes back here.
        let b = Browser::new(&idp);
        let p = b.navigate(&idp.url("/account/security")).await;
        assert!(p.is_login_page(), "{}", p.describe());
        let page = security_page(&idp, &b).await;
        // A change without the page's CSRF token is refused.
        let p = b
            .post_form("/account/security/recovery", &form(&[("csrf", "forged")]))
            .await;
        assert_eq!(p.status, 403, "{}", p.describe());
        let p = b
            .post_form(
                "/account/security/webauthn/start",
                &form(&[("csrf", "forged"), ("kind", "passkey")]),
            )
            .await;
        assert_eq!(p.status, 403, "{}", p.describe());
        // Recovery codes, shown once.
        let csrf = page.hidden("csrf").unwrap();
        let p = b
            .post_form("/account/security/recovery", &form(&[("csrf", &csrf)]))
            .await;
        assert_eq!(p.status, 200, "{}", p.describe());
        assert!(p.body.contains("recovery-codes"), "{}", p.describe());
        let codes: Vec<String> = p
            .body
            .split("<code>")
            .skip(1)
            .filter_map(|c| c.split("</code>").next())
            .map(str::to_string)
            .collect();
        assert_eq!(codes.len(), 10, "{}", p.describe());
        // An authenticator app: a QR code drawn as SVG and the otpauth URI.
        let p = b
            .post_form("/account/security/totp", &form(&[("csrf", &csrf)]))
            .await;
        assert_eq!(p.status, 200, "{}", p.describe());
        assert!(p.body.contains("<svg"), "{}", p.describe());
        assert!(p.body.contains("otpauth://totp/"), "{}", p.describe());
        // A wrong first code keeps it unconfirmed.
        let id = p.hidden("id").unwrap();
        let p = b
            .post_form(
                "/account/security/totp/confirm",
                &form(&[("csrf", &csrf), ("id", &id), ("code", "000000")]),
            )
            .await;
        assert_eq!(p.status, 400, "{}", p.describe());
        // The right first code (computed by oathtool from the URI's secret) confirms it.
        let secret = uri_secret(&p.body);
        let code = oathtool(&secret);
        let p = b
            .post_form(
                "/account/security/totp/confirm",
                &form(&[("csrf", &csrf), ("id", &id), ("code", &code)]),
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.describe());
        let page = b.follow(p).await;
        assert!(
            page.body.contains("Приложение-аутентификатор"),
            "{}",
            page.describe()
        );
        mailbox_shows(&idp, "подключено приложение-аутентификатор").await;
        // Confirming with a code: a wrong one is refused, a recovery code is accepted (once).
        let confirm = |code: &str| form(&[("csrf", &csrf), ("method", "code"), ("code", code)]);
        let p = b
            .post_form("/account/security/confirm", &confirm("ZZZZZ-ZZZZZ"))
            .await;
        assert_eq!(p.status, 400, "{}", p.describe());
        assert!(p.body.contains("Код не подходит"), "{}", p.describe());
        let p = b
            .post_form("/account/security/confirm", &confirm(&codes[0]))
            .await;
        assert_eq!(p.status, 303, "{}", p.describe());
        let p = b
            .post_form("/account/security/confirm", &confirm(&codes[0]))
            .await;
        assert_eq!(
            p.status,
            400,
            "a recovery code works once: {}",
            p.describe()
        );
        // Removing the app.
        let factor = page
            .body
            .split("value=\"totp:")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(|id| format!("totp:{id}"))
            .expect("a remove form for the app");
        let p = b
            .post_form(
                "/account/security/remove",
                &form(&[("csrf", &csrf), ("factor", &factor)]),
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.describe());
        let page = b.follow(p).await;
        assert!(
            !page.body.contains("Приложение-аутентификатор"),
            "{}",
            page.describe()
        );
        let p = b
            .post_form(
                "/account/security/remove",
                &form(&[("csrf", &csrf), ("factor", &factor)]),
            )
            .await;
        assert_eq!(p.status, 400, "nothing left to remove: {}", p.describe());
        let kinds = idp.audit_kinds();
        for k in [
            "recovery_codes.issued",
            "totp.enrolment_started",
            "totp.enrolment_failure",
            "totp.enrolled",
            "account.confirm_failure",
            "account.confirmed",
            "factor.removed",
        ] {
            assert!(kinds.iter().any(|x| x == k), "{k} not in {kinds:?}");
        }
        // Malformed start input: a clear 4xx, not a 500.
        let p = b
            .post_form(
                "/account/security/webauthn/start",
                &form(&[("csrf", &csrf), ("kind", "fingerprint")]),
            )
            .await;
        assert_eq!(p.status, 400, "{}", p.describe());
        let p = b
            .post_form(
                "/account/security/webauthn/finish",
                &form(&[("csrf", &csrf), ("ceremony", "nope"), ("credential", "{}")]),
            )
            .await;
        assert_eq!(p.status, 400, "{}", p.describe());
    })
    .await;
}

// ------------------------------------------------------------------ step-up to acr 3

const ACR1: &str = "urn:propusk:acr:1";

/// Follows consent (allowing) when it comes.
async fn past_consent(b: &Browser, page: Page) -> Page {
    if page.is_consent_page() {
        b.consent(page, "allow").await
    } else {
        page
    }
}

/// The step-up page: (tx, csrf), after checking it is that page.
fn step_up_page(p: &Page) -> (String, String) {
    assert_eq!(p.status, 200, "{}", p.describe());
    // The page itself, or a refused finish rendered in place.
    assert!(
        p.url.path().starts_with("/login/passkey-step-up"),
        "{}",
        p.describe()
    );
    assert!(
        p.body
            .contains("data-start=\"/login/passkey-step-up/start\""),
        "{}",
        p.describe()
    );
    (p.hidden("tx").unwrap(), p.hidden("csrf").unwrap())
}

async fn step_up_start(b: &Browser, tx: &str, csrf: &str) -> (Value, String) {
    let s = b
        .post_form(
            "/login/passkey-step-up/start",
            &form(&[("tx", tx), ("csrf", csrf)]),
        )
        .await;
    let s = json_of(&s);
    (
        s["options"].clone(),
        s["ceremony"].as_str().unwrap().to_string(),
    )
}

async fn step_up_finish(b: &Browser, tx: &str, csrf: &str, cer: &str, cred: &str) -> Page {
    let p = b
        .post_form(
            "/login/passkey-step-up/finish",
            &form(&[
                ("tx", tx),
                ("csrf", csrf),
                ("ceremony", cer),
                ("credential", cred),
            ]),
        )
        .await;
    b.follow(p).await
}

#[tokio::test]
async fn webauthn_acr3_steps_up_to_a_passkey() {
    for_each_backend(|mut idp| async move {
        let b = Browser::new(&idp);
        let page = security_page(&idp, &b).await;
        // A synced passkey (backup eligible): amr `swk`.
        let key = enrol_with(&idp, &b, &page, "passkey", "Телефон", BE_BS).await;
        let sk = enrol(&idp, &b, &page, "security_key", "YubiKey").await;
        let o = origin(&idp);
        let cred_id = B64.encode(&key.cred_id);

        // A portal that needs acr 3: the sign-in page leads with the passkey.
        let b2 = Browser::new(&idp);
        let a = Authz::new(&idp.client).set("acr_values", ACR3);
        let login = b2.authorize(&idp, &a).await;
        assert!(login.is_login_page(), "{}", login.describe());
        let (first, password) = (
            login.body.find("id=\"passkey-form\"").unwrap(),
            login.body.find("action=\"/login\"").unwrap(),
        );
        assert!(first < password, "passkey first: {}", login.describe());
        assert!(login.body.contains("id=\"passkey-required\""));

        // The password, then the passkey (not a second factor, although the person has one).
        let p = b2
            .submit_login(&login, &idp.user.login, &idp.user.password)
            .await;
        let (tx, csrf) = step_up_page(&p);
        // The second-factor endpoints do not finish this sign-in.
        let sf = b2
            .navigate(&idp.url(&format!("/login/second-factor?tx={tx}")))
            .await;
        step_up_page(&sf);
        let r = b2
            .post_form(
                "/login/security-key/start",
                &form(&[("tx", &tx), ("csrf", &csrf)]),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.describe());
        // No code is sent for it either: back to the passkey page.
        let sent = b2
            .post_form(
                "/login/otp/send",
                &form(&[("tx", &tx), ("csrf", &csrf), ("channel", "sms")]),
            )
            .await;
        step_up_page(&b2.follow(sent).await);
        let (opts, cer) = step_up_start(&b2, &tx, &csrf).await;
        // Restricted to this person's passkeys.
        let allowed = opts["publicKey"]["allowCredentials"].as_array().unwrap();
        assert_eq!(allowed.len(), 1, "{opts}");
        assert_eq!(allowed[0]["id"], cred_id.as_str(), "{opts}");
        // The security key is not a passkey: refused, the page again with the reason.
        let wrong = sk.assert(&opts, &o, 1, Twist::default());
        let p = step_up_finish(&b2, &tx, &csrf, &cer, &wrong).await;
        step_up_page(&p);
        assert!(p.body.contains("role=\"alert\""), "{}", p.describe());
        let (opts, cer) = step_up_start(&b2, &tx, &csrf).await;
        let evil = key.assert(
            &opts,
            &o,
            1,
            Twist {
                origin: Some("https://evil.example"),
                ..Twist::default()
            },
        );
        let p = step_up_finish(&b2, &tx, &csrf, &cer, &evil).await;
        step_up_page(&p);
        assert!(p.body.contains("другого сайта"), "{}", p.describe());
        let (opts, cer) = step_up_start(&b2, &tx, &csrf).await;
        let good = key.assert(&opts, &o, 1, Twist::default());
        let p = past_consent(&b2, step_up_finish(&b2, &tx, &csrf, &cer, &good).await).await;
        let cb = expect_callback(&idp, &p, &a);
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR3, "{}", t.claims);
        assert_eq!(amr(&t.claims), ["pwd", "swk", "user", "mfa"]);

        // A session at acr 2 (password + security key) and a request for acr 3.
        let b3 = Browser::new(&idp);
        let a2 = Authz::new(&idp.client).set("acr_values", ACR2);
        let login = b3.authorize(&idp, &a2).await;
        let p = b3
            .submit_login(&login, &idp.user.login, &idp.user.password)
            .await;
        assert_eq!(p.url.path(), "/login/second-factor", "{}", p.describe());
        let (tx2, csrf2) = (p.hidden("tx").unwrap(), p.hidden("csrf").unwrap());
        let s = sk_start(&b3, &tx2, &csrf2).await;
        let ok = sk.assert(&s["options"], &o, 2, Twist::default());
        let p = past_consent(
            &b3,
            sk_finish(&b3, &tx2, &csrf2, s["ceremony"].as_str().unwrap(), &ok).await,
        )
        .await;
        let cb = expect_callback(&idp, &p, &a2);
        let t = exchange(&idp, &idp.client, &a2, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR2, "{}", t.claims);
        // prompt=none cannot step up.
        let none = Authz::new(&idp.client)
            .set("acr_values", ACR3)
            .set("prompt", "none");
        let p = b3.authorize(&idp, &none).await;
        super::browser::expect_error_redirect(&idp, &p, &none, "interaction_required");
        // Otherwise the passkey, straight away (no password).
        let a3 = Authz::new(&idp.client).set("acr_values", ACR3);
        let p = b3.authorize(&idp, &a3).await;
        let (tx3, csrf3) = step_up_page(&p);
        let (opts, cer) = step_up_start(&b3, &tx3, &csrf3).await;
        let good = key.assert(&opts, &o, 2, Twist::default());
        let p = past_consent(&b3, step_up_finish(&b3, &tx3, &csrf3, &cer, &good).await).await;
        let cb = expect_callback(&idp, &p, &a3);
        let t = exchange(&idp, &idp.client, &a3, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR3, "{}", t.claims);
        assert_eq!(amr(&t.claims), ["pwd", "hwk", "mfa", "swk", "user"]);
        // The stepped-up session now serves acr 3 without asking.
        let a4 = Authz::new(&idp.client).set("acr_values", ACR3);
        let p = b3.authorize(&idp, &a4).await;
        expect_callback(&idp, &p, &a4);

        let kinds = idp.audit_kinds();
        for k in ["login.passkey_step_up", "login.passkey_failure"] {
            assert!(kinds.iter().any(|x| x == k), "{k} not in {kinds:?}");
        }
        idp.assert_alive("passkey step-up").await;
    })
    .await;
}

/// The page that explains a missing passkey, then `access_denied` at the portal.
async fn no_passkey_then_denied(idp: &Idp, b: &Browser, p: Page, a: &Authz) {
    assert_eq!(p.status, 200, "{}", p.describe());
    assert_eq!(p.url.path(), "/login/passkey-needed", "{}", p.describe());
    for needle in [
        "Нужен вход с ключом доступа",
        "Как добавить ключ доступа",
        "href=\"/account/security\"",
        "Вернуться на портал",
    ] {
        assert!(p.body.contains(needle), "{needle:?}: {}", p.describe());
    }
    let r = b
        .post_form("/login/passkey-needed", &p.hidden_inputs())
        .await;
    let cb = super::browser::expect_error_redirect(idp, &r, a, "access_denied");
    assert!(
        cb.get("error_description")
            .is_some_and(|d| d.contains("passkey")),
        "{}",
        cb.url
    );
    // The transaction is over: the same button again is a readable page.
    let again = b
        .post_form("/login/passkey-needed", &p.hidden_inputs())
        .await;
    assert_eq!(again.status, 400, "{}", again.describe());
}

#[tokio::test]
async fn webauthn_acr3_without_a_passkey_explains_and_returns() {
    // No client cache: `clients set-min-acr` below applies at once.
    let env = [("IDP_CLIENT_CACHE_SECS", "0")];
    super::harness::for_each_backend_with(&env, |mut idp| async move {
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client).set("acr_values", ACR3);
        let login = b.authorize(&idp, &a).await;
        let p = b
            .submit_login(&login, &idp.user.login, &idp.user.password)
            .await;
        no_passkey_then_denied(&idp, &b, p, &a).await;
        // English too.
        let en = Authz::new(&idp.client)
            .set("acr_values", ACR3)
            .set("ui_locales", "en");
        let login = b.authorize(&idp, &en).await;
        let p = b
            .submit_login(&login, &idp.user.login, &idp.user.password)
            .await;
        assert!(p.body.contains("How to add a passkey"), "{}", p.describe());

        // A session at acr 1, then a portal that needs acr 3: the page straight away.
        let b2 = Browser::new(&idp);
        let a1 = Authz::new(&idp.client);
        let cb = b2.login_flow(&idp, &a1).await;
        let t = exchange(&idp, &idp.client, &a1, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR1, "{}", t.claims);
        let none = Authz::new(&idp.client)
            .set("acr_values", ACR3)
            .set("prompt", "none");
        let p = b2.authorize(&idp, &none).await;
        super::browser::expect_error_redirect(&idp, &p, &none, "interaction_required");
        let a3 = Authz::new(&idp.client).set("acr_values", ACR3);
        let p = b2.authorize(&idp, &a3).await;
        no_passkey_then_denied(&idp, &b2, p, &a3).await;
        // A client setting asks the same without acr_values (`clients set-min-acr`); `none`
        // lifts it again.
        let id = idp.client.id.clone();
        idp.cli(&["clients", "set-min-acr", &id, "--acr", ACR3])
            .await;
        let b3 = Browser::new(&idp);
        let plain = Authz::new(&idp.client);
        let login = b3.authorize(&idp, &plain).await;
        let p = b3
            .submit_login(&login, &idp.user.login, &idp.user.password)
            .await;
        no_passkey_then_denied(&idp, &b3, p, &plain).await;
        idp.cli(&["clients", "set-min-acr", &id, "--acr", "none"])
            .await;
        let b4 = Browser::new(&idp);
        let cb = b4.login_flow(&idp, &plain).await;
        let t = exchange(&idp, &idp.client, &plain, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR1, "{}", t.claims);
        let kinds = idp.audit_kinds();
        for k in ["login.passkey_needed", "login.passkey_declined"] {
            assert!(kinds.iter().any(|x| x == k), "{k} not in {kinds:?}");
        }
        idp.assert_alive("acr 3 without a passkey").await;
    })
    .await;
}

#[tokio::test]
async fn webauthn_ceremony_starts_are_rate_limited() {
    let env = [
        ("IDP_LOCKOUT__CEREMONY_BINDING_MAX", "3"),
        ("IDP_LOCKOUT__CEREMONY_IP_MAX", "5"),
    ];
    super::harness::for_each_backend_with(&env, |mut idp| async move {
        let b = Browser::new(&idp);
        let start = |login: &Page| {
            form(&[
                ("tx", &login.hidden("tx").unwrap()),
                ("csrf", &login.hidden("csrf").unwrap()),
            ])
        };
        let login = b.authorize(&idp, &Authz::new(&idp.client)).await;
        let f = start(&login);
        for _ in 0..3 {
            let r = b.post_form("/login/passkey/start", &f).await;
            json_of(&r);
        }
        // The fourth of one sign-in: 429, readable JSON, Retry-After.
        let r = b.post_form("/login/passkey/start", &f).await;
        assert_eq!(r.status, 429, "{}", r.describe());
        assert!(r.header("retry-after").is_some(), "{}", r.describe());
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"], "too_many_requests", "{v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("Слишком много запросов")),
            "{v}"
        );
        // A fresh sign-in from the same address: one more, then the address is spent.
        let a = Authz::new(&idp.client);
        let login = b.authorize(&idp, &a).await;
        let f = start(&login);
        json_of(&b.post_form("/login/passkey/start", &f).await);
        let r = b.post_form("/login/passkey/start", &f).await;
        assert_eq!(r.status, 429, "{}", r.describe());
        // Every start endpoint counts (the step-up and the security key too).
        let r = b.post_form("/login/security-key/start", &f).await;
        assert_eq!(r.status, 429, "{}", r.describe());
        let limits = idp.sql("SELECT detail FROM audit_events WHERE kind = 'webauthn.throttled'");
        assert!(
            limits.contains("binding") && limits.contains("ip"),
            "{limits}"
        );
        assert_eq!(
            limits.lines().filter(|l| !l.trim().is_empty()).count(),
            2,
            "each limit's first refusal only, not one event per refused start: {limits}"
        );
        // Password sign-in is not affected.
        let p = b.sign_in(login, &idp.user.login, &idp.user.password).await;
        expect_callback(&idp, &p, &a);
        // The security page's ceremonies count against the same address limit.
        let page = b.navigate(&idp.url("/account/security")).await;
        let csrf = page.hidden("csrf").expect("csrf");
        for (path, extra) in [
            ("/account/security/confirm-key/start", None),
            (
                "/account/security/webauthn/start",
                Some(("kind", "passkey")),
            ),
        ] {
            let mut fields = vec![("csrf", csrf.as_str())];
            fields.extend(extra);
            let r = b.post_form(path, &form(&fields)).await;
            assert_eq!(r.status, 429, "{path}: {}", r.describe());
        }
        idp.assert_alive("a flood of ceremony starts").await;
    })
    .await;
}

// ------------------------------------------------------------------ recent confirmation

/// Asks for new recovery codes (a change that needs a recent confirmation): the codes, or
/// `None` when the page asked to confirm first.
async fn new_codes(b: &Browser, csrf: &str) -> Option<Vec<String>> {
    let p = b
        .post_form("/account/security/recovery", &form(&[("csrf", csrf)]))
        .await;
    if p.body.contains("Сначала подтвердите") {
        return None;
    }
    assert_eq!(p.status, 200, "{}", p.describe());
    let codes: Vec<String> = p
        .body
        .split("<code>")
        .skip(1)
        .filter_map(|c| c.split("</code>").next())
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 10, "{}", p.describe());
    Some(codes)
}

#[tokio::test]
async fn webauthn_recent_confirmation_expires_after_five_minutes() {
    // Without the switch the clock cannot be moved.
    for_each_backend(|idp| async move {
        let r = idp
            .http
            .post(idp.url("/dev/clock/advance"))
            .form(&[("secs", "60")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    })
    .await;
    let env = [("IDP_DANGER_TEST_CLOCK", "true")];
    super::harness::for_each_backend_with(&env, |mut idp| async move {
        let b = Browser::new(&idp);
        let page = security_page(&idp, &b).await;
        let csrf = page.hidden("csrf").unwrap();
        // The sign-in itself is a confirmation for 5 minutes...
        new_codes(&b, &csrf).await.expect("right after sign-in");
        idp.advance_clock(299).await;
        let codes = new_codes(&b, &csrf).await.expect("4:59 after sign-in");
        // ...and no longer.
        idp.advance_clock(2).await;
        assert!(new_codes(&b, &csrf).await.is_none(), "5:01 after sign-in");
        // A confirmation (a recovery code here) opens another 5 minutes.
        let p = b
            .post_form(
                "/account/security/confirm",
                &form(&[("csrf", &csrf), ("method", "code"), ("code", &codes[0])]),
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.describe());
        idp.advance_clock(290).await;
        new_codes(&b, &csrf)
            .await
            .expect("4:50 after the confirmation");
        // The confirmation record holds its time, judged by the server's clock on every
        // backend (Redis's own TTL only cleans up).
        idp.advance_clock(11).await;
        assert!(
            new_codes(&b, &csrf).await.is_none(),
            "5:01 after the confirmation"
        );
        let kinds = idp.audit_kinds();
        assert!(kinds.iter().any(|k| k == "account.confirmed"), "{kinds:?}");
        idp.assert_alive("the test clock").await;
    })
    .await;
}
