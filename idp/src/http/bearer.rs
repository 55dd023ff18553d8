//! JSON APIs called with an access token of this provider (RFC 6750 bearer): the token of a
//! request checked (signature, expiry, revocation) together with the scope the API needs, a
//! JSON body parsed strictly, and every refusal answered the same way — a status, a
//! `WWW-Authenticate` challenge where RFC 6750 / RFC 9470 want one, and an OAuth-style JSON
//! body. Used by `POST /account/push-devices` and `POST /api/v1/confirmations`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

use crate::protocol::error::ErrorCode;
use crate::protocol::tokens::AccessClaims;
use crate::protocol::userinfo::check_bearer;
use crate::state::AppState;

/// Why an API call is refused; [`Refusal::respond`] is the only place that turns one into an
/// answer.
#[derive(Debug)]
pub enum Refusal {
    /// No token, a bad one, an expired or revoked one (RFC 6750 §3.1).
    InvalidToken(String),
    /// The token lacks the scope (RFC 6750 §3.1).
    InsufficientScope(&'static str),
    /// The sign-in behind the token is too old (RFC 9470 §3).
    StaleSignIn { max_age: u64 },
    /// The body is not what the contract says (RFC 6750 §3.1 `invalid_request`).
    InvalidRequest(&'static str),
    /// The request is well-formed but its subject is in the wrong state: status, code and
    /// description of the API's own (no challenge header).
    Conflict(StatusCode, &'static str, &'static str),
    /// The store or the ephemeral store failed.
    Unavailable,
}

impl Refusal {
    pub fn respond(self) -> HttpResponse {
        let (status, code, desc, extra) = match self {
            Refusal::InvalidToken(d) => (StatusCode::UNAUTHORIZED, "invalid_token", d, None),
            Refusal::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("the access token needs the scope {scope}"),
                Some(format!("scope=\"{scope}\"")),
            ),
            Refusal::StaleSignIn { max_age } => (
                StatusCode::UNAUTHORIZED,
                "insufficient_user_authentication",
                "sign in again: the sign-in behind this token is too old".into(),
                Some(format!("max_age={max_age}")),
            ),
            Refusal::InvalidRequest(d) => {
                (StatusCode::BAD_REQUEST, "invalid_request", d.into(), None)
            }
            Refusal::Conflict(status, code, d) => {
                return no_store(status)
                    .json(serde_json::json!({ "error": code, "error_description": d }))
            }
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again later".into(),
                None,
            ),
        };
        let quoted = desc.replace('"', "'");
        let mut challenge =
            format!("Bearer realm=\"propusk\", error=\"{code}\", error_description=\"{quoted}\"");
        if let Some(e) = extra {
            challenge.push_str(", ");
            challenge.push_str(&e);
        }
        let mut r = no_store(status);
        if status != StatusCode::SERVICE_UNAVAILABLE {
            r.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        r.json(serde_json::json!({ "error": code, "error_description": desc }))
    }
}

/// An answer builder with `Cache-Control: no-store`.
pub fn no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::build(status);
    r.insert_header((header::CACHE_CONTROL, "no-store"));
    r
}

/// The access token of the request, checked: signature, expiry, revocation, and `scope`.
pub async fn token_with_scope(
    state: &AppState,
    req: &HttpRequest,
    scope: &'static str,
) -> Result<AccessClaims, Refusal> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match header {
        Some(h) if h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ") => h[7..].trim(),
        Some(_) => return Err(Refusal::InvalidRequest("unsupported authorization scheme")),
        None => return Err(Refusal::InvalidToken("an access token is required".into())),
    };
    let at = check_bearer(state, token).await.map_err(|e| {
        if e.code == ErrorCode::InvalidToken {
            Refusal::InvalidToken(e.description.to_string())
        } else {
            Refusal::Unavailable
        }
    })?;
    if !at.scope.split(' ').any(|s| s == scope) {
        return Err(Refusal::InsufficientScope(scope));
    }
    Ok(at)
}

/// A JSON body (`Content-Type: application/json`), parsed into `T`; `shape` names the
/// expected fields for the error.
pub fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
    shape: &'static str,
) -> Result<T, Refusal> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Refusal::InvalidRequest("the body must be application/json"));
    }
    serde_json::from_slice(body).map_err(|_| Refusal::InvalidRequest(shape))
}
