//! HTTP status and body of every error, decided here and only here.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use consent_ui::{ErrorKind, ErrorPage, Lang};

use crate::protocol::{ErrorCode, OAuthError};

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn log(e: &OAuthError) {
    if e.logged {
        return;
    }
    match e.code {
        ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable => {
            tracing::error!(
                error = e.code.as_str(),
                detail = e.detail.as_deref().unwrap_or(""),
                "request failed"
            )
        }
        _ => tracing::info!(
            error = e.code.as_str(),
            detail = e.detail.as_deref().unwrap_or(""),
            "request refused"
        ),
    }
}

/// JSON error of the token, introspection and revocation endpoints (RFC 6749 §5.2).
pub fn json_error(e: &OAuthError) -> HttpResponse {
    log(e);
    let mut r = HttpResponse::build(status_of(e.code));
    r.insert_header((header::CACHE_CONTROL, "no-store"));
    if e.code == ErrorCode::InvalidClient {
        r.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"propusk\""));
    }
    r.json(serde_json::json!({ "error": e.code.as_str(), "error_description": e.description }))
}

/// Bearer-token error (RFC 6750 §3).
pub fn bearer_error(e: &OAuthError) -> HttpResponse {
    log(e);
    let code = if e.code == ErrorCode::InvalidRequest {
        "invalid_request"
    } else {
        "invalid_token"
    };
    let status = status_of(e.code);
    let desc = e.description.replace('"', "'");
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::WWW_AUTHENTICATE,
            format!("Bearer realm=\"propusk\", error=\"{code}\", error_description=\"{desc}\""),
        ))
        .json(serde_json::json!({ "error": code, "error_description": e.description }))
}

pub fn lang_of(req: &HttpRequest, ui_locales: Option<&str>) -> Lang {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::negotiate(ui_locales, accept)
}

/// A readable error page in the user's language.
pub fn page(status: StatusCode, lang: Lang, kind: ErrorKind, detail: Option<&str>) -> HttpResponse {
    html(status, ErrorPage { lang, kind, detail }.render())
}

pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// An internal failure while serving a page: logged, and a plain page for the user.
pub fn page_failure(lang: Lang, e: &OAuthError) -> HttpResponse {
    log(e);
    let status = status_of(e.code);
    let status = if status.is_success() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        status
    };
    page(status, lang, ErrorKind::Internal, None)
}
