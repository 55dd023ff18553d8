//! `oidcc-rp-initiated-logout-*` modules (OpenID Connect RP-Initiated Logout 1.0).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use url::Url;

use super::browser::{expect_error_redirect, redirect_to, Authz, Browser, Page, Tokens};
use super::harness::{for_each_backend, Idp, POST_LOGOUT_URI};

async fn logged_in(idp: &Idp) -> (Browser, Tokens) {
    let b = Browser::new(idp);
    let t = b
        .code_flow(idp, &idp.client, &Authz::new(&idp.client))
        .await;
    (b, t)
}

async fn logout(idp: &Idp, b: &Browser, params: &[(&str, &str)]) -> Page {
    let mut u = Url::parse(&idp.url("/logout")).unwrap();
    if !params.is_empty() {
        u.query_pairs_mut().extend_pairs(params);
    }
    b.navigate(u.as_str()).await
}

/// After logout, `prompt=none` must fail with login_required.
async fn assert_logged_out(idp: &Idp, b: &Browser) {
    let a = Authz::new(&idp.client).set("prompt", "none");
    let page = b.authorize(idp, &a).await;
    expect_error_redirect(idp, &page, &a, "login_required");
}

/// The session is still alive: `prompt=none` succeeds.
async fn assert_logged_in(idp: &Idp, b: &Browser) {
    let a = Authz::new(&idp.client).set("prompt", "none");
    let page = b.authorize(idp, &a).await;
    super::browser::expect_callback(idp, &page, &a);
}

/// The OP must not redirect (to the post-logout URI or anywhere): a 200/400 page.
fn assert_no_redirect(page: &Page, what: &str) {
    assert!(
        page.header("location").is_none() && !page.is_redirect(),
        "{what}: the OP must not redirect, got {}",
        page.describe()
    );
    assert!(
        page.status == 200 || page.status == 400 || page.status == 403,
        "{what}: expected a page (200/400), got {}",
        page.describe()
    );
    assert!(
        page.is_html(),
        "{what}: expected an HTML page: {:?}",
        page.header("content-type")
    );
}

/// A page the user sees after logout or asked to confirm it: HTTP 200, no redirect.
fn assert_logout_page(page: &Page, what: &str) {
    assert_no_redirect(page, what);
    assert_eq!(
        page.status,
        200,
        "{what}: expected a logged-out or confirmation page, got {}",
        page.describe()
    );
}

/// Submits the logout confirmation form, if the page is one; returns whether it was.
async fn confirm_if_asked(b: &Browser, page: &Page) -> bool {
    let hidden = page.hidden_inputs();
    if !hidden.iter().any(|(n, _)| n == "csrf") {
        return false;
    }
    let mut form = hidden;
    if !form.iter().any(|(n, _)| n == "confirm") {
        form.push(("confirm".into(), "yes".into()));
    }
    let p = b.post_form("/logout", &form).await;
    let p = b.follow(p).await;
    assert_logout_page(&p, "confirmed logout");
    true
}

#[tokio::test]
async fn oidcc_rp_initiated_logout() {
    for_each_backend(|idp| async move {
        let (b, t) = logged_in(&idp).await;
        let page = logout(
            &idp,
            &b,
            &[
                ("id_token_hint", &t.id_token),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "st-123"),
            ],
        )
        .await;
        let cb = redirect_to(&page, POST_LOGOUT_URI);
        assert_eq!(
            cb.get("state"),
            Some("st-123"),
            "state must be passed back: {}",
            cb.url
        );
        assert_eq!(page.status, 303, "RP-initiated logout should answer 303");
        assert_logged_out(&idp, &b).await;
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_state() {
    for_each_backend(|idp| async move {
        let (b, t) = logged_in(&idp).await;
        let page = logout(
            &idp,
            &b,
            &[
                ("id_token_hint", &t.id_token),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ],
        )
        .await;
        let cb = redirect_to(&page, POST_LOGOUT_URI);
        assert!(
            cb.get("state").is_none(),
            "no state was sent, none may come back: {}",
            cb.url
        );
        assert_logged_out(&idp, &b).await;
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_bad_id_token_hint() {
    for_each_backend(|idp| async move {
        let (b, t) = logged_in(&idp).await;
        // Same header and claims, broken signature.
        let (rest, sig) = t.id_token.rsplit_once('.').unwrap();
        let mut s = URL_SAFE_NO_PAD.decode(sig).unwrap();
        s[0] ^= 0x55;
        s[10] ^= 0x55;
        let bad = format!("{rest}.{}", URL_SAFE_NO_PAD.encode(s));
        let page = logout(
            &idp,
            &b,
            &[
                ("id_token_hint", &bad),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "x"),
            ],
        )
        .await;
        assert_no_redirect(&page, "id_token_hint with a bad signature");
        // Garbage too.
        let page = logout(
            &idp,
            &b,
            &[
                ("id_token_hint", "not-a-jwt"),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
            ],
        )
        .await;
        assert_no_redirect(&page, "id_token_hint that is not a JWT");
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_modified_id_token_hint() {
    for_each_backend(|idp| async move {
        let (b, t) = logged_in(&idp).await;
        let payload = t.id_token.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        let page = logout(
            &idp,
            &b,
            &[
                ("id_token_hint", &none),
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "x"),
            ],
        )
        .await;
        assert_no_redirect(&page, "id_token_hint with alg none");
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_bad_post_logout_redirect_uri() {
    for_each_backend(|idp| async move {
        let (b, t) = logged_in(&idp).await;
        let page = logout(
            &idp,
            &b,
            &[
                ("id_token_hint", &t.id_token),
                (
                    "post_logout_redirect_uri",
                    "https://attacker.example.net/bye",
                ),
                ("state", "x"),
            ],
        )
        .await;
        assert_no_redirect(&page, "unregistered post_logout_redirect_uri");
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri() {
    for_each_backend(|idp| async move {
        let (b, t) = logged_in(&idp).await;
        let uri = format!("{POST_LOGOUT_URI}?extra=1");
        let page = logout(
            &idp,
            &b,
            &[
                ("id_token_hint", &t.id_token),
                ("post_logout_redirect_uri", &uri),
                ("state", "x"),
            ],
        )
        .await;
        assert_no_redirect(&page, "post_logout_redirect_uri with an added query");
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_id_token_hint() {
    for_each_backend(|idp| async move {
        let (b, _t) = logged_in(&idp).await;
        let page = logout(
            &idp,
            &b,
            &[
                ("post_logout_redirect_uri", POST_LOGOUT_URI),
                ("state", "x"),
            ],
        )
        .await;
        assert_logout_page(&page, "logout without id_token_hint");
        // Without a hint the user confirms; after confirming the session is gone.
        if confirm_if_asked(&b, &page).await {
            assert_logged_out(&idp, &b).await;
        }
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_params() {
    for_each_backend(|idp| async move {
        let (b, _t) = logged_in(&idp).await;
        let page = logout(&idp, &b, &[]).await;
        assert_logout_page(&page, "logout with no parameters");
        // Either already logged out ("signed out" page) or asked to confirm.
        confirm_if_asked(&b, &page).await;
        assert_logged_out(&idp, &b).await;
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_no_post_logout_redirect_uri() {
    for_each_backend(|idp| async move {
        let (b, t) = logged_in(&idp).await;
        let page = logout(&idp, &b, &[("id_token_hint", &t.id_token), ("state", "x")]).await;
        assert_logout_page(&page, "logout with id_token_hint only");
        // A valid hint without a redirect URI: logged out at once ("signed out" page);
        // an OP that asks for confirmation instead is fine too.
        confirm_if_asked(&b, &page).await;
        assert_logged_out(&idp, &b).await;
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_only_state() {
    for_each_backend(|idp| async move {
        let (b, _t) = logged_in(&idp).await;
        let page = logout(&idp, &b, &[("state", "only")]).await;
        assert_logout_page(&page, "logout with only state");
        confirm_if_asked(&b, &page).await;
        assert_logged_out(&idp, &b).await;
    })
    .await;
}

#[tokio::test]
async fn logout_confirmation_requires_csrf() {
    for_each_backend(|idp| async move {
        let (b, _t) = logged_in(&idp).await;
        let form = vec![
            ("confirm".to_string(), "yes".to_string()),
            ("csrf".to_string(), "forged".to_string()),
        ];
        let p = b.post_form("/logout", &form).await;
        assert!(
            p.status == 400 || p.status == 403,
            "a forged logout confirmation must be refused: {}",
            p.describe()
        );
        assert_logged_in(&idp, &b).await;
    })
    .await;
}
