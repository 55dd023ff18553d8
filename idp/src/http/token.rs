//! Token, userinfo, introspection and revocation endpoints.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{bearer_error, json_error};
use crate::protocol::grants::{self, TokenRequest};
use crate::protocol::params::Params;
use crate::protocol::{client_auth, introspect as intro, userinfo as ui, OAuthError};
use crate::state::AppState;

fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// A form body, or invalid_request when the body is not form-encoded.
pub fn form_body(req: &HttpRequest, body: &web::Bytes) -> Result<Params, OAuthError> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(Params::parse(body))
}

fn no_store_json(v: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(v)
}

#[tracing::instrument(skip_all, fields(client_id))]
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let run = async {
        let form = form_body(&req, &body)?;
        let grant = TokenRequest::parse(&form)?;
        let client = client_auth::authenticate(&state, authorization(&req), &form).await?;
        tracing::Span::current().record("client_id", client.id.as_str());
        grants::handle(&state, client, grant, &form).await
    };
    match run.await {
        Ok(resp) => no_store_json(&resp),
        Err(e) => json_error(&e),
    }
}

fn bearer(req: &HttpRequest) -> Result<Option<&str>, OAuthError> {
    match authorization(req) {
        None => Ok(None),
        Some(h) if h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ") => Ok(Some(h[7..].trim())),
        Some(_) => Err(OAuthError::invalid_request(
            "unsupported authorization scheme",
        )),
    }
}

async fn userinfo_with(state: &AppState, token: Option<&str>) -> HttpResponse {
    let Some(token) = token else {
        return bearer_error(&OAuthError::new(
            crate::protocol::ErrorCode::InvalidToken,
            "an access token is required",
        ));
    };
    match ui::userinfo(state, token).await {
        Ok(claims) => no_store_json(&claims),
        Err(e) => bearer_error(&e),
    }
}

pub async fn userinfo_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match bearer(&req) {
        Ok(t) => userinfo_with(&state, t).await,
        Err(e) => bearer_error(&e),
    }
}

/// POST with the token in the header or in the form body (RFC 6750 §2.2), never both.
pub async fn userinfo_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header_token = match bearer(&req) {
        Ok(t) => t,
        Err(e) => return bearer_error(&e),
    };
    let body_token = if body.is_empty() {
        None
    } else {
        match form_body(&req, &body).and_then(|f| {
            f.get("access_token")
                .map(|t| t.map(str::to_string))
                .map_err(|e| OAuthError::invalid_request(e.describe()))
        }) {
            Ok(t) => t,
            Err(e) => return bearer_error(&e),
        }
    };
    match (header_token, body_token.as_deref()) {
        (Some(_), Some(_)) => bearer_error(&OAuthError::invalid_request(
            "the access token was sent twice",
        )),
        (h, b) => userinfo_with(&state, h.or(b)).await,
    }
}

pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let run = async {
        let form = form_body(&req, &body)?;
        let client = client_auth::authenticate(&state, authorization(&req), &form).await?;
        intro::introspect(&state, &client, &form).await
    };
    match run.await {
        Ok(v) => no_store_json(&v),
        Err(e) => json_error(&e),
    }
}

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let run = async {
        let form = form_body(&req, &body)?;
        let client = client_auth::authenticate(&state, authorization(&req), &form).await?;
        intro::revoke(&state, &client, &form).await
    };
    match run.await {
        Ok(()) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => json_error(&e),
    }
}
