//! Authorization request validation (RFC 6749 §4.1.1, OIDC Core §3.1.2, RFC 7636, RFC 9207).
//! Checks run in a visible order: first those that decide whether we may redirect at all,
//! then those whose failure is redirected to the validated redirect_uri.

use serde::{Deserialize, Serialize};

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::scopes;
use crate::domain::{Client, GrantType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// Where and how an authorization response (success or error) is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseTarget {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub mode: ResponseMode,
}

/// A validated authorization request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub target: ResponseTarget,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// `sub` of a valid id_token_hint.
    pub hint_sub: Option<String>,
    pub acr_values: Vec<String>,
    pub ui_locales: Option<String>,
    /// The `claims` request parameter (OIDC Core §5.5), already parsed.
    pub claims: Option<serde_json::Value>,
}

impl AuthRequest {
    pub fn prompt_has(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

/// Why a page is shown instead of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    InvalidClient,
    InvalidRedirectUri,
    BadRequest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeError {
    /// No redirect is safe: render an error page.
    Page { kind: PageError, detail: String },
    /// Deliver the error to the validated redirect_uri.
    Redirect {
        target: ResponseTarget,
        error: OAuthError,
    },
}

/// Step 1: the client and the redirect_uri; failures here must never redirect.
pub fn check_client_and_redirect(
    params: &Params,
    client: Option<&Client>,
) -> Result<String, AuthorizeError> {
    let page = |kind, detail: &str| AuthorizeError::Page {
        kind,
        detail: detail.to_string(),
    };
    let client = client.ok_or_else(|| page(PageError::InvalidClient, "unknown client_id"))?;
    let requested = params
        .get("redirect_uri")
        .map_err(|e| page(PageError::InvalidRedirectUri, &e.describe()))?;
    match requested {
        // Exact string comparison (RFC 9700 §4.1.1).
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => Ok(uri.to_string()),
        Some(_) => Err(page(
            PageError::InvalidRedirectUri,
            "redirect_uri is not registered for this client",
        )),
        // OIDC requires redirect_uri; RFC 6749 allows omitting it when exactly one is registered.
        None if client.redirect_uris.len() == 1 => Ok(client.redirect_uris[0].clone()),
        None => Err(page(
            PageError::InvalidRedirectUri,
            "redirect_uri is missing",
        )),
    }
}

/// Step 2: everything else; errors are redirected.
pub fn check_request(
    params: &Params,
    client: &Client,
    redirect_uri: String,
    hint_sub: impl FnOnce(&str) -> Option<String>,
) -> Result<AuthRequest, AuthorizeError> {
    // state and response_mode are needed to deliver any error, so they are read first.
    let state = params.get("state").ok().flatten().map(str::to_string);
    let mode = match params.get("response_mode") {
        Ok(None) | Ok(Some("query")) => Ok(ResponseMode::Query),
        Ok(Some("form_post")) => Ok(ResponseMode::FormPost),
        Ok(Some(_)) => Err("response_mode must be query or form_post"),
        Err(_) => Err("response_mode is included more than once"),
    };
    let target = ResponseTarget {
        redirect_uri,
        state,
        mode: *mode.as_ref().unwrap_or(&ResponseMode::Query),
    };
    let fail = |error: OAuthError| AuthorizeError::Redirect {
        target: target.clone(),
        error,
    };
    let get = |name: &str| {
        params
            .get(name)
            .map_err(|e| fail(OAuthError::invalid_request(e.describe())))
    };
    if let Err(m) = mode {
        return Err(fail(OAuthError::invalid_request(m)));
    }
    if params.get("state").is_err() || params.get("client_id").is_err() {
        return Err(fail(OAuthError::invalid_request(
            "a parameter is included more than once",
        )));
    }
    // Request objects are not supported (discovery says so); ignoring one would be wrong.
    if params.has("request") {
        return Err(fail(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        )));
    }
    if params.has("request_uri") {
        return Err(fail(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        )));
    }
    check_response_type(get("response_type")?).map_err(fail)?;
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization code flow",
        )));
    }
    let scopes = check_scope(get("scope")?, client).map_err(fail)?;
    let code_challenge =
        check_pkce(get("code_challenge")?, get("code_challenge_method")?).map_err(fail)?;
    let prompt = check_prompt(get("prompt")?).map_err(fail)?;
    let max_age = check_max_age(get("max_age")?).map_err(fail)?;
    let nonce = check_len("nonce", get("nonce")?, 512).map_err(fail)?;
    let login_hint = check_len("login_hint", get("login_hint")?, 256).map_err(fail)?;
    let ui_locales = check_len("ui_locales", get("ui_locales")?, 256).map_err(fail)?;
    let claims = check_claims(get("claims")?).map_err(fail)?;
    let mut acr_values: Vec<String> = get("acr_values")?
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // The client's minimum strength (`clients set-min-acr`) counts as asked for: the engine
    // takes the strongest known value, so a weaker request steps up to it.
    if let Some(min) = client.min_acr.as_deref() {
        if !acr_values.iter().any(|v| v == min) {
            acr_values.push(min.to_string());
        }
    }
    let hint_sub = match get("id_token_hint")? {
        Some(h) => Some(
            hint_sub(h)
                .ok_or_else(|| fail(OAuthError::invalid_request("id_token_hint is not valid")))?,
        ),
        None => None,
    };
    Ok(AuthRequest {
        client_id: client.id.clone(),
        target,
        scopes,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint,
        hint_sub,
        acr_values,
        ui_locales,
        claims,
    })
}

/// Only the code flow is offered (RFC 9700 §2.1.2: no implicit).
fn check_response_type(rt: Option<&str>) -> Result<(), OAuthError> {
    match rt {
        Some("code") => Ok(()),
        None => Err(OAuthError::invalid_request("response_type is missing")),
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        )),
    }
}

/// Known scopes must be approved for the client (RFC 6749 §3.3); unknown ones are ignored.
fn check_scope(raw: Option<&str>, client: &Client) -> Result<Vec<String>, OAuthError> {
    let raw = raw.ok_or_else(|| OAuthError::invalid_request("scope is missing"))?;
    let scopes = scopes::parse_scope(raw);
    if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope `{s}` is not allowed for this client"),
        ));
    }
    if !scopes.iter().any(|s| s == "openid") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must include openid",
        ));
    }
    Ok(scopes)
}

/// PKCE with S256 is required for every client (RFC 9700 §2.1.1, RFC 7636 §4.3).
fn check_pkce(challenge: Option<&str>, method: Option<&str>) -> Result<String, OAuthError> {
    let c = challenge
        .ok_or_else(|| OAuthError::invalid_request("code_challenge is required (PKCE)"))?;
    if method != Some("S256") {
        return Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        ));
    }
    // base64url of a SHA-256 digest: exactly 43 characters (RFC 7636 §4.2).
    let ok = c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(OAuthError::invalid_request("code_challenge is malformed"));
    }
    Ok(c.to_string())
}

/// prompt values (OIDC Core §3.1.2.1); `none` cannot be combined with others.
fn check_prompt(p: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let values: Vec<String> = p
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for v in &values {
        if !matches!(v.as_str(), "none" | "login" | "consent" | "select_account") {
            return Err(OAuthError::invalid_request(format!(
                "unsupported prompt value `{v}`"
            )));
        }
    }
    if values.iter().any(|v| v == "none") && values.len() > 1 {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(values)
}

fn check_max_age(m: Option<&str>) -> Result<Option<i64>, OAuthError> {
    match m {
        None => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .map(|n| Some(i64::from(n)))
            .map_err(|_| OAuthError::invalid_request("max_age must be a non-negative integer")),
    }
}

fn check_len(name: &str, v: Option<&str>, max: usize) -> Result<Option<String>, OAuthError> {
    match v {
        Some(s) if s.len() > max => Err(OAuthError::invalid_request(format!("{name} is too long"))),
        other => Ok(other.map(str::to_string)),
    }
}

/// The claims parameter must be a JSON object (OIDC Core §5.5).
fn check_claims(c: Option<&str>) -> Result<Option<serde_json::Value>, OAuthError> {
    match c {
        None => Ok(None),
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
            _ => Err(OAuthError::invalid_request("claims must be a JSON object")),
        },
    }
}

/// Builds the redirect URL of an authorization response (query mode) with `iss` (RFC 9207).
pub fn response_url(target: &ResponseTarget, issuer: &str, fields: &[(&str, &str)]) -> String {
    match url::Url::parse(&target.redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in fields {
                    q.append_pair(k, v);
                }
                if let Some(s) = &target.state {
                    q.append_pair("state", s);
                }
                q.append_pair("iss", issuer);
            }
            u.to_string()
        }
        Err(_) => target.redirect_uri.clone(),
    }
}

/// The fields of a response, for form_post.
pub fn response_fields(
    target: &ResponseTarget,
    issuer: &str,
    fields: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(s) = &target.state {
        out.push(("state".into(), s.clone()));
    }
    out.push(("iss".into(), issuer.to_string()));
    out
}

pub fn error_fields(e: &OAuthError) -> [(&'static str, String); 2] {
    [
        ("error", e.code.as_str().to_string()),
        ("error_description", sanitize(&e.description)),
    ]
}

/// error_description may hold only %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §4.1.2.1).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) && c != '"' && c != '\\' {
                c
            } else {
                ' '
            }
        })
        .collect()
}
