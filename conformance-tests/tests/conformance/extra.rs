//! Beyond the OpenID modules: client_credentials, introspection (RFC 7662), revocation
//! (RFC 7009), token endpoint errors, security headers of pages and cookies.

use super::browser::{Authz, Browser};
use super::harness::{
    basic_auth, check_token_response, for_each_backend, jwt_parts, AuthMethod, ClientSpec,
    HttpResp, TestClient,
};

#[tokio::test]
async fn client_credentials_grant() {
    for_each_backend(|idp| async move {
        let c = idp
            .add_client(ClientSpec {
                name: "Batch job",
                grant_types: &["client_credentials"],
                ..Default::default()
            })
            .await;
        let r = idp
            .post_client_auth("/token", &c, &[("grant_type", "client_credentials")])
            .await;
        let j = check_token_response(&r, "client_credentials");
        assert!(
            j.get("refresh_token").is_none(),
            "RFC 6749 §4.4.3: no refresh token for client_credentials: {j}"
        );
        assert!(
            j.get("id_token").is_none(),
            "no ID token without a user: {j}"
        );
        let at = j["access_token"].as_str().unwrap();
        let (h, p) = jwt_parts(at);
        assert_eq!(h["typ"], "at+jwt", "{h}");
        assert_eq!(p["client_id"], c.id.as_str(), "{p}");
        let i = idp.introspect(&c, at).await;
        assert_eq!(i.status, 200, "{}", i.body);
        assert_eq!(i.json()["active"], true, "{}", i.body);

        // The default client is not registered for client_credentials.
        let r = idp
            .post_client_auth(
                "/token",
                &idp.client,
                &[("grant_type", "client_credentials")],
            )
            .await;
        r.assert_oauth_error(
            "client_credentials by a client not registered for it",
            400,
            "unauthorized_client",
        );
    })
    .await;
}

#[tokio::test]
async fn introspection() {
    for_each_backend(|idp| async move {
        let t = Browser::new(&idp)
            .code_flow(
                &idp,
                &idp.client,
                &Authz::new(&idp.client).set("scope", "openid email"),
            )
            .await;
        let r = idp.introspect(&idp.client, &t.access_token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        assert_eq!(j["active"], true, "{j}");
        assert_eq!(j["sub"], idp.user.sub.as_str(), "{j}");
        assert_eq!(j["client_id"], idp.client.id.as_str(), "{j}");
        assert!(j["exp"].as_i64().is_some(), "{j}");
        let scope = j["scope"]
            .as_str()
            .unwrap_or_else(|| panic!("scope missing: {j}"));
        assert!(scope.split(' ').any(|s| s == "email"), "{j}");

        // Refresh tokens can be introspected too (token_type_hint optional).
        if let Some(rt) = &t.refresh_token {
            let r = idp.introspect(&idp.client, rt).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["active"], true, "live refresh token: {}", r.body);
        }

        let junk = idp.introspect(&idp.client, "junk-token").await;
        assert_eq!(junk.status, 200, "{}", junk.body);
        assert_eq!(
            junk.json(),
            serde_json::json!({"active": false}),
            "junk token: only active=false"
        );

        // Client authentication is required.
        let anon = HttpResp::read(
            idp.http
                .post(idp.url("/introspect"))
                .form(&[("token", t.access_token.as_str())])
                .send()
                .await
                .unwrap(),
        )
        .await;
        anon.assert_oauth_error(
            "introspection without client authentication",
            401,
            "invalid_client",
        );

        // After revocation: inactive.
        let rv = idp.revoke(&idp.client, &t.access_token).await;
        assert_eq!(rv.status, 200, "{}", rv.body);
        let r = idp.introspect(&idp.client, &t.access_token).await;
        assert_eq!(
            r.json()["active"],
            false,
            "revoked access token must be inactive: {}",
            r.body
        );
        let ui = idp.userinfo_get(&t.access_token).await;
        assert_eq!(
            ui.status, 401,
            "revoked access token at userinfo: {}",
            ui.body
        );
    })
    .await;
}

#[tokio::test]
async fn revocation() {
    for_each_backend(|idp| async move {
        let t = Browser::new(&idp)
            .code_flow(&idp, &idp.client, &Authz::new(&idp.client))
            .await;
        let rt = t.refresh_token.clone().unwrap();
        // Another client cannot revoke it (RFC 7009 §2.1: no error, but nothing happens).
        let other = idp
            .add_client(ClientSpec {
                name: "Other",
                ..Default::default()
            })
            .await;
        let r = idp.revoke(&other, &rt).await;
        assert!(r.status == 200 || r.status == 400, "{}", r.body);
        check_token_response(
            &idp.refresh(&idp.client, &rt).await,
            "refresh after another client's revocation attempt",
        );
        // Revoke the whole family through the latest token...
        let t2 = Browser::new(&idp)
            .code_flow(&idp, &idp.client, &Authz::new(&idp.client))
            .await;
        let rt2 = t2.refresh_token.unwrap();
        let r = idp.revoke(&idp.client, &rt2).await;
        assert_eq!(r.status, 200, "{}", r.body);
        idp.refresh(&idp.client, &rt2).await.assert_oauth_error(
            "refresh after revocation",
            400,
            "invalid_grant",
        );
        // Unknown tokens: 200 (RFC 7009 §2.2).
        let r = idp.revoke(&idp.client, "no-such-token").await;
        assert_eq!(r.status, 200, "unknown token: {}", r.body);
        // Authentication required.
        let anon = HttpResp::read(
            idp.http
                .post(idp.url("/revoke"))
                .form(&[("token", "x")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            anon.status == 401 || anon.status == 400,
            "revocation without client authentication: HTTP {} {}",
            anon.status,
            anon.body
        );
    })
    .await;
}

#[tokio::test]
async fn token_endpoint_errors() {
    for_each_backend(|idp| async move {
        let a = Authz::new(&idp.client);
        let cb = Browser::new(&idp).login_flow(&idp, &a).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", cb.code()),
            ("code_verifier", a.verifier.as_str()),
            ("redirect_uri", a.redirect_uri()),
        ];

        let unknown = TestClient {
            id: "no-such-client".into(),
            secret: Some("x".into()),
            method: AuthMethod::Basic,
            redirect_uris: vec![],
        };
        let r = idp.post_client_auth("/token", &unknown, &form).await;
        r.assert_oauth_error("unknown client", 401, "invalid_client");
        assert!(
            r.header("www-authenticate").is_some(),
            "401 invalid_client needs WWW-Authenticate"
        );

        let wrong = TestClient {
            secret: Some("wrong-secret".into()),
            ..idp.client.clone()
        };
        let r = idp.post_client_auth("/token", &wrong, &form).await;
        r.assert_oauth_error("wrong client secret", 401, "invalid_client");
        assert!(
            r.header("www-authenticate").is_some(),
            "401 invalid_client needs WWW-Authenticate"
        );

        let r = HttpResp::read(
            idp.http
                .post(idp.url("/token"))
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401, "no client authentication at all: {}", r.body);
        assert!(
            matches!(r.json()["error"].as_str(), Some("invalid_client")),
            "{}",
            r.body
        );

        // Secret in the body for a client_secret_basic client is not its registered method.
        let r = HttpResp::read(
            idp.http
                .post(idp.url("/token"))
                .header(
                    "Authorization",
                    basic_auth(&idp.client.id, idp.client.secret.as_deref().unwrap()),
                )
                .form(&[
                    ("grant_type", "password"),
                    ("username", "a"),
                    ("password", "b"),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_oauth_error("password grant", 400, "unsupported_grant_type");
        idp.post_client_auth("/token", &idp.client, &[("grant_type", "urn:example:nope")])
            .await
            .assert_oauth_error("unknown grant type", 400, "unsupported_grant_type");
        idp.post_client_auth(
            "/token",
            &idp.client,
            &[
                ("grant_type", "authorization_code"),
                ("code_verifier", a.verifier.as_str()),
                ("redirect_uri", a.redirect_uri()),
            ],
        )
        .await
        .assert_oauth_error("missing code", 400, "invalid_request");
        idp.post_client_auth("/token", &idp.client, &[("code", "x")])
            .await
            .assert_oauth_error("missing grant_type", 400, "invalid_request");
        idp.post_client_auth(
            "/token",
            &idp.client,
            &[
                ("grant_type", "authorization_code"),
                ("code", "made-up"),
                ("code_verifier", a.verifier.as_str()),
                ("redirect_uri", a.redirect_uri()),
            ],
        )
        .await
        .assert_oauth_error("made-up code", 400, "invalid_grant");

        // Wrong redirect_uri at the token endpoint.
        idp.post_client_auth(
            "/token",
            &idp.client,
            &[
                ("grant_type", "authorization_code"),
                ("code", cb.code()),
                ("code_verifier", a.verifier.as_str()),
                ("redirect_uri", "https://rp.example.org/other"),
            ],
        )
        .await
        .assert_oauth_error(
            "redirect_uri differs from the authorization request",
            400,
            "invalid_grant",
        );

        // A code issued to one client cannot be redeemed by another.
        let a2 = Authz::new(&idp.client);
        let cb2 = Browser::new(&idp).login_flow(&idp, &a2).await;
        let other = idp
            .add_client(ClientSpec {
                name: "Other",
                ..Default::default()
            })
            .await;
        idp.exchange_code(&other, cb2.code(), &a2.verifier, a2.redirect_uri())
            .await
            .assert_oauth_error("code of another client", 400, "invalid_grant");

        // Errors carry no-store too.
        let r = idp
            .post_client_auth(
                "/token",
                &idp.client,
                &[("grant_type", "authorization_code"), ("code", "made-up")],
            )
            .await;
        assert!(
            r.header("cache-control")
                .unwrap_or_default()
                .contains("no-store"),
            "error responses of /token should be no-store"
        );

        // Userinfo without / with a bad token.
        let r = HttpResp::read(idp.http.get(idp.url("/userinfo")).send().await.unwrap()).await;
        assert_eq!(r.status, 401, "userinfo without a token: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "userinfo 401 needs WWW-Authenticate: Bearer"
        );
        let r = idp.userinfo_get("garbage").await;
        assert_eq!(r.status, 401, "userinfo with a garbage token: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .unwrap_or_default()
                .contains("invalid_token"),
            "{:?}",
            r.header("www-authenticate")
        );
        // An ID token is not an access token.
        let t = Browser::new(&idp)
            .code_flow(&idp, &idp.client, &Authz::new(&idp.client))
            .await;
        let r = idp.userinfo_get(&t.id_token).await;
        assert_eq!(
            r.status, 401,
            "an ID token must not be accepted as an access token: {}",
            r.body
        );
    })
    .await;
}

#[tokio::test]
async fn security_headers_and_cookies() {
    for_each_backend(|idp| async move {
        let b = Browser::new(&idp);
        let page = b.authorize(&idp, &Authz::new(&idp.client)).await;
        assert!(page.is_login_page(), "{}", page.describe());
        let csp = page
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("pages need a Content-Security-Policy"));
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "CSP must forbid framing: {csp}"
        );
        assert!(
            !csp.contains("'unsafe-inline'") && !csp.contains("'unsafe-eval'"),
            "strict CSP: {csp}"
        );
        let xfo = page.header("x-frame-options").unwrap_or_default();
        assert!(
            xfo.eq_ignore_ascii_case("deny") || csp.contains("frame-ancestors"),
            "framing protection"
        );
        assert_eq!(
            page.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert!(
            page.header("cache-control")
                .unwrap_or_default()
                .contains("no-store"),
            "login page should not be cached: {:?}",
            page.header("cache-control")
        );
        assert_no_inline_script(&page.body, "login page");
        // Static assets referenced by the page are served.
        for src in attr_values(&page.body, "src")
            .into_iter()
            .chain(attr_values(&page.body, "href"))
        {
            if src.starts_with("/static/") {
                let r = HttpResp::read(idp.http.get(idp.url(&src)).send().await.unwrap()).await;
                assert_eq!(r.status, 200, "asset {src}");
            }
        }

        // Cookies: HttpOnly, SameSite=Lax, Path=/ (no Secure in dev mode on http).
        let raw = idp
            .http
            .get(Authz::new(&idp.client).url(&idp))
            .send()
            .await
            .unwrap();
        let set: Vec<String> = raw
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(
            set.iter().any(|c| c.starts_with("propusk_bid=")),
            "the login transaction binds the browser with propusk_bid: {set:?}"
        );
        let mut saw_session = false;
        let p = b
            .authorize(&idp, &Authz::new(&idp.client).set("prompt", "login"))
            .await;
        let form: Vec<(String, String)> = p
            .hidden_inputs()
            .into_iter()
            .chain([
                ("identifier".into(), idp.user.login.clone()),
                ("password".into(), idp.user.password.clone()),
            ])
            .collect();
        let r = HttpResp::read(
            idp.http
                .post(idp.url("/login"))
                .header(
                    "Cookie",
                    format!("propusk_bid={}", b.cookie("propusk_bid").unwrap()),
                )
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        for c in set.iter().chain(
            r.headers
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .iter(),
        ) {
            let lc = c.to_ascii_lowercase();
            assert!(lc.contains("httponly"), "cookie must be HttpOnly: {c}");
            assert!(
                lc.contains("samesite=lax"),
                "cookie must be SameSite=Lax: {c}"
            );
            assert!(lc.contains("path=/"), "cookie must have Path=/: {c}");
            saw_session |= c.starts_with("propusk_session=");
        }
        assert!(
            saw_session,
            "a successful sign-in must set propusk_session (HTTP {}): {:?}",
            r.status, r.headers
        );
        // Session id rotated at sign-in.
        let p = b
            .authorize(&idp, &Authz::new(&idp.client).set("prompt", "login"))
            .await;
        b.sign_in(p, &idp.user.login, &idp.user.password).await;
        let before = b.cookie("propusk_session");
        assert!(
            before.is_some(),
            "the browser must hold a session after signing in"
        );
        let p = b
            .authorize(&idp, &Authz::new(&idp.client).set("prompt", "login"))
            .await;
        b.sign_in(p, &idp.user.login, &idp.user.password).await;
        assert_ne!(
            before,
            b.cookie("propusk_session"),
            "the session id must change at every sign-in"
        );
    })
    .await;
}

fn attr_values(body: &str, attr: &str) -> Vec<String> {
    let pat = format!("{attr}=\"");
    body.match_indices(&pat)
        .filter_map(|(i, _)| body[i + pat.len()..].split('"').next().map(str::to_string))
        .collect()
}

fn assert_no_inline_script(body: &str, what: &str) {
    let lower = body.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find("<script") {
        let start = pos + i;
        let end = start + lower[start..].find('>').unwrap_or(0);
        let tag = &lower[start..=end];
        assert!(
            tag.contains(" src="),
            "{what}: inline <script> is not allowed: {tag}"
        );
        let close = lower[end..]
            .find("</script>")
            .map(|c| end + c)
            .unwrap_or(end);
        assert!(
            lower[end + 1..close].trim().is_empty(),
            "{what}: script with inline content"
        );
        pos = end;
    }
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onerror=",
        " onchange=",
        "javascript:",
    ] {
        assert!(
            !lower.contains(handler),
            "{what}: inline event handler `{handler}` is not allowed under a strict CSP"
        );
    }
    assert!(
        !lower.contains(" style=\""),
        "{what}: inline style attribute (CSP style-src 'self')"
    );
}
