//! Bad input of every shape at every endpoint: always a 4xx, never a 5xx, never a panic;
//! the server process stays alive and keeps answering discovery.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::browser::{Authz, Browser};
use super::harness::{basic_auth, for_each_backend, query_map as harness_query, HttpResp, Idp};

const FORM: &str = "application/x-www-form-urlencoded";

/// Collects failures so one run reports every bad answer, not only the first.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, what: &str, r: Result<HttpResp, reqwest::Error>) {
        match r {
            Ok(r) if (400..500).contains(&r.status) => {}
            Ok(r) => {
                let body: String = r.body.chars().take(200).collect();
                self.failures.push(format!(
                    "{what}: expected 4xx, got HTTP {} {body}",
                    r.status
                ));
            }
            Err(e) => {
                let e: String = e.to_string().chars().take(300).collect();
                self.failures
                    .push(format!("{what}: expected 4xx, the connection failed: {e}"));
            }
        }
    }

    /// A status code read off a raw socket (None: no HTTP answer at all).
    fn check_raw(&mut self, what: &str, status: Option<u16>) {
        match status {
            Some(s) if (400..500).contains(&s) => {}
            Some(s) => self
                .failures
                .push(format!("{what}: expected 4xx, got HTTP {s}")),
            None => self.failures.push(format!(
                "{what}: expected 4xx, the server closed the connection without an HTTP answer"
            )),
        }
    }

    /// Like `check`, plus what is legitimate at two endpoints: `/logout` without a valid
    /// hint shows the confirmation page (200, no redirect); `/authorize` with a valid client
    /// and redirect URI answers errors by redirecting there with `error=` (303).
    fn check_for(&mut self, path: &str, what: &str, r: Result<HttpResp, reqwest::Error>) {
        if let Ok(r) = &r {
            let loc = r.header("location");
            if path == "/logout" && r.status == 200 && loc.is_none() {
                return;
            }
            if let (true, 303, Some(l)) = (path == "/authorize", r.status, &loc) {
                if l.starts_with(super::harness::REDIRECT_URI) && l.contains("error=") {
                    if l.len() > 4096 {
                        self.failures.push(format!(
                            "{what}: the error redirect reflects {} bytes of input",
                            l.len()
                        ));
                    }
                    return;
                }
            }
        }
        self.check(what, r);
    }

    fn expect(&mut self, ok: bool, msg: String) {
        if !ok {
            self.failures.push(msg);
        }
    }

    fn finish(self, idp: &Idp) {
        assert!(
            self.failures.is_empty(),
            "{} bad answer(s) on {:?}:\n  {}",
            self.failures.len(),
            idp.backend,
            self.failures.join("\n  ")
        );
    }
}

async fn send(req: reqwest::RequestBuilder) -> Result<HttpResp, reqwest::Error> {
    let r = req.timeout(Duration::from_secs(20)).send().await?;
    Ok(HttpResp::read(r).await)
}

/// Sends raw bytes while reading the answer concurrently (the server may answer and close
/// before the request is fully written); returns the status code of the answer, if any.
async fn raw_status(idp: &Idp, request: Vec<u8>) -> Option<u16> {
    let addr = idp.base.trim_start_matches("http://").to_string();
    let s = tokio::net::TcpStream::connect(&addr).await.ok()?;
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        let _ = wr.shutdown().await;
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() >= 12 {
                        break;
                    }
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
    writer.abort();
    let head = String::from_utf8_lossy(&buf).into_owned();
    head.strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

const POST_ENDPOINTS: &[&str] = &[
    "/token",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/authorize",
    "/login",
    "/consent",
    "/logout",
];

#[tokio::test]
async fn negative_oversized_input() {
    for_each_backend(|mut idp| async move {
        let mut rep = Report::default();
        let big = "A".repeat(1024 * 1024);
        let auth = basic_auth(&idp.client.id, idp.client.secret.as_deref().unwrap());
        // 1 MB in a query parameter: more than an http::Uri can hold, so on a raw socket.
        for path in ["/authorize", "/login", "/consent", "/logout", "/userinfo"] {
            let head = format!("GET {path}?client_id={}&state={big} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", idp.client.id);
            let status = raw_status(&idp, head.into_bytes()).await;
            rep.check_raw(&format!("GET {path} with a 1 MB query parameter"), status);
        }
        // 60 KiB in a query parameter (fits a URI).
        let mid = "A".repeat(60 * 1024);
        for path in ["/authorize", "/login", "/consent", "/logout", "/userinfo"] {
            let u = format!("{}?client_id={}&state={mid}", idp.url(path), idp.client.id);
            rep.check_for(path, &format!("GET {path} with a 60 KiB query parameter"), send(idp.http.get(u)).await);
        }
        // 1 MB in a form body.
        for path in POST_ENDPOINTS {
            let body = format!("grant_type=authorization_code&code={big}&tx={big}");
            let req = idp
                .http
                .post(idp.url(path))
                .header("Content-Type", FORM)
                .header("Authorization", auth.as_str())
                .body(body);
            rep.check(
                &format!("POST {path} with a 1 MB form parameter"),
                send(req).await,
            );
        }
        // 64 KiB parameter (at the body limit), accepted as a body but rejected as input.
        let code = "B".repeat(60 * 1024);
        let req = idp
            .http
            .post(idp.url("/token"))
            .header("Authorization", auth.as_str())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
            ]);
        rep.check("POST /token with a 60 KiB code", send(req).await);
        // Huge Authorization header.
        let huge = format!("Basic {}", "Q".repeat(64 * 1024));
        for path in ["/token", "/introspect", "/revoke"] {
            let req = idp
                .http
                .post(idp.url(path))
                .header("Authorization", huge.as_str())
                .form(&[("grant_type", "client_credentials")]);
            rep.check(
                &format!("POST {path} with a 64 KiB Authorization header"),
                send(req).await,
            );
        }
        let req = idp
            .http
            .get(idp.url("/userinfo"))
            .header("Authorization", format!("Bearer {}", "x".repeat(64 * 1024)));
        rep.check("GET /userinfo with a 64 KiB bearer token", send(req).await);
        let req = idp
            .http
            .get(idp.url("/userinfo"))
            .header("Authorization", format!("Bearer {}", "x".repeat(7 * 1024)));
        rep.check("GET /userinfo with a 7 KiB bearer token", send(req).await);
        // Many parameters.
        let many: String = (0..5000).map(|i| format!("p{i}=v&")).collect();
        let req = idp
            .http
            .post(idp.url("/token"))
            .header("Content-Type", FORM)
            .header("Authorization", auth.as_str())
            .body(many);
        rep.check("POST /token with 5000 parameters", send(req).await);
        idp.assert_alive("oversized input").await;
        rep.finish(&idp);
    })
    .await;
}

#[tokio::test]
async fn negative_repeated_parameters() {
    for_each_backend(|mut idp| async move {
        let mut rep = Report::default();
        let auth = basic_auth(&idp.client.id, idp.client.secret.as_deref().unwrap());
        // Duplicate client_id at /authorize (RFC 6749 §3.1: parameters must not repeat).
        let a = Authz::new(&idp.client);
        let u = format!("{}&client_id={}", a.url(&idp), idp.client.id);
        let r = send(idp.http.get(u)).await;
        if let Ok(r) = &r {
            assert!(
                r.header("location").is_none_or(|l| !l.contains("code=")),
                "duplicate client_id must not yield a code"
            );
        }
        rep.check("GET /authorize with client_id twice", r);
        let u = format!(
            "{}&redirect_uri=https%3A%2F%2Fattacker.example.net%2Fcb",
            a.url(&idp)
        );
        let r = send(idp.http.get(u)).await;
        if let Ok(r) = &r {
            assert!(
                r.header("location").is_none_or(|l| !l.contains("attacker")),
                "duplicate redirect_uri must never redirect to the second one"
            );
        }
        rep.check("GET /authorize with redirect_uri twice", r);
        for (what, body) in [
            (
                "grant_type twice",
                "grant_type=authorization_code&grant_type=client_credentials&code=x".to_string(),
            ),
            (
                "code twice",
                "grant_type=authorization_code&code=a&code=b&code_verifier=x".to_string(),
            ),
            (
                "client_id twice (post auth)",
                format!(
                    "grant_type=client_credentials&client_id={0}&client_id={0}&client_secret=x",
                    idp.client.id
                ),
            ),
        ] {
            let mut req = idp
                .http
                .post(idp.url("/token"))
                .header("Content-Type", FORM)
                .body(body);
            if !what.contains("post auth") {
                req = req.header("Authorization", auth.as_str());
            }
            rep.check(&format!("POST /token with {what}"), send(req).await);
        }
        for path in ["/introspect", "/revoke"] {
            let req = idp
                .http
                .post(idp.url(path))
                .header("Content-Type", FORM)
                .header("Authorization", auth.as_str())
                .body("token=a&token=b");
            rep.check(&format!("POST {path} with token twice"), send(req).await);
        }
        let req = idp
            .http
            .post(idp.url("/userinfo"))
            .header("Content-Type", FORM)
            .body("access_token=a&access_token=b");
        rep.check("POST /userinfo with access_token twice", send(req).await);
        // Bearer in the header and in the body at once (RFC 6750 §2: only one method).
        let req = idp
            .http
            .post(idp.url("/userinfo"))
            .bearer_auth("a")
            .form(&[("access_token", "b")]);
        rep.check("POST /userinfo with two token methods", send(req).await);
        idp.assert_alive("repeated parameters").await;
        rep.finish(&idp);
    })
    .await;
}

#[tokio::test]
async fn negative_bad_encoding() {
    for_each_backend(|mut idp| async move {
        let mut rep = Report::default();
        let auth = basic_auth(&idp.client.id, idp.client.secret.as_deref().unwrap());
        for q in ["client_id=%FF%FE", "client_id=%zz", "client_id=%E0%A4%A", "client_id=a%00b", "state=%", "%FF=1"] {
            for path in ["/authorize", "/logout", "/login", "/consent"] {
                let u = format!("{}?{q}", idp.url(path));
                rep.check_for(path, &format!("GET {path}?{q}"), send(idp.http.get(u)).await);
            }
        }
        // Valid client and redirect, broken state: an error (redirect with error or page), never 5xx.
        let a = Authz::new(&idp.client);
        let u = format!("{}&prompt=%FF", a.remove("prompt").url(&idp));
        let r = send(idp.http.get(u)).await.unwrap();
        assert!(r.status < 500, "GET /authorize with an invalid UTF-8 prompt: HTTP {}", r.status);
        if let Some(l) = r.header("location") {
            assert!(l.contains("error="), "invalid UTF-8 must not succeed: {l}");
        }
        for body in ["grant_type=%FF%FE", "grant_type=authorization_code&code=%zz", "grant_type=authorization_code&code=%E0%A4%A", "\u{0}\u{1}\u{2}", "===&&&=="] {
            for path in POST_ENDPOINTS {
                let req = idp.http.post(idp.url(path)).header("Content-Type", FORM).header("Authorization", auth.as_str()).body(body);
                rep.check_for(path, &format!("POST {path} body {body:?}"), send(req).await);
            }
        }
        // Raw invalid UTF-8 bytes (not percent-encoded) in a form body.
        for path in ["/token", "/login", "/authorize"] {
            let req = idp.http.post(idp.url(path)).header("Content-Type", FORM).header("Authorization", auth.as_str()).body(vec![b'c', b'o', b'd', b'e', b'=', 0xff, 0xfe, 0xc3]);
            rep.check(&format!("POST {path} with raw invalid UTF-8"), send(req).await);
        }
        // Broken Authorization headers.
        for h in ["Basic !!!notbase64", "Basic Zm9v", "Basic ", "Bearer", "Digest x", "Basic Og==", "Basic JUZGOiVGRg=="] {
            let req = idp.http.post(idp.url("/token")).header("Authorization", h).form(&[("grant_type", "client_credentials")]);
            rep.check(&format!("POST /token with Authorization {h:?}"), send(req).await);
            let req = idp.http.get(idp.url("/userinfo")).header("Authorization", h);
            rep.check(&format!("GET /userinfo with Authorization {h:?}"), send(req).await);
        }
        let bytes = reqwest::header::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap();
        let req = idp.http.post(idp.url("/token")).header("Authorization", bytes).form(&[("grant_type", "client_credentials")]);
        rep.check("POST /token with non-ASCII Authorization bytes", send(req).await);
        // Tokens that look like JWTs but are not.
        for tok in ["a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJFUzI1NiJ9.%%%.x", "...."] {
            rep.check(&format!("GET /userinfo with token {tok:?}"), send(idp.http.get(idp.url("/userinfo")).bearer_auth(tok)).await);
            let u = format!("{}?id_token_hint={tok}", idp.url("/logout"));
            let r = send(idp.http.get(u)).await;
            if let Ok(r) = &r {
                assert!(r.header("location").is_none(), "logout with a junk hint must not redirect");
            }
            rep.check(&format!("GET /logout with id_token_hint {tok:?}"), r);
        }
        // Unusual but well-formed: claims that are not JSON, max_age not a number.
        for (k, v) in [("claims", "{not json"), ("max_age", "-1"), ("max_age", "abc"), ("prompt", "none login"), ("response_type", "token"), ("code_challenge", "short"), ("scope", "profile")] {
            let a = Authz::new(&idp.client).set(k, v);
            let r = send(idp.http.get(a.url(&idp))).await.unwrap();
            let loc = r.header("location").unwrap_or_default();
            assert!(
                r.status == 400 || (r.status == 303 && loc.starts_with(super::harness::REDIRECT_URI) && loc.contains("error=")),
                "GET /authorize with {k}={v}: expected an error redirect or page, got HTTP {} Location {loc}",
                r.status
            );
        }
        idp.assert_alive("badly encoded input").await;
        rep.finish(&idp);
    })
    .await;
}

#[tokio::test]
async fn negative_wrong_content_type() {
    for_each_backend(|mut idp| async move {
        let mut rep = Report::default();
        let auth = basic_auth(&idp.client.id, idp.client.secret.as_deref().unwrap());
        for path in POST_ENDPOINTS {
            let req = idp
                .http
                .post(idp.url(path))
                .header("Authorization", auth.as_str())
                .json(&serde_json::json!({"grant_type": "client_credentials", "token": "x"}));
            rep.check(&format!("POST {path} with a JSON body"), send(req).await);
            let req = idp
                .http
                .post(idp.url(path))
                .header("Authorization", auth.as_str())
                .body("grant_type=client_credentials&token=x");
            rep.check(
                &format!("POST {path} without Content-Type"),
                send(req).await,
            );
            let req = idp
                .http
                .post(idp.url(path))
                .header("Authorization", auth.as_str())
                .header("Content-Type", "multipart/form-data; boundary=x")
                .body("--x--");
            rep.check(&format!("POST {path} with multipart"), send(req).await);
            let req = idp
                .http
                .post(idp.url(path))
                .header("Authorization", auth.as_str())
                .header("Content-Type", FORM)
                .header("Content-Encoding", "gzip")
                .body("notgzip");
            let r = send(req).await;
            if let Ok(r) = &r {
                assert!(
                    r.status < 500,
                    "POST {path} with a bogus Content-Encoding: HTTP {}",
                    r.status
                );
            }
        }
        // Wrong methods and unknown paths.
        for (m, path) in [
            ("PUT", "/token"),
            ("DELETE", "/authorize"),
            ("GET", "/token"),
            ("GET", "/introspect"),
            ("PATCH", "/userinfo"),
            ("GET", "/nope"),
            ("GET", "/static/../Cargo.toml"),
            ("GET", "/static/%2e%2e%2fCargo.toml"),
            ("GET", "/.well-known/../jwks"),
        ] {
            let req = idp.http.request(
                reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                idp.url(path),
            );
            let r = send(req).await;
            if let Ok(r) = &r {
                assert!(
                    !r.body.contains("[workspace]") && !r.body.contains("[package]"),
                    "{m} {path} must not serve files outside static"
                );
            }
            if path == "/.well-known/../jwks" {
                continue; // normalised by the client to /jwks
            }
            rep.check(&format!("{m} {path}"), r);
        }
        // Login/consent with unknown or missing transactions, and forged CSRF.
        rep.check(
            "GET /login without tx",
            send(idp.http.get(idp.url("/login"))).await,
        );
        rep.check(
            "GET /consent?tx=nope",
            send(idp.http.get(idp.url("/consent?tx=nope"))).await,
        );
        let b = Browser::new(&idp);
        let page = b.authorize(&idp, &Authz::new(&idp.client)).await;
        let tx = page.hidden("tx").unwrap_or_default();
        let form = vec![
            ("tx".to_string(), tx.clone()),
            ("csrf".to_string(), "forged".to_string()),
            ("identifier".into(), idp.user.login.clone()),
            ("password".into(), idp.user.password.clone()),
        ];
        let p = b.post_form("/login", &form).await;
        assert!(
            (400..500).contains(&p.status),
            "POST /login with a forged csrf: expected 4xx, got {}",
            p.describe()
        );
        assert!(
            b.cookie("propusk_session").is_none(),
            "a forged login form must not create a session"
        );
        // The transaction is bound to the browser: another browser cannot use it.
        let other = Browser::new(&idp);
        let mut form2 = page.hidden_inputs();
        form2.push(("identifier".into(), idp.user.login.clone()));
        form2.push(("password".into(), idp.user.password.clone()));
        let p = other.post_form("/login", &form2).await;
        assert!(
            (400..500).contains(&p.status),
            "POST /login from another browser: expected 4xx, got {}",
            p.describe()
        );
        assert!(other.cookie("propusk_session").is_none());
        idp.assert_alive("wrong content types").await;
        rep.finish(&idp);
    })
    .await;
}

/// Malformed HTTP straight on the socket.
#[tokio::test]
async fn negative_raw_http() {
    for_each_backend(|mut idp| async move {
        let addr = idp.base.trim_start_matches("http://").to_string();
        let requests: Vec<Vec<u8>> = vec![
            b"GET /authorize?client_id=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\nConnection: close\r\n\r\na=\xff\xfe\xfd".to_vec(),
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort".to_vec(),
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n".to_vec(),
            b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\nzz\r\n".to_vec(),
            b"GET /userinfo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xff\r\nConnection: close\r\n\r\n".to_vec(),
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
        ];
        for (i, req) in requests.iter().enumerate() {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let _ = s.write_all(req).await;
            let _ = s.shutdown().await;
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
            let head = String::from_utf8_lossy(&buf[..buf.len().min(40)]).into_owned();
            assert!(!head.starts_with("HTTP/1.1 5"), "raw request #{i} got a 5xx: {head}");
        }
        idp.assert_alive("malformed HTTP").await;
    })
    .await;
}

/// NUL bytes reach the database as text; Postgres refuses them ("invalid byte sequence"),
/// which must become a 4xx, not a 5xx.
#[tokio::test]
async fn negative_nul_bytes() {
    for_each_backend(|mut idp| async move {
        let mut rep = Report::default();
        let u = format!(
            "{}?client_id=a%00b&response_type=code&scope=openid",
            idp.url("/authorize")
        );
        rep.check(
            "GET /authorize with a NUL in client_id",
            send(idp.http.get(u)).await,
        );
        let req = idp
            .http
            .post(idp.url("/token"))
            .header("Authorization", basic_auth("a\u{0}b", "x"))
            .form(&[("grant_type", "client_credentials")]);
        rep.check("POST /token, Basic client id with a NUL", send(req).await);
        let req = idp.http.post(idp.url("/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "a\u{0}b"),
            ("client_secret", "x"),
        ]);
        rep.check(
            "POST /token, client_secret_post client_id with a NUL",
            send(req).await,
        );
        for path in ["/introspect", "/revoke"] {
            let req = idp.http.post(idp.url(path)).form(&[
                ("token", "x\u{0}y"),
                ("client_id", "a\u{0}b"),
                ("client_secret", "x"),
            ]);
            rep.check(
                &format!("POST {path}, client_id with a NUL"),
                send(req).await,
            );
        }
        rep.check(
            "GET /userinfo, token with a NUL",
            send(
                idp.http
                    .post(idp.url("/userinfo"))
                    .form(&[("access_token", "a\u{0}b")]),
            )
            .await,
        );
        // Sign-in with a NUL in the identifier: the login page again (200) or a 4xx.
        let b = Browser::new(&idp);
        let page = b.authorize(&idp, &Authz::new(&idp.client)).await;
        let p = b.submit_login(&page, "ivan\u{0}@example.ru", "whatever-123").await;
        rep.expect(p.status < 500, format!("POST /login with a NUL in the identifier: expected the login page or a 4xx, got HTTP {}", p.status));
        let page = b.authorize(&idp, &Authz::new(&idp.client).set("login_hint", "a\u{0}b")).await;
        rep.expect(page.status < 500, format!("GET /authorize with a NUL in login_hint: got HTTP {}", page.status));
        let a = Authz::new(&idp.client).set("state", "s\u{0}t").set("nonce", "n\u{0}");
        let page = b.authorize(&idp, &a).await;
        let page = if page.is_login_page() { b.sign_in(page, &idp.user.login, &idp.user.password).await } else { page };
        match page.location().map(|l| harness_query(&l)) {
            Some(q) if q.contains_key("code") => {
                let r = idp.exchange_code(&idp.client, &q["code"], &a.verifier, a.redirect_uri()).await;
                rep.expect(r.status < 500, format!("code exchange after NULs in state/nonce: HTTP {} {}", r.status, r.body));
            }
            _ => rep.expect(page.status < 500, format!("authorization with NULs in state/nonce: HTTP {}", page.status)),
        }
        idp.assert_alive("NUL bytes").await;
        rep.finish(&idp);
    })
    .await;
}
