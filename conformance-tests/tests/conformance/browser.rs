//! A tiny "browser": its own cookie jar, no automatic redirects; follows 30x within the
//! issuer's origin and stops at a redirect elsewhere (the relying party) or at a page.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::harness::{
    self, check_id_token, check_token_response, pkce, random_b64, HttpResp, Idp, TestClient,
};

/// One HTTP answer as the browser saw it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    /// The URL that produced this answer.
    pub url: Url,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }

    /// The Location header resolved against the request URL.
    pub fn location(&self) -> Option<Url> {
        let l = self.header("location")?;
        Some(
            self.url
                .join(&l)
                .unwrap_or_else(|e| panic!("bad Location {l:?}: {e}")),
        )
    }

    pub fn is_login_page(&self) -> bool {
        self.status == 200 && self.url.path() == "/login"
    }

    pub fn is_consent_page(&self) -> bool {
        self.status == 200 && self.url.path() == "/consent"
    }

    pub fn is_html(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    }

    /// `<input type="hidden" name="N" value="V">` pairs, in page order.
    pub fn hidden_inputs(&self) -> Vec<(String, String)> {
        inputs(&self.body)
            .into_iter()
            .filter(|a| a.get("type").map(String::as_str) == Some("hidden"))
            .filter_map(|a| {
                Some((
                    a.get("name")?.clone(),
                    a.get("value").cloned().unwrap_or_default(),
                ))
            })
            .collect()
    }

    pub fn hidden(&self, name: &str) -> Option<String> {
        self.hidden_inputs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The `value` of the input named `name` (any type).
    pub fn input_value(&self, name: &str) -> Option<String> {
        inputs(&self.body)
            .into_iter()
            .find(|a| a.get("name").map(String::as_str) == Some(name))
            .and_then(|a| a.get("value").cloned())
    }

    pub fn describe(&self) -> String {
        let body: String = self.body.chars().take(1500).collect();
        format!(
            "HTTP {} at {} (Location: {:?})\n{body}",
            self.status,
            self.url,
            self.header("location")
        )
    }
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Attributes of every `<input ...>` tag (simple scanner; values in double or single quotes).
pub fn inputs(body: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let lower = body.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find("<input") {
        let start = pos + i + "<input".len();
        let end = match body[start..].find('>') {
            Some(e) => start + e,
            None => break,
        };
        out.push(attributes(&body[start..end]));
        pos = end;
    }
    out
}

fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let b = tag.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = tag[ns..i].to_ascii_lowercase();
        if name.is_empty() {
            i += 1;
            continue;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            let value;
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                i += 1;
                let vs = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = &tag[vs..i];
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = &tag[vs..i];
            }
            m.insert(name, html_unescape(value));
        } else {
            m.insert(name, String::new());
        }
    }
    m
}

/// The parameters of an authorization request, in order (so tests can reorder them).
#[derive(Clone, Debug)]
pub struct Authz {
    pub params: Vec<(String, String)>,
    pub verifier: String,
}

impl Authz {
    /// `response_type=code`, the client's first redirect URI, `scope=openid`, random
    /// `state` and `nonce`, PKCE S256.
    pub fn new(client: &TestClient) -> Authz {
        let p = pkce();
        let params = vec![
            ("response_type", "code".to_string()),
            ("client_id", client.id.clone()),
            ("redirect_uri", client.redirect_uris[0].clone()),
            ("scope", "openid".to_string()),
            ("state", random_b64(12)),
            ("nonce", random_b64(12)),
            ("code_challenge", p.challenge),
            ("code_challenge_method", "S256".to_string()),
        ];
        Authz {
            params: params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            verifier: p.verifier,
        }
    }

    /// Sets (replaces or appends) a parameter.
    pub fn set(mut self, k: &str, v: &str) -> Authz {
        match self.params.iter_mut().find(|(pk, _)| pk == k) {
            Some(p) => p.1 = v.to_string(),
            None => self.params.push((k.to_string(), v.to_string())),
        }
        self
    }

    pub fn remove(mut self, k: &str) -> Authz {
        self.params.retain(|(pk, _)| pk != k);
        self
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn state(&self) -> &str {
        self.get("state").unwrap_or("")
    }

    pub fn nonce(&self) -> Option<&str> {
        self.get("nonce")
    }

    pub fn redirect_uri(&self) -> &str {
        self.get("redirect_uri").unwrap_or("")
    }

    pub fn url(&self, idp: &Idp) -> String {
        let mut u = Url::parse(&idp.url("/authorize")).unwrap();
        u.query_pairs_mut().extend_pairs(self.params.iter());
        u.to_string()
    }
}

/// An authorization response delivered to the client's redirect URI.
#[derive(Debug)]
pub struct Callback {
    pub url: Url,
    pub params: BTreeMap<String, String>,
}

impl Callback {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    pub fn code(&self) -> &str {
        self.get("code")
            .unwrap_or_else(|| panic!("authorization response without code: {}", self.url))
    }
}

/// Tokens from a complete code flow, ID token already checked.
#[derive(Debug)]
pub struct Tokens {
    pub json: Value,
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: Option<String>,
    pub claims: Value,
}

pub struct Browser {
    origin: Url,
    http: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new(idp: &Idp) -> Browser {
        Browser {
            origin: Url::parse(&idp.base).unwrap(),
            http: harness::plain_http(),
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn store_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        for v in headers.get_all("set-cookie") {
            let s = String::from_utf8_lossy(v.as_bytes());
            let mut parts = s.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            let removal = value.is_empty()
                || parts.any(|a| {
                    let a = a.trim().to_ascii_lowercase();
                    a == "max-age=0" || a.starts_with("max-age=-")
                });
            if removal {
                jar.remove(&name);
            } else {
                jar.insert(name, value);
            }
        }
    }

    fn same_origin(&self, u: &Url) -> bool {
        u.origin() == self.origin.origin()
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: Url) -> Page {
        let req = match self.cookie_header() {
            Some(c) => req.header("Cookie", c),
            None => req,
        };
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        let r = HttpResp::read(r).await;
        self.store_cookies(&r.headers);
        Page {
            status: r.status,
            url,
            headers: r.headers,
            body: r.body,
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        let u = Url::parse(url).unwrap_or_else(|e| panic!("bad URL {url}: {e}"));
        self.send(self.http.get(u.clone()), u).await
    }

    pub async fn post_form(&self, url: &str, form: &[(String, String)]) -> Page {
        let u = self.origin.join(url).unwrap();
        self.send(self.http.post(u.clone()).form(form), u).await
    }

    /// Follows redirects inside the issuer's origin; stops at any other answer.
    pub async fn follow(&self, mut page: Page) -> Page {
        for _ in 0..10 {
            match page.location() {
                Some(loc) if page.is_redirect() && self.same_origin(&loc) => {
                    page = self.get(loc.as_str()).await
                }
                _ => return page,
            }
        }
        panic!(
            "too many redirects inside the issuer, last: {}",
            page.describe()
        );
    }

    pub async fn navigate(&self, url: &str) -> Page {
        let p = self.get(url).await;
        self.follow(p).await
    }

    pub async fn authorize(&self, idp: &Idp, a: &Authz) -> Page {
        self.navigate(&a.url(idp)).await
    }

    /// Submits the login form of `page`; handles the consent page; returns the next answer
    /// (normally the redirect to the client).
    pub async fn sign_in(&self, page: Page, login: &str, password: &str) -> Page {
        let next = self.submit_login(&page, login, password).await;
        if next.is_consent_page() {
            return self.consent(next, "allow").await;
        }
        next
    }

    /// Posts the login form without handling consent.
    pub async fn submit_login(&self, page: &Page, login: &str, password: &str) -> Page {
        assert!(
            page.is_login_page(),
            "expected the login page, got {}",
            page.describe()
        );
        let mut form = page.hidden_inputs();
        assert!(
            form.iter().any(|(n, _)| n == "tx"),
            "login page without hidden tx: {}",
            page.describe()
        );
        assert!(
            form.iter().any(|(n, _)| n == "csrf"),
            "login page without hidden csrf: {}",
            page.describe()
        );
        form.push(("identifier".into(), login.into()));
        form.push(("password".into(), password.into()));
        let p = self.post_form("/login", &form).await;
        self.follow(p).await
    }

    pub async fn consent(&self, page: Page, decision: &str) -> Page {
        assert!(
            page.is_consent_page(),
            "expected the consent page, got {}",
            page.describe()
        );
        let mut form = page.hidden_inputs();
        assert!(
            form.iter().any(|(n, _)| n == "csrf"),
            "consent page without csrf: {}",
            page.describe()
        );
        form.retain(|(n, _)| n != "decision");
        form.push(("decision".into(), decision.into()));
        let p = self.post_form("/consent", &form).await;
        self.follow(p).await
    }

    /// authorize -> (login) -> (consent) -> callback, as the default user.
    pub async fn login_flow(&self, idp: &Idp, a: &Authz) -> Callback {
        let mut page = self.authorize(idp, a).await;
        if page.is_login_page() {
            page = self
                .sign_in(page, &idp.user.login, &idp.user.password)
                .await;
        } else if page.is_consent_page() {
            page = self.consent(page, "allow").await;
        }
        expect_callback(idp, &page, a)
    }

    /// A full code flow with token exchange and ID token checks.
    pub async fn code_flow(&self, idp: &Idp, client: &TestClient, a: &Authz) -> Tokens {
        let cb = self.login_flow(idp, a).await;
        exchange(idp, client, a, cb.code()).await
    }
}

/// Asserts `page` redirects to the request's redirect_uri with a successful response
/// (code, the same state, iss = issuer) and returns it.
pub fn expect_callback(idp: &Idp, page: &Page, a: &Authz) -> Callback {
    let cb = redirect_to(page, a.redirect_uri());
    assert!(
        cb.get("error").is_none(),
        "authorization failed: {}",
        cb.url
    );
    assert!(
        cb.get("code").is_some_and(|c| !c.is_empty()),
        "no code in {}",
        cb.url
    );
    assert_eq!(
        cb.get("state"),
        Some(a.state()),
        "state must come back unchanged: {}",
        cb.url
    );
    assert_eq!(
        cb.get("iss"),
        Some(idp.base.as_str()),
        "RFC 9207 iss must equal the issuer: {}",
        cb.url
    );
    cb
}

/// Asserts `page` redirects to the request's redirect_uri with `error=code` (+ state, iss).
pub fn expect_error_redirect(idp: &Idp, page: &Page, a: &Authz, code: &str) -> Callback {
    let cb = redirect_to(page, a.redirect_uri());
    assert_eq!(
        cb.get("error"),
        Some(code),
        "expected error={code} at the redirect URI, got {}",
        cb.url
    );
    assert!(
        cb.get("code").is_none(),
        "an error response must not carry a code: {}",
        cb.url
    );
    if !a.state().is_empty() {
        assert_eq!(
            cb.get("state"),
            Some(a.state()),
            "error response must carry state: {}",
            cb.url
        );
    }
    assert_eq!(
        cb.get("iss"),
        Some(idp.base.as_str()),
        "error response must carry iss: {}",
        cb.url
    );
    if let Some(d) = cb.get("error_description") {
        assert!(
            !d.contains(['\r', '\n', '\t']),
            "error_description must not contain CR/LF/TAB: {d:?}"
        );
    }
    cb
}

/// Asserts a 30x to exactly `redirect_uri` (with its own query kept) and parses it.
pub fn redirect_to(page: &Page, redirect_uri: &str) -> Callback {
    assert!(
        page.is_redirect(),
        "expected a redirect to {redirect_uri}, got {}",
        page.describe()
    );
    let loc = page
        .location()
        .unwrap_or_else(|| panic!("redirect without Location: {}", page.describe()));
    let want = Url::parse(redirect_uri).unwrap();
    assert_eq!(
        (loc.scheme(), loc.host_str(), loc.port(), loc.path()),
        (want.scheme(), want.host_str(), want.port(), want.path()),
        "redirect to an unexpected place: {loc} (expected {redirect_uri})"
    );
    assert!(
        loc.fragment().is_none(),
        "response_mode=query must not use a fragment: {loc}"
    );
    let params = harness::query_map(&loc);
    for (k, v) in harness::query_map(&want) {
        assert_eq!(
            params.get(&k),
            Some(&v),
            "the registered query `{k}={v}` must be kept: {loc}"
        );
    }
    Callback { url: loc, params }
}

/// Asserts an error page: no redirect, no Location header, an HTML 4xx page.
pub fn expect_error_page(page: &Page, what: &str) {
    assert!(
        page.header("location").is_none(),
        "{what}: must not redirect, got {}",
        page.describe()
    );
    assert!(
        (400..500).contains(&page.status),
        "{what}: expected an HTTP 4xx error page, got {}",
        page.describe()
    );
    assert!(
        page.is_html(),
        "{what}: the error page should be HTML: {:?}",
        page.header("content-type")
    );
}

/// Exchanges a code (raw HTTP) and checks the token response and the ID token.
pub async fn exchange(idp: &Idp, client: &TestClient, a: &Authz, code: &str) -> Tokens {
    let r = idp
        .exchange_code(client, code, &a.verifier, a.redirect_uri())
        .await;
    let json = check_token_response(&r, "authorization_code exchange");
    let access_token = json["access_token"].as_str().unwrap().to_string();
    let id_token = json["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token for scope=openid: {json}"))
        .to_string();
    let refresh_token = json["refresh_token"].as_str().map(str::to_string);
    let claims = check_id_token(idp, client, &id_token, a.nonce(), Some(&access_token)).await;
    Tokens {
        json,
        access_token,
        id_token,
        refresh_token,
        claims,
    }
}
