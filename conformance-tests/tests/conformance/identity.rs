//! The person (issue 5): registration by a code from the dev mailbox, documents checked by
//! the simulated registry (match, mismatch, unavailable then retried), account levels in
//! scopes and claims, the client's minimum level, operator confirmation, blocking, and
//! organisations. Every test runs on both backends.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::browser::{
    exchange, expect_callback, expect_error_redirect, redirect_to, Authz, Browser, Page,
};
use super::harness::{for_each_backend_with, ClientSpec, Idp, TestClient};

const SNILS_OK: &str = "112-233-445 95";
const SNILS_MISMATCH: &str = "12345678964";
const SNILS_FLAKY: &str = "23456789099";
const OGRN: &str = "1027700132195";
const PASSWORD: &str = "Zx9#mQ2!vLp4";

/// Simulated registry answers for the SNILS above, and quick retries.
const ENV: &[(&str, &str)] = &[
    (
        "IDP_IDENTITY__REGISTRY__SIMULATED_ANSWERS__12345678964",
        "name_mismatch",
    ),
    (
        "IDP_IDENTITY__REGISTRY__SIMULATED_ANSWERS__23456789099",
        "unavailable_once",
    ),
    ("IDP_IDENTITY__REGISTRY__POLL_INTERVAL_SECS", "1"),
    ("IDP_IDENTITY__REGISTRY__RETRY_BASE_SECS", "1"),
];

async fn client_with(idp: &Idp, scopes: &[&str]) -> TestClient {
    idp.add_client(ClientSpec {
        name: "Tax office",
        scopes,
        ..ClientSpec::default()
    })
    .await
}

async fn show(idp: &Idp, login: &str) -> Value {
    let out = idp
        .cli(&["users", "show", "--login", login, "--json"])
        .await;
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("users show: {e}: {out}"))
}

/// Waits until `users show` satisfies `done`.
async fn wait_for(idp: &Idp, login: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = show(idp, login).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never {what}: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The registration code sent to the dev mailbox.
async fn registration_code(idp: &Idp) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
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
        let marker = "регистрации в Пропуске: ";
        if let Some(i) = body.find(marker) {
            let code: String = body[i + marker.len()..].chars().take(6).collect();
            assert!(code.chars().all(|c| c.is_ascii_digit()), "{body}");
            return code;
        }
        assert!(
            Instant::now() < deadline,
            "no registration code in the mailbox: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn form(page: &Page, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut f = page.hidden_inputs();
    for (k, v) in extra {
        f.push((k.to_string(), v.to_string()));
    }
    f
}

fn identity_fields(snils: &str) -> Vec<(&'static str, String)> {
    vec![
        ("family_name", "Смирнова".into()),
        ("given_name", "Анна".into()),
        ("middle_name", "Петровна".into()),
        ("birth_date", "17.04.1985".into()),
        ("birth_place", "г. Великий Новгород".into()),
        ("snils", snils.into()),
        ("passport_series", "4508".into()),
        ("passport_number", "731904".into()),
        ("passport_issue_date", "20.05.2005".into()),
        (
            "passport_issued_by",
            "ОВД Тверского района г. Москвы".into(),
        ),
        ("passport_division_code", "770-001".into()),
    ]
}

/// Posts the identity form of the profile page (signed in in `b`).
async fn submit_identity(b: &Browser, idp: &Idp, fields: &[(&str, String)]) -> Page {
    let profile = b.navigate(&idp.url("/account/profile")).await;
    assert_eq!(profile.status, 200, "{}", profile.describe());
    // The page has several forms; the identity form's only hidden field is the CSRF token.
    let mut f = vec![("csrf".to_string(), profile.hidden("csrf").expect("csrf"))];
    for (k, v) in fields {
        f.push((k.to_string(), v.clone()));
    }
    b.post_form("/account/profile/identity", &f).await
}

async fn userinfo(idp: &Idp, access_token: &str) -> Value {
    let r = idp.userinfo_get(access_token).await;
    assert_eq!(r.status, 200, "userinfo: {}", r.body);
    r.json()
}

/// Registers `anna@example.ru` through `/register`; the browser ends signed in on the profile.
async fn register(idp: &Idp, b: &Browser) {
    let start = b.get(&idp.url("/register")).await;
    assert_eq!(start.status, 200, "{}", start.describe());
    let code_page = b
        .post_form(
            "/register",
            &form(
                &start,
                &[
                    ("family_name", "Смирнова"),
                    ("given_name", "Анна"),
                    ("contact", "anna@example.ru"),
                ],
            ),
        )
        .await;
    assert_eq!(code_page.status, 200, "{}", code_page.describe());
    assert!(
        code_page.body.contains("name=\"code\""),
        "{}",
        code_page.describe()
    );
    // A wrong code first: a precise error, the code still works afterwards.
    let wrong = b
        .post_form("/register", &form(&code_page, &[("code", "000000")]))
        .await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.body.contains("data-error=\"wrong_code\""),
        "{}",
        wrong.describe()
    );
    let code = registration_code(idp).await;
    let pw_page = b
        .post_form("/register", &form(&code_page, &[("code", &code)]))
        .await;
    assert!(
        pw_page.body.contains("name=\"password2\""),
        "{}",
        pw_page.describe()
    );
    // A weak password is refused with the policy's reasons.
    let weak = b
        .post_form(
            "/register",
            &form(&pw_page, &[("password", "qwerty"), ("password2", "qwerty")]),
        )
        .await;
    assert_eq!(weak.status, 400, "{}", weak.describe());
    let done = b
        .post_form(
            "/register",
            &form(&pw_page, &[("password", PASSWORD), ("password2", PASSWORD)]),
        )
        .await;
    let profile = b.follow(done).await;
    assert_eq!(
        profile.url.path(),
        "/account/profile",
        "{}",
        profile.describe()
    );
    assert!(
        profile.body.contains("data-level=\"simplified\""),
        "{}",
        profile.describe()
    );
}

#[tokio::test]
async fn identity_register_documents_standard_snils_claim() {
    for_each_backend_with(ENV, |idp| async move {
        let b = Browser::new(&idp);
        register(&idp, &b).await;
        let v = show(&idp, "anna@example.ru").await;
        assert_eq!(v["level"], "simplified");
        assert_eq!(v["status"], "active");

        // Bad input: a precise error and nothing saved.
        let mut bad = identity_fields(SNILS_OK);
        bad[7].1 = "7319".into();
        let page = submit_identity(&b, &idp, &bad).await;
        assert_eq!(page.status, 400, "{}", page.describe());
        assert!(
            page.body.contains("data-error=\"passport_number\""),
            "{}",
            page.describe()
        );
        let mut bad = identity_fields("112-233-445 96");
        bad[0].1 = "Смирнова".into();
        let page = submit_identity(&b, &idp, &bad).await;
        assert!(
            page.body.contains("data-error=\"snils_invalid\""),
            "{}",
            page.describe()
        );
        assert!(show(&idp, "anna@example.ru").await["verification"].is_null());

        // Documents -> the simulated registry matches -> standard.
        let sent = submit_identity(&b, &idp, &identity_fields(SNILS_OK)).await;
        let page = b.follow(sent).await;
        assert!(
            page.body.contains("id=\"verification\""),
            "{}",
            page.describe()
        );
        let v = wait_for(&idp, "anna@example.ru", "standard", |v| {
            v["level"] == "standard"
        })
        .await;
        assert_eq!(v["verification"]["state"], "matched");
        assert_eq!(v["has_snils"], true);

        // A portal approved for `snils` gets it in userinfo.
        let client = client_with(&idp, &["openid", "fullname", "snils", "id_doc"]).await;
        let a = Authz::new(&client).set("scope", "openid fullname snils id_doc");
        let page = b.authorize(&idp, &a).await;
        assert!(page.is_consent_page(), "{}", page.describe());
        assert!(
            page.body.contains("data-scope=\"snils\""),
            "sensitive line: {}",
            page.describe()
        );
        assert!(!page.body.contains("data-withheld"), "{}", page.describe());
        let cb = expect_callback(&idp, &b.consent(page, "allow").await, &a);
        let t = exchange(&idp, &client, &a, cb.code()).await;
        let info = userinfo(&idp, &t.access_token).await;
        assert_eq!(info["snils"], SNILS_OK, "{info}");
        assert_eq!(info["id_doc"]["number"], "731904", "{info}");
        assert_eq!(info["id_doc"]["division_code"], "770-001", "{info}");
        assert_eq!(info["family_name"], "Смирнова", "{info}");
        assert_eq!(info["account_level"], "standard");
        assert_eq!(info["trusted"], false);
        // The SNILS signs in too (blind index of the sealed number).
        let b2 = Browser::new(&idp);
        let a2 = Authz::new(&client).set("scope", "openid fullname");
        let login = b2.authorize(&idp, &a2).await;
        let next = b2.sign_in(login, SNILS_OK, PASSWORD).await;
        expect_callback(&idp, &next, &a2);
    })
    .await;
}

#[tokio::test]
async fn identity_registry_mismatch_and_unavailable_then_retried() {
    for_each_backend_with(ENV, |idp| async move {
        // The default user signs in (SSO session), then submits documents.
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        b.login_flow(&idp, &a).await;
        let sent = submit_identity(&b, &idp, &identity_fields(SNILS_MISMATCH)).await;
        assert!(sent.is_redirect(), "{}", sent.describe());
        let login = idp.user.login.clone();
        let v = wait_for(&idp, &login, "mismatch", |v| {
            v["verification"]["state"] == "mismatch"
        })
        .await;
        assert_eq!(v["verification"]["reason"], "name_mismatch");
        assert_eq!(v["level"], "simplified");
        let page = b.navigate(&idp.url("/account/profile")).await;
        assert!(
            page.body.contains("data-reason=\"name_mismatch\""),
            "{}",
            page.describe()
        );
        assert!(
            page.body.contains("не совпадают"),
            "the reason is spelled out: {}",
            page.describe()
        );

        // Submitted again with a SNILS whose registry is down once: pending, retried, matched.
        let sent = submit_identity(&b, &idp, &identity_fields(SNILS_FLAKY)).await;
        assert!(sent.is_redirect(), "{}", sent.describe());
        // A second submission while one is pending is refused.
        let again = submit_identity(&b, &idp, &identity_fields(SNILS_FLAKY)).await;
        if again.status == 400 {
            assert!(
                again.body.contains("data-error=\"pending\""),
                "{}",
                again.describe()
            );
        }
        let v = wait_for(&idp, &login, "retried and matched", |v| {
            v["level"] == "standard"
        })
        .await;
        assert_eq!(v["verification"]["state"], "matched");
        assert!(v["verification"]["attempts"].as_i64().unwrap() >= 1, "{v}");
        assert_eq!(v["verification"]["last_error"], "unavailable");
    })
    .await;
}

#[tokio::test]
async fn identity_levels_consent_min_level_confirm_usr_org() {
    for_each_backend_with(ENV, |idp| async move {
        let client = client_with(
            &idp,
            &[
                "openid",
                "fullname",
                "snils",
                "usr_org",
                "addresses",
                "contacts",
            ],
        )
        .await;
        let login = idp.user.login.clone();
        let b = Browser::new(&idp);

        // Simplified: snils is withheld, named on the consent page, and not released.
        let a = Authz::new(&client).set("scope", "openid fullname snils");
        let page = b.authorize(&idp, &a).await;
        let page = b.submit_login(&page, &login, &idp.user.password).await;
        assert!(page.is_consent_page(), "{}", page.describe());
        assert!(
            page.body.contains("data-withheld=\"snils\""),
            "{}",
            page.describe()
        );
        let cb = expect_callback(&idp, &b.consent(page, "allow").await, &a);
        let t = exchange(&idp, &client, &a, cb.code()).await;
        let info = userinfo(&idp, &t.access_token).await;
        assert!(info.get("snils").is_none(), "{info}");
        assert_eq!(info["account_level"], "simplified");
        assert_eq!(info["trusted"], false);
        // The withheld scope was not granted: asked again (and withheld again) next time.
        let a = Authz::new(&client).set("scope", "openid snils");
        let page = b.authorize(&idp, &a).await;
        assert!(page.is_consent_page(), "{}", page.describe());

        // A scope the operator did not approve: invalid_scope.
        let a = Authz::new(&client).set("scope", "openid inn");
        let page = b.authorize(&idp, &a).await;
        expect_error_redirect(&idp, &page, &a, "invalid_scope");

        // The client requires a standard account: an explanation page; cancel -> access_denied.
        idp.cli(&[
            "clients",
            "set-min-level",
            &client.id,
            "--level",
            "standard",
        ])
        .await;
        let a = Authz::new(&client).set("scope", "openid fullname");
        let page = b.authorize(&idp, &a).await;
        assert_eq!(page.status, 403, "{}", page.describe());
        assert!(
            page.body.contains("data-needs=\"standard\""),
            "{}",
            page.describe()
        );
        assert!(
            page.body.contains("data-has=\"simplified\""),
            "{}",
            page.describe()
        );
        let href = page
            .body
            .split("id=\"cancel\" href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(|h| super::browser::html_unescape(&h.replace("&#38;", "&")))
            .unwrap_or_else(|| panic!("no cancel link: {}", page.describe()));
        let cancel = url::Url::parse(&href).unwrap();
        assert_eq!(
            cancel.host_str(),
            Some("rp.example.org"),
            "cancel goes to the portal"
        );
        let q = super::harness::query_map(&cancel);
        assert_eq!(
            q.get("error").map(String::as_str),
            Some("access_denied"),
            "{href}"
        );
        assert_eq!(q.get("state").map(String::as_str), Some(a.state()));

        // Organisation, identifiers and operator confirmation -> confirmed, trusted.
        idp.cli(&[
            "users",
            "add-org",
            "--login",
            &login,
            "--ogrn",
            OGRN,
            "--name",
            "ПАО Сбербанк",
            "--role",
            "chief",
        ])
        .await;
        let (ok, _, err) = idp
            .cli_with(
                &[],
                &[
                    "users",
                    "add-org",
                    "--login",
                    &login,
                    "--ogrn",
                    "1027700132194",
                    "--name",
                    "x",
                ],
            )
            .await;
        assert!(
            !ok && err.contains("ogrn"),
            "a bad OGRN check digit is refused: {err}"
        );
        idp.cli(&[
            "users",
            "set-identifiers",
            "--login",
            &login,
            "--snils",
            "34567890123",
        ])
        .await;
        let (ok, _, err) = idp
            .cli_with(
                &[],
                &[
                    "users",
                    "confirm",
                    "--login",
                    &login,
                    "--by",
                    "op-7",
                    "--method",
                    "in-person",
                ],
            )
            .await;
        assert!(
            !ok && err.contains("simplified"),
            "a simplified account needs --force: {err}"
        );
        idp.cli(&[
            "users",
            "confirm",
            "--login",
            &login,
            "--by",
            "op-7",
            "--method",
            "in-person",
            "--force",
        ])
        .await;
        let v = show(&idp, &login).await;
        assert_eq!(v["level"], "confirmed");
        assert_eq!(v["confirmation"]["by"], "op-7");
        assert_eq!(v["confirmation"]["method"], "in-person");

        // Collections kept with their history: an address and a contact.
        idp.cli(&[
            "users",
            "add-address",
            "--login",
            &login,
            "--kind",
            "registration",
            "--text",
            "Москва, ул. Тверская, д. 7",
            "--zip",
            "125009",
        ])
        .await;
        idp.cli(&[
            "users",
            "add-contact",
            "--login",
            &login,
            "--kind",
            "mobile",
            "--value",
            "+7 912 000-11-22",
        ])
        .await;
        let (ok, _, _) = idp
            .cli_with(
                &[],
                &[
                    "users",
                    "add-contact",
                    "--login",
                    &login,
                    "--kind",
                    "email",
                    "--value",
                    "not-an-email",
                ],
            )
            .await;
        assert!(!ok, "a malformed contact is refused");

        let a = Authz::new(&client).set("scope", "openid snils usr_org addresses contacts");
        let page = b.authorize(&idp, &a).await;
        let page = if page.is_consent_page() {
            b.consent(page, "allow").await
        } else {
            page
        };
        let cb = expect_callback(&idp, &page, &a);
        let t = exchange(&idp, &client, &a, cb.code()).await;
        let info = userinfo(&idp, &t.access_token).await;
        assert_eq!(info["trusted"], true, "{info}");
        assert_eq!(info["account_level"], "confirmed");
        assert_eq!(info["snils"], "345-678-901 23");
        assert_eq!(info["usr_org"][0]["ogrn"], OGRN, "{info}");
        assert_eq!(info["usr_org"][0]["role"], "chief");
        assert_eq!(info["addresses"][0]["type"], "PRG", "{info}");
        assert_eq!(info["addresses"][0]["zip"], "125009");
        let contacts = info["contacts"].as_array().unwrap();
        assert!(
            contacts
                .iter()
                .any(|c| c["type"] == "MBT" && c["value"] == "+79120001122"),
            "{info}"
        );
        // The ID token states the level when asked for it with `claims`.
        let a = Authz::new(&client).set("scope", "openid").set(
            "claims",
            r#"{"id_token":{"account_level":null,"trusted":null}}"#,
        );
        let cb = expect_callback(&idp, &b.authorize(&idp, &a).await, &a);
        let t = exchange(&idp, &client, &a, cb.code()).await;
        assert_eq!(t.claims["trusted"], true, "{}", t.claims);
        assert_eq!(t.claims["account_level"], "confirmed");
    })
    .await;
}

#[tokio::test]
async fn identity_blocked_user_is_refused_and_its_tokens_stop() {
    for_each_backend_with(ENV, |idp| async move {
        let b = Browser::new(&idp);
        let a = Authz::new(&idp.client).set("scope", "openid profile offline_access");
        let t = b.code_flow(&idp, &idp.client, &a).await;
        let refresh = t.refresh_token.clone().expect("a refresh token");
        let login = idp.user.login.clone();

        idp.cli(&["users", "block", "--login", &login, "--reason", "test"])
            .await;
        // Refresh and userinfo are refused.
        let r = idp.refresh(&idp.client, &refresh).await;
        r.assert_oauth_error("refresh of a blocked account", 400, "invalid_grant");
        assert_eq!(idp.userinfo_get(&t.access_token).await.status, 401);
        // The SSO session ended; signing in again is refused with a readable page.
        let a = Authz::new(&idp.client);
        let page = b.authorize(&idp, &a).await;
        assert!(
            page.is_login_page(),
            "the session ended: {}",
            page.describe()
        );
        let page = b.submit_login(&page, &login, &idp.user.password).await;
        assert_eq!(page.status, 403, "{}", page.describe());
        assert!(
            page.body.contains("data-status=\"blocked\""),
            "{}",
            page.describe()
        );
        assert_eq!(show(&idp, &login).await["status"], "blocked");

        idp.cli(&["users", "unblock", "--login", &login]).await;
        let a = Authz::new(&idp.client);
        let page = b.authorize(&idp, &a).await;
        let next = b.sign_in(page, &login, &idp.user.password).await;
        expect_callback(&idp, &next, &a);
        // What the block ended stays ended.
        let r = idp.refresh(&idp.client, &refresh).await;
        r.assert_oauth_error("refresh after unblock", 400, "invalid_grant");
        let _ = redirect_to;
    })
    .await;
}

/// The newest message of the dev mailbox to `to` that contains `needle`, waiting for it.
async fn message_to(idp: &Idp, to: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let texts = super::otp::mailbox_texts(idp, to).await;
        if let Some(t) = texts.iter().find(|t| t.contains(needle)) {
            return t.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no message to {to} with {needle:?}: {texts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Asks for a contact change on the profile page; returns the code page.
async fn change_contact(b: &Browser, idp: &Idp, kind: &str, value: &str) -> Page {
    let profile = b.navigate(&idp.url("/account/profile")).await;
    assert_eq!(profile.status, 200, "{}", profile.describe());
    let csrf = profile.hidden("csrf").expect("csrf");
    b.post_form(
        "/account/profile/contact",
        &pairs(&[("csrf", &csrf), ("kind", kind), ("value", value)]),
    )
    .await
}

async fn confirm_contact(b: &Browser, code_page: &Page, code: &str) -> Page {
    let csrf = code_page.hidden("csrf").expect("csrf");
    let change = code_page.hidden("change").expect("the change id");
    b.post_form(
        "/account/profile/contact/confirm",
        &pairs(&[("csrf", &csrf), ("change", &change), ("code", code)]),
    )
    .await
}

/// Signs in at the client in a fresh browser; true if the portal got a code.
async fn signs_in(idp: &Idp, login: &str, password: &str) -> bool {
    let b = Browser::new(idp);
    let a = Authz::new(&idp.client);
    let page = b.authorize(idp, &a).await;
    let next = b.sign_in(page, login, password).await;
    next.is_redirect()
        && next
            .location()
            .is_some_and(|l| l.as_str().starts_with(a.redirect_uri()))
}

const CODE_MARKER: &str = "Код для привязки контакта";

#[tokio::test]
async fn identity_contact_change_needs_the_code_and_moves_sign_in() {
    for_each_backend_with(ENV, |idp| async move {
        let b = Browser::new(&idp);
        register(&idp, &b).await;
        let old = "anna@example.ru";
        let new = "anna.new@example.ru";

        // A code goes to the NEW address; a wrong code saves nothing.
        let code_page = change_contact(&b, &idp, "email", new).await;
        assert_eq!(code_page.status, 200, "{}", code_page.describe());
        assert!(
            code_page.body.contains("id=\"contact-code\""),
            "{}",
            code_page.describe()
        );
        let wrong = confirm_contact(&b, &code_page, "000000").await;
        assert_eq!(wrong.status, 400, "{}", wrong.describe());
        assert!(wrong.body.contains("data-error=\"wrong_code\""));
        assert!(signs_in(&idp, old, PASSWORD).await, "nothing changed yet");
        assert!(!signs_in(&idp, new, PASSWORD).await);

        let text = message_to(&idp, new, CODE_MARKER).await;
        let code = super::otp::code_in(&text).unwrap();
        let done = confirm_contact(&b, &code_page, &code).await;
        assert_eq!(done.status, 303, "{}", done.describe());
        let profile = b.follow(done).await;
        assert!(
            profile.body.contains("data-notice=\"contact_changed\""),
            "{}",
            profile.describe()
        );
        assert!(profile.body.contains(new), "{}", profile.describe());
        // The old address is told; the new one signs in, the old one no longer does.
        message_to(&idp, old, "изменён").await;
        assert!(
            signs_in(&idp, new, PASSWORD).await,
            "the new e-mail signs in"
        );
        assert!(
            !signs_in(&idp, old, PASSWORD).await,
            "the old e-mail does not"
        );
        // The same code again: spent.
        let again = confirm_contact(&b, &code_page, &code).await;
        assert_eq!(again.status, 400, "{}", again.describe());

        // A mobile phone added the same way signs in too.
        let phone = "+79005550101";
        let code_page = change_contact(&b, &idp, "mobile", "8 900 555-01-01").await;
        let code = super::otp::code_in(&message_to(&idp, phone, CODE_MARKER).await).unwrap();
        assert_eq!(confirm_contact(&b, &code_page, &code).await.status, 303);
        assert!(
            signs_in(&idp, phone, PASSWORD).await,
            "the added phone signs in"
        );

        // Another account cannot take it: told only after the code (control proven).
        let other = Browser::new(&idp);
        let a = Authz::new(&idp.client);
        let page = other.authorize(&idp, &a).await;
        other
            .sign_in(page, &idp.user.login, &idp.user.password)
            .await;
        let seen = super::otp::codes_sent(&idp, phone).await;
        let code_page = change_contact(&other, &idp, "mobile", phone).await;
        assert_eq!(code_page.status, 200, "{}", code_page.describe());
        let code = super::otp::next_code(&idp, phone, seen).await;
        let taken = confirm_contact(&other, &code_page, &code).await;
        assert_eq!(taken.status, 400, "{}", taken.describe());
        assert!(
            taken.body.contains("data-error=\"contact_taken\""),
            "{}",
            taken.describe()
        );
        assert!(signs_in(&idp, phone, PASSWORD).await, "still Anna's");

        // A malformed value is refused precisely; removing the phone works, the last
        // contact cannot be removed.
        let bad = change_contact(&b, &idp, "mobile", "12345").await;
        assert!(
            bad.body.contains("data-error=\"bad_phone\""),
            "{}",
            bad.describe()
        );
        let csrf = b
            .navigate(&idp.url("/account/profile"))
            .await
            .hidden("csrf")
            .unwrap();
        let removed = b
            .post_form(
                "/account/profile/contact/remove",
                &pairs(&[("csrf", &csrf), ("kind", "mobile")]),
            )
            .await;
        assert_eq!(removed.status, 303, "{}", removed.describe());
        assert!(!signs_in(&idp, phone, PASSWORD).await, "the removed phone");
        let last = b
            .post_form(
                "/account/profile/contact/remove",
                &pairs(&[("csrf", &csrf), ("kind", "email")]),
            )
            .await;
        assert!(
            last.body.contains("data-error=\"last_contact\""),
            "{}",
            last.describe()
        );

        // Addresses: validated, saved, replaced, removed, with history.
        let bad = b
            .post_form(
                "/account/profile/address",
                &pairs(&[
                    ("csrf", &csrf),
                    ("address_kind", "registration"),
                    ("formatted", "г. Москва, ул. Тверская, д. 1"),
                    ("zip", "1250"),
                ]),
            )
            .await;
        assert!(
            bad.body.contains("data-error=\"address_zip\""),
            "{}",
            bad.describe()
        );
        let saved = b
            .post_form(
                "/account/profile/address",
                &pairs(&[
                    ("csrf", &csrf),
                    ("address_kind", "registration"),
                    ("formatted", "г. Москва, ул. Тверская, д. 1"),
                    ("zip", "125009"),
                    ("country", "RUS"),
                ]),
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.describe());
        let profile = b.follow(saved).await;
        assert!(
            profile.body.contains("data-address=\"registration\"")
                && profile.body.contains("ул. Тверская"),
            "{}",
            profile.describe()
        );

        let kinds = idp.audit_kinds();
        for k in [
            "profile.contact_code_sent",
            "profile.contact_code_failure",
            "profile.contact_changed",
            "profile.contact_refused",
            "profile.contact_removed",
            "profile.address_refused",
            "profile.address_saved",
        ] {
            assert!(kinds.iter().any(|x| x == k), "no {k} in {kinds:?}");
        }
        let history = idp.sql("SELECT collection || ':' || action FROM person_history ORDER BY id");
        assert!(history.contains("contact:changed"), "{history}");
        assert!(history.contains("contact:added"), "{history}");
        assert!(history.contains("contact:removed"), "{history}");
        assert!(history.contains("address:added"), "{history}");
    })
    .await;
}

/// The code page of `/register` for `contact`, in a fresh browser.
async fn registration_page(idp: &Idp, contact: &str) -> Page {
    let b = Browser::new(idp);
    let start = b.get(&idp.url("/register")).await;
    b.post_form(
        "/register",
        &form(
            &start,
            &[
                ("family_name", "Иванов"),
                ("given_name", "Иван"),
                ("contact", contact),
            ],
        ),
    )
    .await
}

/// The page without the values that differ on every request.
fn normalised(page: &Page) -> String {
    let mut body = page.body.clone();
    for name in ["csrf", "reg"] {
        if let Some(v) = page.hidden(name) {
            body = body.replace(&v, "X");
        }
    }
    body
}

#[tokio::test]
async fn identity_registration_does_not_reveal_a_taken_contact() {
    for_each_backend_with(ENV, |idp| async move {
        // idp.user has ivan@example.ru; ixxx@example.ru is free and masks the same way
        // (`i***@example.ru`), so the pages can be compared byte for byte.
        let taken = registration_page(&idp, EMAIL_TAKEN).await;
        let free = registration_page(&idp, "ixxx@example.ru").await;
        assert_eq!(taken.status, 200, "{}", taken.describe());
        assert_eq!(free.status, 200, "{}", free.describe());
        assert_eq!(
            normalised(&taken),
            normalised(&free),
            "a taken and a free contact give the same page"
        );
        // The free contact got a code; the owner of the taken one got a notice, no code.
        let code = message_to(&idp, "ixxx@example.ru", "регистрации").await;
        assert!(super::otp::code_in(&code).is_some(), "{code}");
        let notice = message_to(&idp, EMAIL_TAKEN, "пытался зарегистрироваться").await;
        assert!(super::otp::code_in(&notice).is_none(), "no code: {notice}");
        // No code completes the taken one.
        let b = Browser::new(&idp);
        let start = b.get(&idp.url("/register")).await;
        let page = b
            .post_form(
                "/register",
                &form(
                    &start,
                    &[
                        ("family_name", "И"),
                        ("given_name", "И"),
                        ("contact", EMAIL_TAKEN),
                    ],
                ),
            )
            .await;
        let wrong = b
            .post_form("/register", &form(&page, &[("code", "123456")]))
            .await;
        assert!(
            wrong.body.contains("data-error=\"wrong_code\""),
            "{}",
            wrong.describe()
        );
        assert!(
            idp.audit_kinds().iter().any(|k| k == "register.refused"),
            "the refusal is audited"
        );
    })
    .await;
}

const EMAIL_TAKEN: &str = "ivan@example.ru";

#[tokio::test]
async fn identity_pending_account_is_activated_by_the_citizen() {
    for_each_backend_with(ENV, |idp| async move {
        let phone = "+79005550177";
        let out = idp
            .cli(&[
                "users",
                "add",
                "--login",
                phone,
                "--family-name",
                "Петрова",
                "--given-name",
                "Мария",
                "--pending",
                "--json",
            ])
            .await;
        assert!(out.contains("\"sub\""), "{out}");
        assert_eq!(show(&idp, phone).await["status"], "pending_confirmation");
        // It cannot sign in (nobody knows its password).
        assert!(!signs_in(&idp, phone, PASSWORD).await);

        // /activate answers an unknown identifier exactly like the pending one.
        let activate = |who: &'static str| {
            let idp = &idp;
            async move {
                let b = Browser::new(idp);
                let start = b.get(&idp.url("/activate")).await;
                assert_eq!(start.status, 200, "{}", start.describe());
                let page = b
                    .post_form("/activate", &form(&start, &[("identifier", who)]))
                    .await;
                (b, page)
            }
        };
        let (_, unknown) = activate("+79005550178").await;
        let (b, known) = activate("+7 900 555-01-77").await;
        assert_eq!(known.status, 200, "{}", known.describe());
        assert_eq!(normalised(&known), normalised(&unknown));
        assert!(super::otp::mailbox_texts(&idp, "+79005550178")
            .await
            .is_empty());
        let code = super::otp::code_in(&message_to(&idp, phone, "активации").await).unwrap();
        let wrong = b
            .post_form("/activate", &form(&known, &[("code", "000000")]))
            .await;
        assert!(
            wrong.body.contains("data-error=\"wrong_code\""),
            "{}",
            wrong.describe()
        );
        let pw = b
            .post_form("/activate", &form(&known, &[("code", &code)]))
            .await;
        assert!(pw.body.contains("name=\"password2\""), "{}", pw.describe());
        let done = b
            .post_form(
                "/activate",
                &form(&pw, &[("password", PASSWORD), ("password2", PASSWORD)]),
            )
            .await;
        let profile = b.follow(done).await;
        assert_eq!(
            profile.url.path(),
            "/account/profile",
            "{}",
            profile.describe()
        );
        assert!(
            profile.body.contains("data-status=\"active\""),
            "{}",
            profile.describe()
        );
        assert_eq!(show(&idp, phone).await["status"], "active");
        assert!(signs_in(&idp, phone, PASSWORD).await, "active: signs in");
        let kinds = idp.audit_kinds();
        for k in [
            "user.created_pending",
            "activation.requested",
            "user.activated",
        ] {
            assert!(kinds.iter().any(|x| x == k), "no {k} in {kinds:?}");
        }
        // The form cannot be replayed.
        let again = b
            .post_form(
                "/activate",
                &form(&pw, &[("password", PASSWORD), ("password2", PASSWORD)]),
            )
            .await;
        assert_eq!(again.status, 400, "{}", again.describe());
    })
    .await;
}
