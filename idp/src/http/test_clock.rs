//! `POST /dev/clock/advance` (form field `secs`): moves the server's clock forward, only
//! under `danger_test_clock` (dev mode); a 404 page otherwise. Black-box tests use it to
//! let minutes pass at once (the recent-confirmation window, code lifetimes, ...).
//!
//! Only what reads the server's clock moves: the in-process ephemeral store does, Redis
//! keeps its own time for TTLs.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::ErrorKind;

use super::error::{lang_of, page};
use crate::state::AppState;

/// The most one call may move the clock (a day): a typo should not end every session.
const MAX_SECS: i64 = 24 * 3600;

pub async fn advance(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let lang = lang_of(&req, None);
    if !state.cfg.danger_test_clock {
        return page(StatusCode::NOT_FOUND, lang, ErrorKind::NotFound, None);
    }
    let secs = super::token::form_body(&req, &body)
        .ok()
        .and_then(|f| {
            f.get("secs")
                .ok()
                .flatten()
                .and_then(|s| s.parse::<i64>().ok())
        })
        .filter(|s| (1..=MAX_SECS).contains(s));
    let Some(secs) = secs else {
        return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None);
    };
    if !state.clock.advance_by(chrono::Duration::seconds(secs)) {
        return page(StatusCode::NOT_FOUND, lang, ErrorKind::NotFound, None);
    }
    tracing::warn!(secs, "the test clock was moved forward");
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "now": state.now().to_rfc3339() }))
}
