//! One-time codes by SMS and e-mail as the second factor (codes read from the dev mailbox),
//! the last-used method offered first, wrong / expired / replayed / malformed codes, the
//! resend cooldown and budget, and remember-me against the idle timeout.

use std::time::Duration;

use super::browser::{exchange, expect_callback, redirect_to, Authz, Browser, Page};
use super::harness::{for_each_backend, for_each_backend_with, Idp, EMAIL, PHONE};

pub const ACR2: &str = "urn:propusk:acr:2";

/// The messages of the dev mailbox to `to`, newest first: (subject + text).
pub async fn mailbox_texts(idp: &Idp, to: &str) -> Vec<String> {
    let body = idp
        .http
        .get(idp.url("/dev/mailbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.split("<li>")
        .skip(1)
        .filter(|li| li.contains(&format!("→ {to} ·")))
        .map(|li| li.split("</li>").next().unwrap_or("").to_string())
        .collect()
}

/// The 6-digit code of a message text, if it has one.
pub fn code_in(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(text[start..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Waits for a code message to `to` beyond the first `seen` ones; returns its code.
pub async fn next_code(idp: &Idp, to: &str, seen: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let codes: Vec<String> = mailbox_texts(idp, to)
            .await
            .iter()
            .filter_map(|t| code_in(t))
            .collect();
        if codes.len() > seen {
            return codes[0].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new code to {to} in the dev mailbox"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// How many code messages went to `to` so far.
pub async fn codes_sent(idp: &Idp, to: &str) -> usize {
    mailbox_texts(idp, to)
        .await
        .iter()
        .filter(|t| code_in(t).is_some())
        .count()
}

pub fn is_second_factor_page(p: &Page) -> bool {
    p.status == 200 && p.url.path() == "/login/second-factor"
}

/// Asks for a code through `method` (`sms`, `voice`, `email`); returns the next page
/// (redirects inside the issuer followed).
pub async fn ask_code(b: &Browser, page: &Page, method: &str) -> Page {
    let mut form: Vec<(String, String)> = page
        .hidden_inputs()
        .into_iter()
        .filter(|(n, _)| n == "tx" || n == "csrf")
        .collect();
    form.sort();
    form.dedup();
    form.push(("channel".into(), method.into()));
    let p = b.post_form("/login/otp/send", &form).await;
    b.follow(p).await
}

pub async fn enter_code(b: &Browser, page: &Page, method: &str, code: &str) -> Page {
    let mut form: Vec<(String, String)> = page
        .hidden_inputs()
        .into_iter()
        .filter(|(n, _)| n == "tx" || n == "csrf")
        .collect();
    form.sort();
    form.dedup();
    form.push(("method".into(), method.into()));
    form.push(("code".into(), code.into()));
    let p = b.post_form("/login/second-factor", &form).await;
    b.follow(p).await
}

pub async fn through_consent(b: &Browser, page: Page) -> Page {
    if page.is_consent_page() {
        return b.consent(page, "allow").await;
    }
    page
}

fn amr_of(claims: &serde_json::Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Password, then the second-factor page of a portal that asks for two factors.
async fn to_second_factor(idp: &Idp, b: &Browser, a: &Authz) -> Page {
    let page = b.authorize(idp, a).await;
    let page = b
        .submit_login(&page, &idp.user.login, &idp.user.password)
        .await;
    assert!(is_second_factor_page(&page), "{}", page.describe());
    page
}

#[tokio::test]
async fn otp_sms_and_email_codes_sign_in_with_amr_and_last_used_first() {
    for_each_backend(|idp| async move {
        // SMS: the portal asks for two factors; the person has a confirmed phone.
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client).set("acr_values", ACR2);
        let page = to_second_factor(&idp, &b, &a).await;
        assert!(page.body.contains("value=\"sms\""), "{}", page.body);
        assert!(page.body.contains("+7 *** ***-45-67"), "{}", page.body);
        let seen = codes_sent(&idp, PHONE).await;
        let page = ask_code(&b, &page, "sms").await;
        assert!(is_second_factor_page(&page), "{}", page.describe());
        assert!(
            page.body.contains("Код отправлен: +7 *** ***-45-67"),
            "{}",
            page.body
        );
        let code = next_code(&idp, PHONE, seen).await;
        let page = through_consent(&b, enter_code(&b, &page, "sms", &code).await).await;
        let cb = expect_callback(&idp, &page, &a);
        let t = exchange(&idp, &idp.client, &a, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR2, "{}", t.claims);
        assert_eq!(amr_of(&t.claims), ["pwd", "sms", "mfa"]);
        assert!(
            !idp.server_log().contains(&code),
            "a code must never reach the log"
        );

        // Next sign-in (another browser): SMS is offered first.
        let b2 = Browser::new(&idp);
        let a2 = Authz::new(&idp.client).set("acr_values", ACR2);
        let page = to_second_factor(&idp, &b2, &a2).await;
        assert!(page.body.contains("value=\"sms\" checked"), "{}", page.body);
        // E-mail this time: amr `otp` (RFC 8176 has no e-mail value).
        let seen = codes_sent(&idp, EMAIL).await;
        let page = ask_code(&b2, &page, "email").await;
        assert!(page.body.contains("i***@example.ru"), "{}", page.body);
        let code = next_code(&idp, EMAIL, seen).await;
        let page = through_consent(&b2, enter_code(&b2, &page, "email", &code).await).await;
        let cb = expect_callback(&idp, &page, &a2);
        let t = exchange(&idp, &idp.client, &a2, cb.code()).await;
        assert_eq!(t.claims["acr"], ACR2);
        assert_eq!(amr_of(&t.claims), ["pwd", "otp", "mfa"]);

        // And now e-mail comes first.
        let b3 = Browser::new(&idp);
        let a3 = Authz::new(&idp.client).set("acr_values", ACR2);
        let page = to_second_factor(&idp, &b3, &a3).await;
        assert!(
            page.body.contains("value=\"email\" checked"),
            "{}",
            page.body
        );

        // A voice call reads the code out: amr `tel` (RFC 8176 "telephone call").
        let seen = codes_sent(&idp, PHONE).await;
        let page = ask_code(&b3, &page, "voice").await;
        let code = next_code(&idp, PHONE, seen).await;
        let page = through_consent(&b3, enter_code(&b3, &page, "voice", &code).await).await;
        let cb = expect_callback(&idp, &page, &a3);
        let t = exchange(&idp, &idp.client, &a3, cb.code()).await;
        assert_eq!(amr_of(&t.claims), ["pwd", "tel", "mfa"]);

        // Without acr_values, a confirmed phone alone does not turn two factors on.
        let b4 = Browser::new(&idp);
        let a4 = Authz::new(&idp.client);
        let page = b4.authorize(&idp, &a4).await;
        let page = b4.sign_in(page, &idp.user.login, &idp.user.password).await;
        expect_callback(&idp, &page, &a4);
    })
    .await;
}

#[tokio::test]
async fn otp_wrong_expired_replayed_and_malformed_codes() {
    let env = [
        ("IDP_OTP__CODE_TTL_SECS", "2"),
        ("IDP_OTP__RESEND_AFTER_SECS", "1"),
    ];
    for_each_backend_with(&env, |mut idp| async move {
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client).set("acr_values", ACR2);
        let page = to_second_factor(&idp, &b, &a).await;
        // A code before any was asked for.
        let p = enter_code(&b, &page, "sms", "123456").await;
        assert!(p.body.contains("Запросите новый код"), "{}", p.body);

        let seen = codes_sent(&idp, PHONE).await;
        let page = ask_code(&b, &page, "sms").await;
        let code = next_code(&idp, PHONE, seen).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let p = enter_code(&b, &page, "sms", "12ab").await;
        assert_eq!(p.status, 200, "{}", p.describe());
        assert!(p.body.contains("6 цифр"), "malformed: {}", p.body);
        let p = enter_code(&b, &p, "sms", wrong).await;
        assert!(p.body.contains("Осталось попыток: 2"), "wrong: {}", p.body);

        // Expired (the test TTL is 2 s).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let p = enter_code(&b, &p, "sms", &code).await;
        assert!(p.body.contains("Код недействителен"), "expired: {}", p.body);
        assert!(!p.is_consent_page());

        // A new code works once; the same form again is refused with a readable page.
        let seen = codes_sent(&idp, PHONE).await;
        let p = ask_code(&b, &p, "sms").await;
        let code = next_code(&idp, PHONE, seen).await;
        let mut form: Vec<(String, String)> = p
            .hidden_inputs()
            .into_iter()
            .filter(|(n, _)| n == "tx" || n == "csrf")
            .collect();
        form.sort();
        form.dedup();
        form.push(("method".into(), "sms".into()));
        form.push(("code".into(), code.clone()));
        let first = b.post_form("/login/second-factor", &form).await;
        assert!(first.is_redirect(), "{}", first.describe());
        let replay = b.post_form("/login/second-factor", &form).await;
        assert_eq!(replay.status, 400, "replay: {}", replay.describe());
        assert!(replay.is_html());
        let page = through_consent(&b, b.follow(first).await).await;
        let cb = expect_callback(&idp, &page, &a);
        exchange(&idp, &idp.client, &a, cb.code()).await;

        // Three wrong codes send the person back to the password.
        let b2 = Browser::new(&idp);
        let a2 = Authz::new(&idp.client).set("acr_values", ACR2);
        let page = to_second_factor(&idp, &b2, &a2).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let seen = codes_sent(&idp, PHONE).await;
        let page = ask_code(&b2, &page, "sms").await;
        let code = next_code(&idp, PHONE, seen).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let p = enter_code(&b2, &page, "sms", wrong).await;
        let p = enter_code(&b2, &p, "sms", wrong).await;
        let p = enter_code(&b2, &p, "sms", wrong).await;
        assert!(p.is_login_page(), "{}", p.describe());
        assert!(p.body.contains("три раза"), "{}", p.body);
        let kinds = idp.audit_kinds();
        assert!(
            kinds
                .iter()
                .filter(|k| *k == "login.second_factor_failure")
                .count()
                >= 6,
            "wrong, malformed, expired and replayed codes are audited: {kinds:?}"
        );
        idp.assert_alive("after bad codes").await;
    })
    .await;
}

#[tokio::test]
async fn otp_resend_flood_is_refused_with_the_wait() {
    let env = [
        ("IDP_OTP__RESEND_AFTER_SECS", "2"),
        ("IDP_OTP__MAX_SENDS", "2"),
    ];
    for_each_backend_with(&env, |idp| async move {
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client).set("acr_values", ACR2);
        let page = to_second_factor(&idp, &b, &a).await;
        let seen = codes_sent(&idp, PHONE).await;
        let page = ask_code(&b, &page, "sms").await;
        assert!(is_second_factor_page(&page));
        // At once again: refused, with the seconds to wait.
        let p = ask_code(&b, &page, "sms").await;
        assert_eq!(p.status, 429, "{}", p.describe());
        assert!(
            p.body.contains("Новый код можно запросить через"),
            "{}",
            p.body
        );
        for _ in 0..5 {
            let p = ask_code(&b, &page, "sms").await;
            assert_eq!(p.status, 429);
        }
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let page = ask_code(&b, &page, "sms").await;
        assert!(is_second_factor_page(&page), "{}", page.describe());
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // The budget (2 per hour in this test) is used up.
        let p = ask_code(&b, &page, "voice").await;
        assert_eq!(p.status, 429, "{}", p.describe());
        assert!(p.body.contains("Слишком много запросов кода"), "{}", p.body);
        // Only the two allowed codes went out (voice goes to the same phone).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(codes_sent(&idp, PHONE).await, seen + 2);
        // Each refusal is audited.
        let kinds = idp.audit_kinds();
        assert!(
            kinds.iter().filter(|k| *k == "otp.send_refused").count() >= 7,
            "{kinds:?}"
        );
        assert_eq!(kinds.iter().filter(|k| *k == "otp.sent").count(), 2);
        // A bad method is a readable 400.
        let p = ask_code(&b, &page, "pigeon").await;
        assert_eq!(p.status, 400, "{}", p.describe());
    })
    .await;
}

/// Signs in (password only), with or without "remember me"; returns the Set-Cookie of the
/// session.
async fn sign_in_remember(idp: &Idp, b: &Browser, remember: bool) -> String {
    let a = Authz::new(&idp.client);
    let page = b.authorize(idp, &a).await;
    assert!(page.is_login_page(), "{}", page.describe());
    let mut form = page.hidden_inputs();
    form.push(("identifier".into(), idp.user.login.clone()));
    form.push(("password".into(), idp.user.password.clone()));
    if remember {
        form.push(("remember".into(), "on".into()));
    }
    let p = b.post_form("/login", &form).await;
    let cookie = p
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("propusk_session="))
        .unwrap_or_else(|| panic!("no session cookie: {}", p.describe()));
    let page = through_consent(b, b.follow(p).await).await;
    expect_callback(idp, &page, &a);
    cookie
}

/// Whether the browser's session still serves a prompt=none request.
async fn sso_works(idp: &Idp, b: &Browser) -> bool {
    let a = Authz::new(&idp.client).set("prompt", "none");
    let page = b.authorize(idp, &a).await;
    let cb = redirect_to(&page, a.redirect_uri());
    match cb.get("error") {
        None => true,
        Some("login_required") => false,
        Some(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn remember_me_outlives_the_idle_timeout() {
    let env = [("IDP_SESSION__IDLE_TIMEOUT_SECS", "3")];
    for_each_backend_with(&env, |idp| async move {
        let plain = Browser::new(&idp);
        let remembered = Browser::new(&idp);
        let unused = Browser::new(&idp);
        let c1 = sign_in_remember(&idp, &plain, false).await;
        let c2 = sign_in_remember(&idp, &remembered, true).await;
        sign_in_remember(&idp, &unused, false).await;
        assert!(
            !c1.to_ascii_lowercase().contains("max-age"),
            "a browser-session cookie: {c1}"
        );
        assert!(c2.contains("Max-Age=2592000"), "a 30-day cookie: {c2}");
        // Every use extends the idle period.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(sso_works(&idp, &plain).await, "used within the idle time");
        }
        tokio::time::sleep(Duration::from_millis(4000)).await;
        assert!(!sso_works(&idp, &plain).await, "idle too long");
        assert!(
            sso_works(&idp, &remembered).await,
            "remember me has no idle limit"
        );
        // The idle session stays ended.
        assert!(!sso_works(&idp, &plain).await);
        // Without prompt=none an idle session asks for a sign-in, it gives no code; nor
        // does it get the page that refuses a signed-in person too low a level for the
        // portal (the gate's refusal is given only to a session still in use).
        let level = [
            "clients",
            "set-min-level",
            &idp.client.id,
            "--level",
            "standard",
        ];
        idp.cli(&level).await;
        let page = unused.authorize(&idp, &Authz::new(&idp.client)).await;
        assert!(page.is_login_page(), "{}", page.describe());
        let page = remembered.authorize(&idp, &Authz::new(&idp.client)).await;
        assert_eq!(
            page.status,
            403,
            "a session in use is refused: {}",
            page.describe()
        );
        let ended = idp.audit_kinds();
        let ended = ended.iter().filter(|k| *k == "session.idle_timeout");
        assert_eq!(ended.count(), 2, "each idle session is ended once");
    })
    .await;
}

#[tokio::test]
async fn sign_in_without_second_factor_page_has_recovery_links() {
    for_each_backend(|idp| async move {
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let page = b.authorize(&idp, &a).await;
        assert!(page.body.contains("/recover/password?tx="), "{}", page.body);
        assert!(page.body.contains("/recover/login?tx="), "{}", page.body);
    })
    .await;
}
