//! One-time codes by push to the citizen's mobile app: registering a device through
//! `POST /account/push-devices` with a bearer access token (and its refusals), a sign-in with
//! password + a code delivered through the HTTP gateway (a local receiver stands in for the
//! push gateway), and removal of the device on the security page.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::browser::{exchange, expect_callback, Authz, Browser, Page};
use super::harness::{for_each_backend_with, random_hex, ClientSpec, Idp, TestClient};
use super::otp::{ask_code, code_in, enter_code, is_second_factor_page, through_consent, ACR2};

const PUSH_SCOPE: &str = "propusk:push";

/// A local HTTP gateway: records the JSON body of every POST and answers 200.
#[derive(Clone)]
struct Gateway {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Gateway {
    async fn start() -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = s2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then Content-Length bytes of body.
                    let body = loop {
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break buf[end + 4..end + 4 + len].to_vec();
                        }
                    };
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        seen.lock().unwrap().push(v);
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Gateway { url, seen }
    }

    /// The messages sent to `to` so far.
    fn to(&self, to: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["to"] == to)
            .cloned()
            .collect()
    }

    /// Waits for a code message to `to` beyond the first `seen`; returns the message.
    async fn next(&self, to: &str, seen: usize) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let msgs = self.to(to);
            if msgs.len() > seen {
                return msgs[msgs.len() - 1].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no message to the push device reached the gateway"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

/// The citizen's mobile app: a client an operator approved the push scope for.
async fn mobile_app(idp: &Idp) -> TestClient {
    idp.add_client(ClientSpec {
        name: "Propusk mobile",
        scopes: &["openid", "profile", PUSH_SCOPE],
        ..ClientSpec::default()
    })
    .await
}

/// Signs in through `client` with `scope` (password only); returns the access token.
async fn access_token(idp: &Idp, client: &TestClient, scope: &str) -> String {
    let b = Browser::new(idp);
    let a = Authz::new(client).set("scope", scope);
    let page = b.authorize(idp, &a).await;
    let page = b.sign_in(page, &idp.user.login, &idp.user.password).await;
    let cb = expect_callback(idp, &page, &a);
    exchange(idp, client, &a, cb.code()).await.access_token
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    json: Value,
}

async fn register(idp: &Idp, token: Option<&str>, content_type: &str, body: &str) -> Answer {
    let mut req = idp
        .http
        .post(idp.url("/account/push-devices"))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let www_authenticate = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    Answer {
        status,
        www_authenticate,
        json,
    }
}

fn body(platform: &str, token: &str, name: &str) -> String {
    serde_json::json!({ "platform": platform, "token": token, "name": name }).to_string()
}

fn refused(a: &Answer, status: u16, error: &str) {
    assert_eq!(a.status, status, "{error}: {}", a.json);
    assert_eq!(a.json["error"], error, "{}", a.json);
    assert!(a.json["error_description"].as_str().is_some(), "{}", a.json);
}

const JSON: &str = "application/json";

#[tokio::test]
async fn push_device_registration_needs_a_fresh_token_with_the_push_scope() {
    let env = [("IDP_OTP__PUSH_ENROL_MAX_AUTH_AGE_SECS", "5")];
    for_each_backend_with(&env, |idp| async move {
        let app = mobile_app(&idp).await;
        let at = access_token(&idp, &app, &format!("openid {PUSH_SCOPE}")).await;
        let signed_in = std::time::Instant::now();
        let device_token = format!("fcm-{}", random_hex(32));

        // The right call: 201 with the device.
        let a = register(
            &idp,
            Some(&at),
            JSON,
            &body("android", &device_token, " Pixel 8 "),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.json);
        assert_eq!(a.json["platform"], "android");
        assert_eq!(a.json["name"], "Pixel 8");
        assert!(a.json["id"].as_str().is_some_and(|s| !s.is_empty()));

        // Malformed bodies (with the same, still fresh, token).
        for (ct, b) in [
            ("text/plain", body("android", &device_token, "P")),
            (JSON, "{not json".to_string()),
            (JSON, body("windows", &device_token, "P")),
            (JSON, body("ios", "", "P")),
            (JSON, body("ios", "has spaces in it", "P")),
            (JSON, serde_json::json!({ "platform": "ios" }).to_string()),
            (
                JSON,
                serde_json::json!({ "platform": "ios", "token": "t", "extra": 1 }).to_string(),
            ),
            (JSON, body("ios", &"x".repeat(5000), "P")),
        ] {
            let a = register(&idp, Some(&at), ct, &b).await;
            refused(&a, 400, "invalid_request");
        }

        // No token, a forged one.
        let a = register(&idp, None, JSON, &body("android", &device_token, "Pixel")).await;
        refused(&a, 401, "invalid_token");
        assert!(a.www_authenticate.unwrap().starts_with("Bearer "));
        let a = register(
            &idp,
            Some("not.a.jwt"),
            JSON,
            &body("android", &device_token, "P"),
        )
        .await;
        refused(&a, 401, "invalid_token");

        // A token of the same person without the scope (the ordinary portal client).
        let plain = access_token(&idp, &idp.client, "openid").await;
        let a = register(
            &idp,
            Some(&plain),
            JSON,
            &body("android", &device_token, "P"),
        )
        .await;
        refused(&a, 403, "insufficient_scope");
        assert!(
            a.www_authenticate
                .unwrap()
                .contains("scope=\"propusk:push\""),
            "RFC 6750 §3: the scope needed"
        );
        // A portal that was not approved for the scope cannot even ask for it.
        let b = Browser::new(&idp);
        let ask = Authz::new(&idp.client).set("scope", &format!("openid {PUSH_SCOPE}"));
        let page = b.authorize(&idp, &ask).await;
        let cb = super::browser::redirect_to(&page, ask.redirect_uri());
        assert_eq!(cb.get("error"), Some("invalid_scope"));

        let kinds = idp.audit_kinds();
        assert!(kinds.iter().any(|k| k == "push_device.added"), "{kinds:?}");
        // The token is sealed in the database and never logged.
        let dump = idp.sql("SELECT * FROM push_devices");
        assert!(dump.contains("Pixel 8"), "{dump}");
        assert!(!dump.contains(&device_token), "the token is sealed: {dump}");
        assert!(!idp.server_log().contains(&device_token));

        // An operator can register one from the CLI (demo, support); bad input is refused.
        let out = idp
            .cli(&[
                "users",
                "add-push-device",
                "--login",
                &idp.user.login,
                "--platform",
                "huawei",
                "--token",
                &format!("hms-{}", random_hex(16)),
                "--name",
                "Mate 60",
                "--json",
            ])
            .await;
        assert!(out.contains("\"platform\":\"huawei\""), "{out}");
        let live = idp.sql("SELECT name FROM push_devices WHERE removed_at IS NULL");
        assert!(
            live.contains("Mate 60") && live.contains("Pixel 8"),
            "{live}"
        );
        let (ok, _, err) = idp
            .cli_with(
                &[],
                &[
                    "users",
                    "add-push-device",
                    "--login",
                    &idp.user.login,
                    "--platform",
                    "bada",
                    "--token",
                    "t",
                ],
            )
            .await;
        assert!(!ok && err.contains("android, ios or huawei"), "{err}");

        // The sign-in behind the token gets old: a new factor needs a fresh one (RFC 9470).
        let stale_at = signed_in + Duration::from_secs(7);
        tokio::time::sleep_until(stale_at.into()).await;
        let a = register(
            &idp,
            Some(&at),
            JSON,
            &body("ios", &format!("{device_token}-2"), "P"),
        )
        .await;
        refused(&a, 401, "insufficient_user_authentication");
        assert!(a.www_authenticate.unwrap().contains("max_age=5"));
        let mut idp = idp;
        idp.assert_alive("after bad registrations").await;
    })
    .await;
}

/// The security page of a browser with a fresh session.
async fn security_page(idp: &Idp, b: &Browser) -> Page {
    let page = b.navigate(&idp.url("/account/security")).await;
    let page = if page.is_login_page() {
        b.submit_login(&page, &idp.user.login, &idp.user.password)
            .await
    } else {
        page
    };
    assert_eq!(page.url.path(), "/account/security", "{}", page.describe());
    page
}

#[tokio::test]
async fn push_code_signs_in_with_amr_otp_and_the_device_is_removed_on_the_security_page() {
    let gw = Gateway::start().await;
    let env = [("IDP_NOTIFY__GATEWAY__URL", gw.url.as_str())];
    for_each_backend_with(&env, |idp| {
        let gw = gw.clone();
        async move {
            let app = mobile_app(&idp).await;
            let at = access_token(&idp, &app, &format!("openid {PUSH_SCOPE}")).await;
            let device_token = format!("apns-{}", random_hex(32));
            let a = register(
                &idp,
                Some(&at),
                JSON,
                &body("ios", &device_token, "iPhone Ivana"),
            )
            .await;
            assert_eq!(a.status, 201, "{}", a.json);

            // A portal asks for two factors: "code in the app" is offered.
            let b = Browser::new(&idp);
            let authz = Authz::new(&idp.client).set("acr_values", ACR2);
            let page = b.authorize(&idp, &authz).await;
            let page = b
                .submit_login(&page, &idp.user.login, &idp.user.password)
                .await;
            assert!(is_second_factor_page(&page), "{}", page.describe());
            assert!(page.body.contains("value=\"push\""), "{}", page.body);
            assert!(page.body.contains("iPhone Ivana"), "{}", page.body);
            let seen = gw.to(&device_token).len();
            let page = ask_code(&b, &page, "push").await;
            assert!(is_second_factor_page(&page), "{}", page.describe());
            assert!(
                page.body.contains("Код отправлен: iPhone Ivana"),
                "{}",
                page.body
            );
            // The gateway got the documented JSON, channel push, the device token as `to`.
            let m = gw.next(&device_token, seen).await;
            assert_eq!(m["channel"], "push", "{m}");
            assert_eq!(m["platform"], "ios", "{m}");
            assert_eq!(m["title"], "Код для входа", "{m}");
            assert_eq!(m["locale"], "ru", "{m}");
            assert!(m["id"].as_str().is_some(), "{m}");
            let code = code_in(m["text"].as_str().unwrap()).expect("a code in the push text");
            let page = through_consent(&b, enter_code(&b, &page, "push", &code).await).await;
            let cb = expect_callback(&idp, &page, &authz);
            let t = exchange(&idp, &idp.client, &authz, cb.code()).await;
            assert_eq!(t.claims["acr"], ACR2, "{}", t.claims);
            let amr: Vec<&str> = t.claims["amr"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(amr, ["pwd", "otp", "mfa"]);
            assert!(!idp.server_log().contains(&code), "no code in the log");
            assert!(
                !idp.server_log().contains(&device_token),
                "no token in the log"
            );

            // Next time the app is offered first.
            let b2 = Browser::new(&idp);
            let a2 = Authz::new(&idp.client).set("acr_values", ACR2);
            let page = b2.authorize(&idp, &a2).await;
            let page = b2
                .submit_login(&page, &idp.user.login, &idp.user.password)
                .await;
            assert!(
                page.body.contains("value=\"push\" checked"),
                "{}",
                page.body
            );

            // The security page lists the device with its last use, and removes it.
            let page = security_page(&idp, &b).await;
            assert!(page.body.contains("Приложение Пропуск"), "{}", page.body);
            assert!(page.body.contains("iPhone Ivana"), "{}", page.body);
            assert!(page.body.contains("последний вход"), "{}", page.body);
            let factor = page
                .body
                .split("value=\"push:")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(|id| format!("push:{id}"))
                .expect("a remove form for the device");
            let csrf = page.hidden("csrf").unwrap();
            let form = |f: &str| {
                vec![
                    ("csrf".to_string(), csrf.clone()),
                    ("factor".to_string(), f.to_string()),
                ]
            };
            let p = b
                .post_form("/account/security/remove", &form(&factor))
                .await;
            assert_eq!(p.status, 303, "{}", p.describe());
            let page = b.follow(p).await;
            assert!(!page.body.contains("iPhone Ivana"), "{}", page.describe());
            let p = b
                .post_form("/account/security/remove", &form(&factor))
                .await;
            assert_eq!(p.status, 400, "nothing left to remove: {}", p.describe());
            let kinds = idp.audit_kinds();
            assert!(kinds.iter().any(|k| k == "factor.removed"), "{kinds:?}");

            // No more codes by push.
            let b3 = Browser::new(&idp);
            let a3 = Authz::new(&idp.client).set("acr_values", ACR2);
            let page = b3.authorize(&idp, &a3).await;
            let page = b3
                .submit_login(&page, &idp.user.login, &idp.user.password)
                .await;
            assert!(is_second_factor_page(&page), "{}", page.describe());
            assert!(!page.body.contains("value=\"push\""), "{}", page.body);
            let p = ask_code(&b3, &page, "push").await;
            assert_eq!(p.status, 400, "{}", p.describe());
        }
    })
    .await;
}
