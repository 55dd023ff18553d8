//! The provider under load: its origin, resolved endpoint URLs, prepared headers and bodies,
//! and the checks that decide whether an answer counts as a success. Requests go on the
//! calling virtual user's own connection ([`Conn`]); those that never change (discovery,
//! JWKS, client credentials) are rendered once.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use url::Url;

use super::args::Config;
use super::conn::{Client, Conn, Reply, Request, RequestBuilder};

const FORM: &str = "application/x-www-form-urlencoded";

/// Why an iteration failed. `kind` groups errors in the report (it names no secret);
/// `detail` is one sample message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: String,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: impl Into<String>, detail: impl Into<String>) -> Self {
        Failure {
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    /// A non-2xx answer; the kind carries the OAuth `error` code when the body has one.
    pub fn status(what: &str, status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct OAuthErr {
            error: Option<String>,
        }
        let code = serde_json::from_slice::<OAuthErr>(body)
            .ok()
            .and_then(|e| e.error)
            .filter(|c| c.len() <= 40 && c.bytes().all(|b| b.is_ascii_graphic()));
        let kind = match code {
            Some(c) => format!("{what}: HTTP {status} {c}"),
            None => format!("{what}: HTTP {status}"),
        };
        let snippet: String = String::from_utf8_lossy(&body[..body.len().min(300)]).into();
        Failure::new(kind, format!("{what}: HTTP {status}: {snippet}"))
    }

    pub fn malformed(what: &str, why: &str) -> Self {
        Failure::new(
            format!("{what}: malformed answer"),
            format!("{what}: {why}"),
        )
    }
}

/// A successful token response (the fields the load generator needs).
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub token_type: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct DiscoveryCheck<'a> {
    #[serde(borrow)]
    issuer: &'a str,
}

#[derive(Deserialize)]
struct JwksCheck {
    keys: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct IntrospectCheck {
    active: bool,
}

#[derive(Deserialize)]
struct UserinfoCheck<'a> {
    #[serde(borrow)]
    sub: &'a str,
}

/// Resolved endpoints and prepared request parts.
pub struct Target {
    pub http: Client,
    pub base: Url,
    pub discovery: Url,
    pub jwks: Url,
    pub token: Url,
    pub authorize: Url,
    pub introspect: Url,
    pub userinfo: Url,
    pub client_id: String,
    /// `Basic base64(urlenc(id):urlenc(secret))` when the client has a secret.
    pub basic: Option<String>,
    pub redirect_uri: Url,
    pub scope: String,
    pub login: String,
    pub password: String,
    pub fresh_prompt: Option<String>,
    /// The requests that never change, rendered once.
    discovery_req: Request,
    jwks_req: Request,
    /// `grant_type=client_credentials[&scope=..]` with Basic authentication, when the
    /// client has a secret.
    cc_req: Option<Request>,
    /// The endpoints in origin form (path and query).
    token_target: String,
    introspect_target: String,
    userinfo_target: String,
    /// The last discovery document and key set that passed their check: the same bytes
    /// again pass without being parsed again.
    discovery_ok: OnceLock<Bytes>,
    jwks_ok: OnceLock<Bytes>,
}

/// The path and query of `u`: the request target sent to the provider's origin.
pub fn origin_form(u: &Url) -> String {
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// Whether `body` is the one that passed its check before; if not, checks it and, when it
/// passes and none is remembered yet, remembers it.
fn checked_once(
    ok: &OnceLock<Bytes>,
    body: &Bytes,
    check: impl FnOnce(&[u8]) -> Result<(), Failure>,
) -> Result<(), Failure> {
    if ok.get().is_some_and(|b| b == body) {
        return Ok(());
    }
    check(body)?;
    let _ = ok.set(body.clone());
    Ok(())
}

/// RFC 6749 §2.3.1: both parts form-urlencoded before base64.
pub fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Target {
    /// Builds the client and resolves every endpoint: a path flag wins, else the endpoint
    /// listed in discovery (its path and query, on the --url origin), else Propusk's path.
    pub async fn connect(cfg: &Config) -> Result<Target, String> {
        let a = &cfg.args;
        let http = Client::new(&cfg.base, a.timeout)?;
        let base = cfg.base.clone();
        let join = |p: &str| base.join(p).map_err(|e| format!("bad path `{p}`: {e}"));
        let discovery = join(&a.discovery_path)?;
        let get = |u: &Url| {
            http.request("GET", &origin_form(u))
                .body(b"")
                .map_err(|e| format!("{u}: {e}"))
        };
        let discovery_req = get(&discovery)?;
        let doc: Option<Discovery> = match Conn::default()
            .send(&http, "discovery", &discovery_req)
            .await
        {
            Ok(r) if (200..300).contains(&r.status) => serde_json::from_slice(&r.body).ok(),
            _ => None,
        };
        // Keep the endpoint's path and query but always talk to --url's origin.
        let on_base = |u: &Option<String>| -> Option<String> {
            Some(origin_form(&Url::parse(u.as_deref()?).ok()?))
        };
        let pick = |flag: &Option<String>,
                    from_doc: Option<&Option<String>>,
                    dflt: &str|
         -> Result<Url, String> {
            let p = flag
                .clone()
                .or_else(|| from_doc.and_then(on_base))
                .unwrap_or_else(|| dflt.to_string());
            join(&p)
        };
        let d = doc.as_ref();
        if d.is_some_and(|d| d.issuer.is_empty()) {
            return Err("discovery has an empty issuer".into());
        }
        let basic = a
            .client_secret
            .as_ref()
            .map(|s| basic_auth(&a.client_id, s));
        let mut cc: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(s) = a.cc_scope.as_deref().filter(|s| !s.is_empty()) {
            cc.push(("scope", s));
        }
        let jwks = pick(&a.jwks_path, d.map(|d| &d.jwks_uri), "/jwks")?;
        let token = pick(&a.token_path, d.map(|d| &d.token_endpoint), "/token")?;
        let introspect = pick(
            &a.introspect_path,
            d.map(|d| &d.introspection_endpoint),
            "/introspect",
        )?;
        let userinfo = pick(
            &a.userinfo_path,
            d.map(|d| &d.userinfo_endpoint),
            "/userinfo",
        )?;
        let token_target = origin_form(&token);
        let cc_req = match &basic {
            Some(b) => Some(
                http.request("POST", &token_target)
                    .header("content-type", FORM)
                    .header("authorization", b)
                    .body(form(&cc).as_bytes())
                    .map_err(|e| format!("client credentials: {e}"))?,
            ),
            None => None,
        };
        Ok(Target {
            jwks_req: get(&jwks)?,
            token_target,
            introspect_target: origin_form(&introspect),
            userinfo_target: origin_form(&userinfo),
            discovery_req,
            cc_req,
            discovery_ok: OnceLock::new(),
            jwks_ok: OnceLock::new(),
            jwks,
            token,
            authorize: pick(
                &a.authorize_path,
                d.map(|d| &d.authorization_endpoint),
                "/authorize",
            )?,
            introspect,
            userinfo,
            discovery,
            base,
            http,
            client_id: a.client_id.clone(),
            basic,
            redirect_uri: Url::parse(&a.redirect_uri).map_err(|e| e.to_string())?,
            scope: a.scope.clone(),
            login: a.login.clone(),
            password: a.password.clone(),
            fresh_prompt: a.fresh_prompt.clone().filter(|p| !p.is_empty()),
        })
    }

    /// One line per endpoint, for the log.
    pub fn describe(&self) -> String {
        format!(
            "discovery {}\njwks {}\nauthorize {}\ntoken {}\nintrospect {}\nuserinfo {}",
            self.discovery, self.jwks, self.authorize, self.token, self.introspect, self.userinfo
        )
    }

    /// Sends a request on `conn`, reads the whole body and checks it; non-2xx is a failure.
    pub async fn call<T>(
        &self,
        conn: &mut Conn,
        what: &str,
        req: &Request,
        check: impl FnOnce(&Bytes) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let r = self.send(conn, what, req).await?;
        if !(200..300).contains(&r.status) {
            return Err(Failure::status(what, r.status, &r.body));
        }
        check(&r.body)
    }

    /// Sends a request on `conn` and returns the whole answer, whatever its status.
    pub async fn send(&self, conn: &mut Conn, what: &str, req: &Request) -> Result<Reply, Failure> {
        conn.send(&self.http, what, req).await
    }

    /// Renders `req` with `body`; a request that cannot be rendered fails as `what`'s.
    pub fn render(what: &str, req: RequestBuilder, body: &[u8]) -> Result<Request, Failure> {
        req.body(body)
            .map_err(|e| Failure::new("internal", format!("{what}: request: {e}")))
    }

    /// A form POST to the token/introspection endpoint with the client's authentication
    /// (Basic when there is a secret, else `client_id` in the body).
    fn client_post(&self, what: &str, target: &str, mut body: String) -> Result<Request, Failure> {
        let mut req = self
            .http
            .request("POST", target)
            .header("content-type", FORM);
        match &self.basic {
            Some(b) => req = req.header("authorization", b),
            None => {
                body.push('&');
                body.push_str(&form(&[("client_id", &self.client_id)]));
            }
        }
        Self::render(what, req, body.as_bytes())
    }

    pub async fn discovery(&self, conn: &mut Conn) -> Result<(), Failure> {
        self.call(conn, "discovery", &self.discovery_req, |body| {
            checked_once(
                &self.discovery_ok,
                body,
                |body| match serde_json::from_slice::<DiscoveryCheck>(body) {
                    Ok(d) if !d.issuer.is_empty() => Ok(()),
                    Ok(_) => Err(Failure::malformed("discovery", "empty issuer")),
                    Err(e) => Err(Failure::malformed("discovery", &e.to_string())),
                },
            )
        })
        .await
    }

    pub async fn jwks(&self, conn: &mut Conn) -> Result<(), Failure> {
        self.call(conn, "jwks", &self.jwks_req, |body| {
            checked_once(&self.jwks_ok, body, |body| {
                match serde_json::from_slice::<JwksCheck>(body) {
                    Ok(j) if !j.keys.is_empty() => Ok(()),
                    Ok(_) => Err(Failure::malformed("jwks", "no keys")),
                    Err(e) => Err(Failure::malformed("jwks", &e.to_string())),
                }
            })
        })
        .await
    }

    fn token_answer(what: &str, body: &[u8]) -> Result<TokenAnswer, Failure> {
        let t: TokenAnswer =
            serde_json::from_slice(body).map_err(|e| Failure::malformed(what, &e.to_string()))?;
        if t.access_token.is_empty() {
            return Err(Failure::malformed(what, "empty access_token"));
        }
        if !t.token_type.eq_ignore_ascii_case("bearer")
            && !t.token_type.eq_ignore_ascii_case("dpop")
        {
            return Err(Failure::malformed(what, "token_type is not Bearer"));
        }
        Ok(t)
    }

    pub async fn client_credentials(&self, conn: &mut Conn) -> Result<(), Failure> {
        let Some(req) = &self.cc_req else {
            return Err(Failure::new(
                "client-credentials: no secret",
                "no client secret",
            ));
        };
        self.call(conn, "token", req, |body| {
            Self::token_answer("token", body).map(|_| ())
        })
        .await
    }

    /// Refreshes; returns the answer (with the rotated refresh token, if the provider rotates).
    pub async fn refresh(
        &self,
        conn: &mut Conn,
        refresh_token: &str,
    ) -> Result<TokenAnswer, Failure> {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]);
        let req = self.client_post("token", &self.token_target, body)?;
        self.call(conn, "token", &req, |b| Self::token_answer("token", b))
            .await
    }

    /// Exchanges a code (PKCE) and checks the answer; an ID token is required for `openid`.
    pub async fn exchange_code(
        &self,
        conn: &mut Conn,
        code: &str,
        verifier: &str,
    ) -> Result<TokenAnswer, Failure> {
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", self.redirect_uri.as_str()),
        ]);
        let req = self.client_post("token", &self.token_target, body)?;
        let t = self
            .call(conn, "token", &req, |b| Self::token_answer("token", b))
            .await?;
        if self.scope.split(' ').any(|s| s == "openid")
            && t.id_token.as_deref().is_none_or(str::is_empty)
        {
            return Err(Failure::malformed("token", "no id_token for scope openid"));
        }
        Ok(t)
    }

    /// The introspection request for `token` (sent as it is by every iteration).
    pub fn introspect_request(&self, token: &str) -> Result<Request, Failure> {
        self.client_post(
            "introspect",
            &self.introspect_target,
            form(&[("token", token)]),
        )
    }

    pub async fn introspect(&self, conn: &mut Conn, req: &Request) -> Result<(), Failure> {
        self.call(conn, "introspect", req, |b| {
            match serde_json::from_slice::<IntrospectCheck>(b) {
                Ok(i) if i.active => Ok(()),
                Ok(_) => Err(Failure::malformed(
                    "introspect",
                    "active=false for a live token",
                )),
                Err(e) => Err(Failure::malformed("introspect", &e.to_string())),
            }
        })
        .await
    }

    /// The userinfo request with `access_token` (sent as it is by every iteration).
    pub fn userinfo_request(&self, access_token: &str) -> Result<Request, Failure> {
        let req = self
            .http
            .request("GET", &self.userinfo_target)
            .header("authorization", &format!("Bearer {access_token}"));
        Self::render("userinfo", req, b"")
    }

    pub async fn userinfo(&self, conn: &mut Conn, req: &Request) -> Result<(), Failure> {
        self.call(conn, "userinfo", req, |body| {
            match serde_json::from_slice::<UserinfoCheck>(body) {
                Ok(u) if !u.sub.is_empty() => Ok(()),
                Ok(_) => Err(Failure::malformed("userinfo", "empty sub")),
                Err(e) => Err(Failure::malformed("userinfo", &e.to_string())),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_encodes_both_parts() {
        // "a b:c" -> "a+b" and "c%3A" per RFC 6749 §2.3.1.
        assert_eq!(
            basic_auth("a b", "c:"),
            format!("Basic {}", STANDARD.encode("a+b:c%3A"))
        );
    }

    #[test]
    fn status_failures_carry_the_oauth_code_only() {
        let f = Failure::status(
            "token",
            400,
            br#"{"error":"invalid_grant","error_description":"x"}"#,
        );
        assert_eq!(f.kind, "token: HTTP 400 invalid_grant");
        let f = Failure::status("token", 500, b"<html>oops</html>");
        assert_eq!(f.kind, "token: HTTP 500");
        assert!(f.detail.contains("oops"));
        // An attacker-sized or odd `error` value does not become a report key.
        let f = Failure::status("token", 400, br#"{"error":"a b"}"#);
        assert_eq!(f.kind, "token: HTTP 400");
    }

    #[test]
    fn a_body_that_passed_passes_again_unparsed_and_any_other_is_checked() {
        let ok = OnceLock::new();
        let good = Bytes::from_static(br#"{"keys":[{}]}"#);
        let fail = |_: &[u8]| Err(Failure::malformed("jwks", "checked"));
        assert!(
            checked_once(&ok, &good, fail).is_err(),
            "nothing remembered yet"
        );
        assert!(checked_once(&ok, &good, |_| Ok(())).is_ok());
        assert!(checked_once(&ok, &good.clone(), fail).is_ok(), "remembered");
        let other = Bytes::from_static(br#"{"keys":[]}"#);
        assert!(
            checked_once(&ok, &other, fail).is_err(),
            "other bytes are checked"
        );
        assert!(checked_once(&ok, &other, |_| Ok(())).is_ok());
        assert!(
            checked_once(&ok, &other, fail).is_err(),
            "only the first body that passed is remembered"
        );
    }
}
