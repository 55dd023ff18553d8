//! Sign-in methods beyond the password: authenticator app (TOTP, codes computed by the
//! independent `oathtool`), recovery codes, step-up by `acr_values`, and the lockout.

use serde_json::Value;

use super::browser::{exchange, expect_callback, redirect_to, Authz, Browser, Page};
use super::harness::{for_each_backend, now_secs, Idp, EMAIL};

/// Waits until the dev mailbox (dev mode) shows a message containing every `needle`.
async fn mailbox_shows(idp: &Idp, needles: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body = idp
            .http
            .get(idp.url("/dev/mailbox"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if needles.iter().all(|n| body.contains(n)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dev mailbox never showed {needles:?}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

const ACR1: &str = "urn:propusk:acr:1";
const ACR2: &str = "urn:propusk:acr:2";

/// The RFC 6238 code of `secret` (base32) at Unix time `at`, by oathtool.
fn oathtool(secret: &str, at: i64) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", secret, "-N", &format!("@{at}")])
        .output()
        .expect("oathtool is installed (scripts/ensure-services.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Enrols and confirms an authenticator app for `login`; returns its base32 secret. The
/// confirmation uses the code of the current step, so sign-ins use later steps.
async fn enrol_totp(idp: &Idp, login: &str) -> String {
    let out = idp
        .cli(&["users", "totp-enroll", "--login", login, "--json"])
        .await;
    let j: Value = serde_json::from_str(out.trim()).unwrap();
    let secret = j["secret"].as_str().unwrap().to_string();
    let uri = j["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    let code = oathtool(&secret, now_secs());
    idp.cli(&["users", "totp-confirm", "--login", login, "--code", &code])
        .await;
    secret
}

fn is_second_factor_page(p: &Page) -> bool {
    p.status == 200 && p.url.path() == "/login/second-factor"
}

async fn submit_code(b: &Browser, page: &Page, method: &str, code: &str) -> Page {
    assert!(
        is_second_factor_page(page),
        "expected the code page, got {}",
        page.describe()
    );
    let mut form = page.hidden_inputs();
    form.push(("method".into(), method.into()));
    form.push(("code".into(), code.into()));
    let p = b.post_form("/login/second-factor", &form).await;
    b.follow(p).await
}

/// Agrees on the consent page when it is shown.
async fn through_consent(b: &Browser, page: Page) -> Page {
    if page.is_consent_page() {
        return b.consent(page, "allow").await;
    }
    page
}

#[tokio::test]
async fn signin_totp_second_factor_then_replay_and_attempt_limit() {
    for_each_backend(|idp| async move {
        let secret = enrol_totp(&idp, &idp.user.login).await;
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let page = b.authorize(&idp, &a).await;
        let page = b
            .submit_login(&page, &idp.user.login, &idp.user.password)
            .await;
        assert!(is_second_factor_page(&page), "{}", page.describe());
        assert!(page.body.contains("value=\"totp\""), "{}", page.body);
        // A code of the next step (within the ±1 step window; the current one was spent
        // confirming the app).
        let code = oathtool(&secret, now_secs() + 30);
        let page = through_consent(&b, submit_code(&b, &page, "totp", &code).await).await;
        let cb = expect_callback(&idp, &page, &a);
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR2, "{}", t.claims);
        let amr: Vec<&str> = t.claims["amr"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(amr, ["pwd", "otp", "mfa"]);

        // The same code again, in a new browser: refused as used.
        let b2 = Browser::new(&idp);
        let a2 = Authz::new(&idp.client);
        let p = b2.authorize(&idp, &a2).await;
        let p = b2
            .submit_login(&p, &idp.user.login, &idp.user.password)
            .await;
        let p = submit_code(&b2, &p, "totp", &code).await;
        assert!(is_second_factor_page(&p), "{}", p.describe());
        assert!(p.body.contains("уже использован"), "{}", p.body);
        // Two more wrong codes: back to the password.
        let p = submit_code(&b2, &p, "totp", "000000").await;
        assert!(p.body.contains("Код не подходит"), "{}", p.body);
        let p = submit_code(&b2, &p, "totp", "12x").await;
        assert!(p.is_login_page(), "third wrong code: {}", p.describe());
        assert!(p.body.contains("три раза"), "{}", p.body);
        // The transaction goes on with the password again.
        let p = b2
            .submit_login(&p, &idp.user.login, &idp.user.password)
            .await;
        assert!(is_second_factor_page(&p), "{}", p.describe());
    })
    .await;
}

#[tokio::test]
async fn signin_recovery_code_once() {
    for_each_backend(|idp| async move {
        enrol_totp(&idp, &idp.user.login).await;
        let out = idp
            .cli(&[
                "users",
                "recovery-codes",
                "--login",
                &idp.user.login,
                "--json",
            ])
            .await;
        let j: Value = serde_json::from_str(out.trim()).unwrap();
        let codes: Vec<String> = j["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(codes.len(), 10);

        for (round, expect_ok) in [(0, true), (1, false)] {
            let b = Browser::new(&idp);
            let a = Authz::new(&idp.client);
            let p = b.authorize(&idp, &a).await;
            let p = b
                .submit_login(&p, &idp.user.login, &idp.user.password)
                .await;
            assert!(p.body.contains("value=\"recovery\""), "{}", p.body);
            // Typed in lower case with spaces: still the same code.
            let typed = codes[0].to_lowercase().replace('-', " ");
            let p = submit_code(&b, &p, "recovery", &typed).await;
            if expect_ok {
                // The owner hears about it at the confirmed e-mail.
                mailbox_shows(&idp, &[EMAIL, "резервный код"]).await;
                let p = through_consent(&b, p).await;
                let cb = expect_callback(&idp, &p, &a);
                let t = exchange(&idp, &idp.client, &a, cb.code()).await;
                assert_eq!(t.claims["acr"], ACR2);
            } else {
                assert!(is_second_factor_page(&p), "round {round}: {}", p.describe());
                assert!(
                    p.body.contains("Код не подходит"),
                    "a spent code is refused"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn signin_step_up_by_acr_values() {
    for_each_backend(|idp| async move {
        // Signed in with the password only.
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let cb = b.login_flow(&idp, &a).await;
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR1);

        // A portal that needs two factors, for a person who has none (no app, no confirmed
        // phone or e-mail for a code): refused, not faked.
        let bare = idp
            .add_user("bare@example.org", "Quiet-River-58&", &[])
            .await;
        let a = Authz::new(&idp.client)
            .set("acr_values", ACR2)
            .set("prompt", "login");
        let other = Browser::new(&idp);
        let p = other.authorize(&idp, &a).await;
        let p = other.submit_login(&p, &bare.login, &bare.password).await;
        let cb = redirect_to(&p, a.redirect_uri());
        assert_eq!(cb.get("error"), Some("access_denied"), "{:?}", cb.params);

        // Once an app is set up, the same session is stepped up with the code alone.
        let secret = enrol_totp(&idp, &idp.user.login).await;
        let a = Authz::new(&idp.client).set("acr_values", ACR2);
        let none = Authz::new(&idp.client)
            .set("acr_values", ACR2)
            .set("prompt", "none");
        let p = b.authorize(&idp, &none).await;
        let cb = redirect_to(&p, none.redirect_uri());
        assert_eq!(
            cb.get("error"),
            Some("interaction_required"),
            "{:?}",
            cb.params
        );
        let p = b.authorize(&idp, &a).await;
        assert!(
            is_second_factor_page(&p),
            "no password again: {}",
            p.describe()
        );
        assert!(p.body.contains("Портал просит"), "the page says why");
        let code = oathtool(&secret, now_secs() + 30);
        let p = through_consent(&b, submit_code(&b, &p, "totp", &code).await).await;
        let cb = expect_callback(&idp, &p, &a);
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR2);
        // And the stronger session now serves such requests without asking again.
        let a = Authz::new(&idp.client).set("acr_values", ACR2);
        let cb = b.login_flow(&idp, &a).await;
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR2);
    })
    .await;
}

#[tokio::test]
async fn signin_lockout_after_three_wrong_passwords_same_for_unknown_accounts() {
    for_each_backend(|idp| async move {
        for (login, real) in [
            (idp.user.login.clone(), true),
            ("nobody@example.ru".to_string(), false),
        ] {
            let b = Browser::new(&idp);
            let a = Authz::new(&idp.client);
            let mut p = b.authorize(&idp, &a).await;
            for attempt in 1..=3 {
                p = b.submit_login(&p, &login, "Wrong-Passw0rd!").await;
                assert!(p.is_login_page(), "{}", p.describe());
                let locked = p.body.contains("временно недоступен");
                assert_eq!(locked, attempt == 3, "attempt {attempt} for {login}");
            }
            // Even the right password is refused while the lock lasts (15 minutes).
            let password = if real {
                idp.user.password.clone()
            } else {
                "x".into()
            };
            p = b.submit_login(&p, &login, &password).await;
            assert!(
                p.body.contains("временно недоступен"),
                "{login}: {}",
                p.describe()
            );
        }
        // Other accounts are not affected.
        let other = idp
            .add_user("other@example.ru", "Other-Passw0rd!", &[])
            .await;
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let p = b.authorize(&idp, &a).await;
        let p = b.submit_login(&p, &other.login, &other.password).await;
        assert!(!p.is_login_page(), "{}", p.describe());
    })
    .await;
}

// ------------------------------------------------------------------ what a flood can make us hold

/// An address may start `login_tx_ip_max` sign-ins per window (each keeps a record in the
/// ephemeral store for `login_ttl_secs`). The next start gets a readable 429 page in the
/// person's language with `Retry-After` and stores nothing; the first refusal of the window
/// is audited, the rest of a flood writes nothing; sign-ins already started go on, and a
/// browser with a session gets its code without starting one.
#[tokio::test]
async fn login_starts_are_limited_per_address() {
    let env = [("IDP_LOCKOUT__LOGIN_TX_IP_MAX", "3")];
    super::harness::for_each_backend_with(&env, |mut idp| async move {
        let b = Browser::new(&idp);
        let first = Authz::new(&idp.client);
        let login = b.authorize(&idp, &first).await;
        assert!(login.is_login_page(), "{}", login.describe());
        for _ in 0..2 {
            let p = b.authorize(&idp, &Authz::new(&idp.client)).await;
            assert!(p.is_login_page(), "{}", p.describe());
        }
        let over = b.authorize(&idp, &Authz::new(&idp.client)).await;
        assert_eq!(over.status, 429, "{}", over.describe());
        assert_eq!(over.header("retry-after").as_deref(), Some("600"));
        assert!(over.body.contains("Слишком много входов"), "{}", over.body);
        let mut en = Authz::new(&idp.client);
        en.params.push(("ui_locales".into(), "en".into()));
        let over = b.authorize(&idp, &en).await;
        assert_eq!(over.status, 429, "{}", over.describe());
        assert!(over.body.contains("Too many sign-ins"), "{}", over.body);
        let audited =
            idp.sql("SELECT count(*) FROM audit_events WHERE kind = 'login.start_throttled'");
        assert_eq!(audited.trim(), "1", "one event for the window: {audited}");

        let p = b.sign_in(login, &idp.user.login, &idp.user.password).await;
        expect_callback(&idp, &p, &first);
        let again = Authz::new(&idp.client);
        let p = b.authorize(&idp, &again).await;
        expect_callback(&idp, &p, &again);
        idp.assert_alive("login starts over the limit").await;
    })
    .await;
}

/// An address over its limit of sign-in attempts is refused, the right password too, and
/// only the window's first refusal is audited: a flood of refused attempts writes nothing
/// durable.
#[tokio::test]
async fn an_addresss_refused_attempts_are_audited_once() {
    let env = [("IDP_LOCKOUT__IP_MAX_ATTEMPTS", "2")];
    super::harness::for_each_backend_with(&env, |mut idp| async move {
        let b = Browser::new(&idp);
        let login = b.authorize(&idp, &Authz::new(&idp.client)).await;
        for i in 0..6 {
            let who = format!("nobody{i}@example.ru");
            let p = b.submit_login(&login, &who, "Wrong-Passw0rd-1!").await;
            assert!(p.is_login_page(), "attempt {i}: {}", p.describe());
        }
        let p = b
            .submit_login(&login, &idp.user.login, &idp.user.password)
            .await;
        assert!(p.is_login_page(), "refused: {}", p.describe());
        let kinds = idp.audit_kinds();
        let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
        assert_eq!(count("login.failure"), 2, "{kinds:?}");
        assert_eq!(count("login.throttled"), 1, "{kinds:?}");
        assert_eq!(count("login.success"), 0, "{kinds:?}");
        idp.assert_alive("refused attempts").await;
    })
    .await;
}

/// The embedded node's in-process store has a ceiling (`ephemeral_max_mib`): a flood of
/// authorization requests (here from one address with its limit lifted; from many
/// addresses in life) fills it, after which a new sign-in gets a readable 503 page while
/// the node goes on serving what needs no new record; once the records expire, sign-ins
/// start again.
#[tokio::test]
async fn the_in_process_store_has_a_ceiling() {
    let env = [
        ("IDP_EPHEMERAL_MAX_MIB", "1"),
        ("IDP_LOCKOUT__LOGIN_TX_IP_MAX", "1000000000"),
        ("IDP_DANGER_TEST_CLOCK", "true"),
    ];
    let mut idp = Idp::start(super::harness::Backend::Sqlite, &env).await;
    let url = Authz::new(&idp.client).url(&idp);
    let mut refused = None;
    for i in 0..5_000 {
        let r = idp.http.get(&url).send().await.unwrap();
        match r.status().as_u16() {
            303 => {}
            503 => {
                let body = r.text().await.unwrap();
                assert!(body.contains("Что-то пошло не так"), "{body}");
                refused = Some(i);
                break;
            }
            other => panic!("authorize #{i}: {other} {}", r.text().await.unwrap()),
        }
    }
    // Each record counts for about 1 KB here: the ceiling of 1 MiB stops the flood after
    // several hundred, not thousands.
    let refused = refused.expect("the flood was never refused");
    assert!((300..2_000).contains(&refused), "refused after {refused}");
    for _ in 0..50 {
        let r = idp.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 503, "still full");
    }
    // A warning a second with the count, not a log line per refused request.
    let log = idp.server_log();
    let lines = log.lines().filter(|l| l.contains("store full")).count();
    assert!((1..=5).contains(&lines), "{lines} lines about it:\n{log}");
    assert_eq!(idp.discovery().await["issuer"], idp.base.as_str());
    idp.assert_alive("a full in-process store").await;

    idp.advance_clock(901).await;
    let b = Browser::new(&idp);
    let a = Authz::new(&idp.client);
    let login = b.authorize(&idp, &a).await;
    assert!(login.is_login_page(), "after expiry: {}", login.describe());
    let p = b.sign_in(login, &idp.user.login, &idp.user.password).await;
    expect_callback(&idp, &p, &a);
}
