//! Forgot password (code from the dev mailbox, new password, every session ended), forgot
//! login, identical answers and timing for unknown contacts, change password (other sessions
//! end, refresh tokens of other sessions revoked, owner alerted), temporary passwords.

use std::time::{Duration, Instant};

use super::browser::{exchange, expect_callback, redirect_to, Authz, Browser, Page};
use super::harness::{for_each_backend, for_each_backend_with, Idp, EMAIL, PHONE};
use super::otp::{codes_sent, mailbox_texts, next_code, through_consent};

const NEW_PASSWORD: &str = "Fresh-Meadow-42%";

fn form_of(page: &Page, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = page
        .hidden_inputs()
        .into_iter()
        .filter(|(n, _)| n == "tx" || n == "csrf")
        .collect();
    form.sort();
    form.dedup();
    for (k, v) in extra {
        form.push((k.to_string(), v.to_string()));
    }
    form
}

/// Whether the browser's session still serves a prompt=none request.
async fn sso_works(idp: &Idp, b: &Browser) -> bool {
    let a = Authz::new(&idp.client).set("prompt", "none");
    let page = b.authorize(idp, &a).await;
    redirect_to(&page, a.redirect_uri()).get("error").is_none()
}

/// Signs in with the default account and a password; returns the refresh token.
async fn signed_in_browser(idp: &Idp, password: &str) -> (Browser, Option<String>) {
    let b = Browser::new(idp);
    let a = Authz::new(&idp.client).set("scope", "openid offline_access");
    let page = b.authorize(idp, &a).await;
    let page = b.sign_in(page, &idp.user.login, password).await;
    let cb = expect_callback(idp, &page, &a);
    let t = exchange(idp, &idp.client, &a, cb.code()).await;
    (b, t.refresh_token)
}

/// The sign-in page of a fresh transaction, then the forgot-password contact step.
async fn forgot_start(idp: &Idp, b: &Browser, flow: &str) -> Page {
    let a = Authz::new(&idp.client);
    let login = b.authorize(idp, &a).await;
    assert!(login.is_login_page(), "{}", login.describe());
    let tx = login.hidden("tx").unwrap();
    let page = b.get(&idp.url(&format!("/recover/{flow}?tx={tx}"))).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(page.body.contains("name=\"contact\""), "{}", page.body);
    page
}

/// Posts a contact; returns (the answer, how long it took).
async fn post_contact(b: &Browser, page: &Page, flow: &str, contact: &str) -> (Page, Duration) {
    let t = Instant::now();
    let p = b
        .post_form(
            &format!("/recover/{flow}"),
            &form_of(page, &[("contact", contact)]),
        )
        .await;
    let took = t.elapsed();
    (b.follow(p).await, took)
}

#[tokio::test]
async fn recovery_forgot_password_end_to_end_ends_every_session() {
    for_each_backend(|idp| async move {
        let (old_browser, refresh) = signed_in_browser(&idp, &idp.user.password).await;
        assert!(sso_works(&idp, &old_browser).await);

        let b = Browser::new(&idp);
        let page = forgot_start(&idp, &b, "password").await;
        // A contact that is neither phone nor e-mail: a precise answer.
        let (bad, _) = post_contact(&b, &page, "password", "not a contact").await;
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("номер телефона"), "{}", bad.body);

        let seen = codes_sent(&idp, PHONE).await;
        let (code_page, _) = post_contact(&b, &page, "password", "8 (900) 123-45-67").await;
        assert_eq!(
            code_page.url.path(),
            "/recover/password/code",
            "{}",
            code_page.describe()
        );
        let code = next_code(&idp, PHONE, seen).await;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let p = b
            .post_form(
                "/recover/password/code",
                &form_of(&code_page, &[("code", wrong)]),
            )
            .await;
        assert_eq!(p.status, 400);
        assert!(p.body.contains("Осталось попыток: 2"), "{}", p.body);
        let p = b
            .post_form(
                "/recover/password/code",
                &form_of(&code_page, &[("code", &code)]),
            )
            .await;
        let new_page = b.follow(p).await;
        assert_eq!(
            new_page.url.path(),
            "/recover/password/new",
            "{}",
            new_page.describe()
        );
        // The code cannot be used twice.
        let p = b
            .post_form(
                "/recover/password/code",
                &form_of(&code_page, &[("code", &code)]),
            )
            .await;
        assert!(p.body.contains("уже использован"), "{}", p.body);

        // A weak password is refused by the policy, with the reasons.
        let p = b
            .post_form(
                "/recover/password/new",
                &form_of(
                    &new_page,
                    &[("new_password", "qwerty"), ("confirm", "qwerty")],
                ),
            )
            .await;
        assert_eq!(p.status, 400);
        assert!(p.body.contains("не короче"), "{}", p.body);
        let p = b
            .post_form(
                "/recover/password/new",
                &form_of(
                    &new_page,
                    &[("new_password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)],
                ),
            )
            .await;
        let login = b.follow(p).await;
        assert!(login.is_login_page(), "{}", login.describe());
        assert!(
            login.body.contains("Войдите с новым паролем"),
            "{}",
            login.body
        );

        // Every session ended, every refresh token revoked; the old password is gone.
        assert!(!sso_works(&idp, &old_browser).await);
        let rt = refresh.expect("offline_access gives a refresh token");
        let r = idp.refresh(&idp.client, &rt).await;
        assert_eq!(r.status, 400, "refresh after reset: {}", r.body);
        let page = b.sign_in(login, &idp.user.login, NEW_PASSWORD).await;
        assert!(page.is_redirect(), "{}", page.describe());
        let b2 = Browser::new(&idp);
        let a2 = Authz::new(&idp.client);
        let p = b2.authorize(&idp, &a2).await;
        let p = b2
            .submit_login(&p, &idp.user.login, &idp.user.password)
            .await;
        assert!(p.is_login_page(), "the old password no longer works");
        // The owner was told.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !mailbox_texts(&idp, EMAIL)
            .await
            .iter()
            .any(|t| t.contains("Пароль изменён"))
        {
            assert!(Instant::now() < deadline, "no password-changed alert");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn recovery_unknown_contacts_get_the_same_answers_and_timing() {
    let env = [("IDP_OTP__RESEND_AFTER_SECS", "1")];
    for_each_backend_with(&env, |idp| async move {
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for i in 0..3 {
            let b = Browser::new(&idp);
            let page = forgot_start(&idp, &b, "password").await;
            let (k, took) = post_contact(&b, &page, "password", EMAIL).await;
            known.push(took);
            let b = Browser::new(&idp);
            let page = forgot_start(&idp, &b, "password").await;
            let (u, took) =
                post_contact(&b, &page, "password", &format!("nobody{i}@example.ru")).await;
            unknown.push(took);
            assert_eq!(k.status, u.status);
            assert_eq!(k.url.path(), u.url.path());
            let strip = |p: &Page| {
                let tx = p.hidden("tx").unwrap();
                let csrf = p.hidden("csrf").unwrap();
                p.body.replace(&tx, "TX").replace(&csrf, "CSRF")
            };
            assert_eq!(strip(&k), strip(&u), "the code pages differ");
            // Any code for the unknown contact is just "wrong".
            let p = b
                .post_form(
                    "/recover/password/code",
                    &form_of(&u, &[("code", "123456")]),
                )
                .await;
            assert!(p.body.contains("Осталось попыток: 2"), "{}", p.body);
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        known.sort();
        unknown.sort();
        let (k, u) = (known[1].as_millis() as i64, unknown[1].as_millis() as i64);
        eprintln!("forgot-password answer, median: known {k} ms, unknown {u} ms");
        assert!(k >= 400 && u >= 400, "padded to the minimum: {k} {u}");
        assert!(
            (k - u).abs() < 150,
            "timing differs: known {k} ms, unknown {u} ms"
        );

        // Forgot login: the same notice either way; only the real contact gets the login.
        let b = Browser::new(&idp);
        let page = forgot_start(&idp, &b, "login").await;
        let (k, _) = post_contact(&b, &page, "login", EMAIL).await;
        let b = Browser::new(&idp);
        let page = forgot_start(&idp, &b, "login").await;
        let (u, _) = post_contact(&b, &page, "login", "nobody@example.ru").await;
        assert_eq!((k.status, u.status), (200, 200));
        let cut = |p: &Page| p.body.split("/login?tx=").next().unwrap().to_string();
        assert_eq!(cut(&k), cut(&u));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !mailbox_texts(&idp, EMAIL)
            .await
            .iter()
            .any(|t| t.contains("Ваш логин в Пропуске: ivan@example.ru"))
        {
            assert!(Instant::now() < deadline, "the login was not sent");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(mailbox_texts(&idp, "nobody@example.ru").await.is_empty());
        let kinds = idp.audit_kinds();
        assert!(
            kinds.iter().filter(|k| *k == "recovery.requested").count() >= 8,
            "{kinds:?}"
        );
        // A flood for one contact is refused: five messages an hour (three codes and one
        // login so far), whatever the flow.
        let mut statuses = Vec::new();
        let mut last = None;
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let b = Browser::new(&idp);
            let page = forgot_start(&idp, &b, "login").await;
            let (again, _) = post_contact(&b, &page, "login", EMAIL).await;
            statuses.push(again.status);
            last = Some(again);
        }
        assert_eq!(statuses, [200, 429]);
        let last = last.unwrap();
        assert!(
            last.body.contains("Слишком много запросов"),
            "{}",
            last.body
        );
    })
    .await;
}

/// GET and POST of /account/password in a signed-in browser.
async fn change_password(b: &Browser, idp: &Idp, current: &str, new: &str, confirm: &str) -> Page {
    let page = b.get(&idp.url("/account/password")).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let csrf = page.hidden("csrf").unwrap();
    let form = vec![
        ("csrf".to_string(), csrf),
        ("current".to_string(), current.to_string()),
        ("new_password".to_string(), new.to_string()),
        ("confirm".to_string(), confirm.to_string()),
    ];
    b.post_form("/account/password", &form).await
}

#[tokio::test]
async fn recovery_change_password_ends_other_sessions() {
    for_each_backend(|idp| async move {
        let (other, other_refresh) = signed_in_browser(&idp, &idp.user.password).await;
        let (me, my_refresh) = signed_in_browser(&idp, &idp.user.password).await;
        // No session: sign in first.
        let anon = Browser::new(&idp);
        assert_eq!(anon.get(&idp.url("/account/password")).await.status, 401);
        // Wrong current password, a weak one, a mismatch, a bad CSRF token.
        let p = change_password(&me, &idp, "nope", NEW_PASSWORD, NEW_PASSWORD).await;
        assert_eq!(p.status, 400);
        assert!(p.body.contains("Текущий пароль неверный"), "{}", p.body);
        let p = change_password(&me, &idp, &idp.user.password, "12345678", "12345678").await;
        assert!(p.body.contains("заглавную букву"), "{}", p.body);
        let p = change_password(&me, &idp, &idp.user.password, NEW_PASSWORD, "x").await;
        assert!(p.body.contains("не совпадают"), "{}", p.body);
        let forged = me
            .post_form(
                "/account/password",
                &[
                    ("csrf".into(), "forged".into()),
                    ("current".into(), idp.user.password.clone()),
                    ("new_password".into(), NEW_PASSWORD.into()),
                    ("confirm".into(), NEW_PASSWORD.into()),
                ],
            )
            .await;
        assert_eq!(forged.status, 403);

        let p = change_password(&me, &idp, &idp.user.password, NEW_PASSWORD, NEW_PASSWORD).await;
        assert_eq!(p.status, 200, "{}", p.describe());
        assert!(p.body.contains("других сеансов: 1"), "{}", p.body);
        let kinds = idp.audit_kinds();
        assert!(
            kinds.contains(&"password.change_failed".to_string()),
            "{kinds:?}"
        );
        assert!(kinds.contains(&"password.changed".to_string()), "{kinds:?}");
        assert!(!sso_works(&idp, &other).await, "the other session ended");
        assert!(sso_works(&idp, &me).await, "this session goes on");
        // Refresh tokens: the other session's are revoked, this session's still work.
        let (o, m) = (other_refresh.unwrap(), my_refresh.unwrap());
        assert_eq!(idp.refresh(&idp.client, &o).await.status, 400);
        assert_eq!(idp.refresh(&idp.client, &m).await.status, 200);
        let (_, _) = signed_in_browser(&idp, NEW_PASSWORD).await;
    })
    .await;
}

#[tokio::test]
async fn recovery_temporary_password_must_be_replaced_first() {
    for_each_backend(|idp| async move {
        let login = "petr@example.ru";
        let temp = "Temporary-Pass-83!";
        idp.cli(&[
            "users",
            "add",
            "--login",
            login,
            "--password",
            temp,
            "--email",
            login,
            "--temporary",
        ])
        .await;
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let page = b.authorize(&idp, &a).await;
        let page = b.submit_login(&page, login, temp).await;
        assert_eq!(
            page.url.path(),
            "/login/new-password",
            "{}",
            page.describe()
        );
        // The policy applies; keeping the temporary password is refused.
        let p = b
            .post_form(
                "/login/new-password",
                &form_of(
                    &page,
                    &[("new_password", "password"), ("confirm", "password")],
                ),
            )
            .await;
        assert_eq!(p.status, 400);
        assert!(p.body.contains("утёкших"), "{}", p.body);
        let p = b
            .post_form(
                "/login/new-password",
                &form_of(&page, &[("new_password", temp), ("confirm", temp)]),
            )
            .await;
        assert!(p.body.contains("совпадает с текущим"), "{}", p.body);
        let p = b
            .post_form(
                "/login/new-password",
                &form_of(
                    &page,
                    &[("new_password", NEW_PASSWORD), ("confirm", NEW_PASSWORD)],
                ),
            )
            .await;
        let page = through_consent(&b, b.follow(p).await).await;
        expect_callback(&idp, &page, &a);

        // Next time the new password signs in directly.
        let b2 = Browser::new(&idp);
        let a2 = Authz::new(&idp.client);
        let page = b2.authorize(&idp, &a2).await;
        let page = b2.sign_in(page, login, NEW_PASSWORD).await;
        expect_callback(&idp, &page, &a2);

        // An operator reset: a generated temporary password, sessions ended.
        let out = idp
            .cli(&["users", "reset-password", "--login", login, "--json"])
            .await;
        let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let temp2 = j["temporary_password"].as_str().unwrap().to_string();
        assert!(j["sessions_ended"].as_u64().unwrap() >= 1, "{j}");
        assert!(!sso_works(&idp, &b2).await);
        let b3 = Browser::new(&idp);
        let page = b3.authorize(&idp, &Authz::new(&idp.client)).await;
        let page = b3.submit_login(&page, login, &temp2).await;
        assert_eq!(
            page.url.path(),
            "/login/new-password",
            "{}",
            page.describe()
        );
    })
    .await;
}
