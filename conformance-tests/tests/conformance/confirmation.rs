//! Confirming an account without an operator (issue 5). By a qualified electronic signature:
//! a test CA made with the openssl CLI stands for an accredited one; the citizen's
//! certificate carries SNILS and surname as the qualified profile does; the challenge is
//! signed with `openssl cms -sign` (detached), as a citizen would outside the browser. By a
//! bank: a client approved for `propusk:confirm` calls `POST /api/v1/confirmations` with a
//! client-credentials token. Every test runs on both backends.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::browser::{Browser, Page};
use super::harness::{for_each_backend_with, ClientSpec, HttpResp, Idp};

const PASSWORD: &str = "Zx9#mQ2!vLp4";
const SNILS: &str = "11223344595";
const OTHER_SNILS: &str = "12345678964";

fn run(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CA, certificates it issued, and a self-signed impostor.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.self_signed(
            "ca",
            "/CN=Test Qualified CA",
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        pki.issue("good", "Смирнова", SNILS);
        pki.issue("other", "Смирнова", OTHER_SNILS);
        pki.issue("renamed", "Кузнецова", SNILS);
        // Right SNILS and name, but not from the trusted CA.
        let subj = format!("/SN=Смирнова/GN=Анна Петровна/CN=Смирнова Анна/SNILS={SNILS}");
        pki.self_signed("rogue", &subj, &[]);
        pki
    }

    /// `<name>.key` and a self-signed `<name>.pem` (P-256, 30 days).
    fn self_signed(&self, name: &str, subj: &str, extra: &[&str]) {
        let (key, cert) = (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.pem")),
        );
        let mut args = vec![
            "req",
            "-x509",
            "-nodes",
            "-utf8",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-days",
            "30",
            "-subj",
            subj,
        ];
        args.extend_from_slice(extra);
        args.extend(["-keyout", key.as_str(), "-out", cert.as_str()]);
        run(&args);
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn issue(&self, name: &str, surname: &str, snils: &str) {
        let subj = format!("/SN={surname}/GN=Анна Петровна/CN={surname} Анна/SNILS={snils}");
        let (key, csr, cert) = (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.csr")),
            self.path(&format!("{name}.pem")),
        );
        run(&[
            "req",
            "-new",
            "-nodes",
            "-utf8",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-subj",
            &subj,
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(&ext, "keyUsage=critical,digitalSignature,nonRepudiation\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.path("ca.pem"),
            "-CAkey",
            &self.path("ca.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
    }

    /// A detached CMS signature (PEM) of `text` by the certificate `name`.
    fn sign(&self, name: &str, text: &str) -> String {
        let msg = self.path("challenge.txt");
        std::fs::write(&msg, text).unwrap();
        let out = run(&[
            "cms",
            "-sign",
            "-binary",
            "-in",
            &msg,
            "-signer",
            &self.path(&format!("{name}.pem")),
            "-inkey",
            &self.path(&format!("{name}.key")),
            "-outform",
            "PEM",
        ]);
        String::from_utf8(out).unwrap()
    }
}

fn unescape(s: &str) -> String {
    s.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
}

/// The challenge shown on the page (the read-only textarea).
fn challenge_of(page: &Page) -> String {
    let body = &page.body;
    let start = body
        .find("id=\"challenge\"")
        .unwrap_or_else(|| panic!("no challenge: {}", page.describe()));
    let open = start + body[start..].find('>').unwrap() + 1;
    let close = open + body[open..].find("</textarea>").unwrap();
    unescape(&body[open..close])
}

fn csrf_of(page: &Page) -> String {
    page.hidden_inputs()
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no csrf: {}", page.describe()))
}

async fn show(idp: &Idp, login: &str) -> Value {
    let out = idp
        .cli(&["users", "show", "--login", login, "--json"])
        .await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("users show: {e}: {out}"))
}

const PAGE: &str = "/account/profile/certificate";

/// Opens the certificate page, signs its challenge with `cert` (or sends `raw`), posts it.
async fn attempt(b: &Browser, idp: &Idp, pki: &Pki, cert: Option<&str>, raw: &str) -> Page {
    let page = b.navigate(&idp.url(PAGE)).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let signature = match cert {
        Some(c) => pki.sign(c, &challenge_of(&page)),
        None => raw.to_string(),
    };
    let form = vec![
        ("csrf".to_string(), csrf_of(&page)),
        ("signature".to_string(), signature),
    ];
    b.post_form(PAGE, &form).await
}

/// A signed-in browser on the profile of a new account `login` (Смирнова Анна Петровна, born
/// 1985-04-17) that the simulated registry raised to standard.
async fn standard_account(idp: &Idp, login: &str) -> Browser {
    idp.add_user(
        login,
        PASSWORD,
        &[
            ("--family-name", "Смирнова"),
            ("--given-name", "Анна"),
            ("--middle-name", "Петровна"),
            ("--birthdate", "1985-04-17"),
        ],
    )
    .await;
    let b = Browser::new(idp);
    let page = b.navigate(&idp.url("/account/profile")).await;
    let profile = b.sign_in(page, login, PASSWORD).await;
    let profile = b.follow(profile).await;
    assert_eq!(profile.status, 200, "{}", profile.describe());
    // A simplified account must first have its documents checked.
    let page = b.navigate(&idp.url(PAGE)).await;
    assert!(
        page.body.contains("id=\"certificate-unavailable\""),
        "{}",
        page.describe()
    );
    submit_documents(idp, &b).await;
    wait_for_level(idp, login, "standard").await;
    b
}

/// The identity form of the profile page (SNILS + passport), for the simulated registry.
async fn submit_documents(idp: &Idp, b: &Browser) {
    let profile = b.navigate(&idp.url("/account/profile")).await;
    // The page has several forms; the identity form's only hidden field is the CSRF token.
    let mut form = vec![("csrf".to_string(), profile.hidden("csrf").expect("csrf"))];
    for (k, v) in [
        ("family_name", "Смирнова"),
        ("given_name", "Анна"),
        ("middle_name", "Петровна"),
        ("birth_date", "17.04.1985"),
        ("birth_place", "г. Великий Новгород"),
        ("snils", SNILS),
        ("passport_series", "4508"),
        ("passport_number", "731904"),
        ("passport_issue_date", "20.05.2005"),
        ("passport_issued_by", "ОВД Тверского района г. Москвы"),
        ("passport_division_code", "770-001"),
    ] {
        form.push((k.to_string(), v.to_string()));
    }
    let sent = b.post_form("/account/profile/identity", &form).await;
    assert!(sent.status < 400, "{}", sent.describe());
}

async fn wait_for_level(idp: &Idp, login: &str, level: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while show(idp, login).await["level"] != level {
        assert!(Instant::now() < deadline, "never {level}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn assert_refused(page: &Page, reason: &str) {
    assert_eq!(page.status, 400, "{reason}: {}", page.describe());
    assert!(
        page.body.contains(&format!("data-reason=\"{reason}\"")),
        "expected {reason}: {}",
        page.describe()
    );
}

#[tokio::test]
async fn identity_confirmed_by_qualified_certificate() {
    let pki = Pki::new();
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();
    let env: &[(&str, &str)] = &[
        ("IDP_IDENTITY__QUALIFIED_CA_FILE", ca),
        ("IDP_IDENTITY__REGISTRY__POLL_INTERVAL_SECS", "1"),
    ];
    let pki = &pki;
    for_each_backend_with(env, |idp| async move {
        let login = "cert-anna@example.ru";
        let b = standard_account(&idp, login).await;

        // No challenge drawn in this session yet (the page was only seen while simplified).
        let csrf = b
            .navigate(&idp.url("/account/profile"))
            .await
            .hidden("csrf")
            .expect("csrf");
        let early = vec![
            ("csrf".to_string(), csrf),
            ("signature".to_string(), pki.sign("good", "anything")),
        ];
        assert_refused(&b.post_form(PAGE, &early).await, "expired_challenge");

        // Refusals, each with its reason; the level does not move.
        assert_refused(
            &attempt(&b, &idp, pki, Some("other"), "").await,
            "snils_mismatch",
        );
        assert_refused(
            &attempt(&b, &idp, pki, Some("renamed"), "").await,
            "name_mismatch",
        );
        assert_refused(
            &attempt(&b, &idp, pki, Some("rogue"), "").await,
            "untrusted",
        );
        assert_refused(
            &attempt(&b, &idp, pki, None, "not a signature").await,
            "malformed",
        );
        // A signature of an earlier challenge does not fit the new one.
        let stale = pki.sign("good", "Propusk: an old challenge\n");
        assert_refused(&attempt(&b, &idp, pki, None, &stale).await, "bad_signature");
        // A signature of a challenge that was spent (by a failed attempt) does not fit the
        // one drawn after it.
        let page = b.navigate(&idp.url(PAGE)).await;
        let signature = pki.sign("good", &challenge_of(&page));
        let csrf = csrf_of(&page);
        let spend = vec![
            ("csrf".to_string(), csrf.clone()),
            ("signature".to_string(), "x".to_string()),
        ];
        assert_refused(&b.post_form(PAGE, &spend).await, "malformed");
        let replay = vec![
            ("csrf".to_string(), csrf),
            ("signature".to_string(), signature),
        ];
        assert_refused(&b.post_form(PAGE, &replay).await, "bad_signature");
        // A wrong CSRF token is refused before anything else.
        let forged = b
            .post_form(
                PAGE,
                &[
                    ("csrf".to_string(), "forged".to_string()),
                    ("signature".to_string(), "x".to_string()),
                ],
            )
            .await;
        assert_eq!(forged.status, 400, "{}", forged.describe());
        assert_eq!(show(&idp, login).await["level"], "standard");

        // The right certificate confirms the account, recorded with issuer and serial.
        let done = attempt(&b, &idp, pki, Some("good"), "").await;
        assert_eq!(done.status, 200, "{}", done.describe());
        assert!(
            done.body.contains("id=\"certificate-done\""),
            "{}",
            done.describe()
        );
        let v = show(&idp, login).await;
        assert_eq!(v["level"], "confirmed", "{v}");
        assert_eq!(v["trusted"], true, "{v}");
        assert_eq!(v["confirmation"]["method"], "certificate", "{v}");
        let by = v["confirmation"]["by"].as_str().unwrap();
        assert!(
            by.contains("Test Qualified CA") && by.contains("serial"),
            "{by}"
        );
        let kinds = idp.audit_kinds();
        assert!(kinds.iter().any(|k| k == "user.confirmed"), "{kinds:?}");
        let refusals = kinds
            .iter()
            .filter(|k| *k == "identity.certificate_refused")
            .count();
        assert!(refusals >= 7, "{kinds:?}");
        let again = b.navigate(&idp.url(PAGE)).await;
        assert!(
            again.body.contains("id=\"certificate-unavailable\""),
            "{}",
            again.describe()
        );
    })
    .await;
}

#[tokio::test]
async fn identity_certificate_page_without_trusted_roots_says_so() {
    for_each_backend_with(&[], |idp| async move {
        let b = Browser::new(&idp);
        let page = b.navigate(&idp.url("/account/profile")).await;
        let login = idp.user.login.clone();
        let next = b.sign_in(page, &login, &idp.user.password).await;
        let _ = b.follow(next).await;
        let page = b.navigate(&idp.url(PAGE)).await;
        assert_eq!(page.status, 200, "{}", page.describe());
        assert!(
            page.body.contains("id=\"certificate-unavailable\""),
            "{}",
            page.describe()
        );
        let form = vec![
            ("csrf".to_string(), "x".to_string()),
            ("signature".to_string(), "x".to_string()),
        ];
        let posted = b.post_form(PAGE, &form).await;
        assert!(posted.status < 500, "{}", posted.describe());
    })
    .await;
}

async fn bank_call(idp: &Idp, token: Option<&str>, body: &str) -> HttpResp {
    let mut req = idp
        .http
        .post(idp.url("/api/v1/confirmations"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    HttpResp::read(req.send().await.unwrap()).await
}

fn customer(snils: &str, birth_date: &str) -> String {
    serde_json::json!({
        "snils": snils,
        "family_name": "СМИРНОВА",
        "given_name": "Анна",
        "middle_name": "Петровна",
        "birth_date": birth_date,
    })
    .to_string()
}

#[tokio::test]
async fn identity_confirmed_by_bank() {
    let env: &[(&str, &str)] = &[("IDP_IDENTITY__REGISTRY__POLL_INTERVAL_SECS", "1")];
    for_each_backend_with(env, |idp| async move {
        let bank = idp
            .add_client(ClientSpec {
                name: "Demo Bank",
                grant_types: &["client_credentials"],
                scopes: &["propusk:confirm"],
                ..ClientSpec::default()
            })
            .await;
        let token_of = |r: HttpResp| {
            assert_eq!(r.status, 200, "token: {}", r.body);
            r.json()["access_token"].as_str().unwrap().to_string()
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", "propusk:confirm"),
        ];
        let token = token_of(idp.post_client_auth("/token", &bank, &form).await);
        // A client without the scope cannot ask for it, and its tokens do not pass.
        let other = idp
            .add_client(ClientSpec {
                name: "Shop",
                grant_types: &["client_credentials"],
                ..ClientSpec::default()
            })
            .await;
        let denied = idp.post_client_auth("/token", &other, &form).await;
        assert_eq!(denied.status, 400, "{}", denied.body);
        let plain = token_of(
            idp.post_client_auth("/token", &other, &[("grant_type", "client_credentials")])
                .await,
        );
        let body = customer(SNILS, "1985-04-17");
        let r = bank_call(&idp, Some(&plain), &body).await;
        r.assert_oauth_error("token without the scope", 403, "insufficient_scope");
        let r = bank_call(&idp, None, &body).await;
        r.assert_oauth_error("no token", 401, "invalid_token");
        let r = bank_call(&idp, Some("not-a-token"), &body).await;
        r.assert_oauth_error("garbage token", 401, "invalid_token");
        // Malformed requests.
        for bad in [
            "{".to_string(),
            "{}".to_string(),
            customer("112-233-445 96", "1985-04-17"),
            customer(SNILS, "17 April"),
            serde_json::json!({"snils": SNILS, "family_name": "Смирнова", "given_name": "Анна",
                "birth_date": "1985-04-17", "extra": 1})
            .to_string(),
        ] {
            let r = bank_call(&idp, Some(&token), &bad).await;
            r.assert_oauth_error(&format!("body {bad}"), 400, "invalid_request");
        }
        // Nobody has this SNILS yet.
        let r = bank_call(&idp, Some(&token), &body).await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.json()["error"], "not_found");

        // A simplified account with that SNILS recorded (not verified by the registry).
        let simple = "bank-simple@example.ru";
        idp.add_user(
            simple,
            PASSWORD,
            &[
                ("--family-name", "Смирнова"),
                ("--given-name", "Анна"),
                ("--middle-name", "Петровна"),
                ("--birthdate", "1985-04-17"),
            ],
        )
        .await;
        idp.cli(&[
            "users",
            "set-identifiers",
            "--login",
            simple,
            "--snils",
            OTHER_SNILS,
        ])
        .await;
        let r = bank_call(&idp, Some(&token), &customer(OTHER_SNILS, "1985-04-17")).await;
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.json()["error"], "not_standard");

        let login = "bank-anna@example.ru";
        let _b = standard_account(&idp, login).await;
        // Another birth date: the same answer as an unknown SNILS.
        let r = bank_call(&idp, Some(&token), &customer(SNILS, "1985-04-18")).await;
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(show(&idp, login).await["level"], "standard");

        let r = bank_call(&idp, Some(&token), &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        assert_eq!(j["result"], "confirmed", "{j}");
        assert_eq!(j["level"], "confirmed", "{j}");
        let v = show(&idp, login).await;
        assert_eq!(v["level"], "confirmed", "{v}");
        assert_eq!(v["oid"], j["oid"], "{v}");
        assert_eq!(v["confirmation"]["method"], "bank", "{v}");
        let by = v["confirmation"]["by"].as_str().unwrap();
        assert!(by.contains("Demo Bank") && by.contains(&bank.id), "{by}");
        let r = bank_call(&idp, Some(&token), &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["result"], "already_confirmed");
        let kinds = idp.audit_kinds();
        assert!(kinds.iter().any(|k| k == "user.confirmed"), "{kinds:?}");
        assert!(
            kinds
                .iter()
                .any(|k| k == "identity.bank_confirmation_refused"),
            "{kinds:?}"
        );
    })
    .await;
}
