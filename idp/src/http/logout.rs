//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
//! We redirect only to a post_logout_redirect_uri registered for the client named by a
//! valid id_token_hint; otherwise the user is asked to confirm and sees a page.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{ErrorKind, Lang, LoggedOutPage, LogoutConfirmPage};

use super::authorize::current_session;
use super::cookies;
use super::error::{html, lang_of, page, page_failure};
use crate::audit::AuditEvent;
use crate::protocol::params::Params;
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, ClientStore, SessionStore};

pub async fn get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    logout(&state, &req, params).await
}

pub async fn post(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match super::token::form_body(&req, &body) {
        Ok(params) => logout(&state, &req, params).await,
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            lang_of(&req, None),
            ErrorKind::BadRequest,
            None,
        ),
    }
}

/// CSRF token of the confirmation form: bound to this browser's binding cookie.
fn confirm_csrf(state: &AppState, bid: &str) -> String {
    let mut data = state.csrf_secret.to_vec();
    data.extend_from_slice(b"logout:");
    data.extend_from_slice(bid.as_bytes());
    keys::sha256_b64url(&data)
}

async fn logout(state: &AppState, req: &HttpRequest, params: Params) -> HttpResponse {
    let lang = lang_of(req, params.get("ui_locales").ok().flatten());
    let get = |n: &str| params.get(n).ok().flatten().map(str::to_string);
    if [
        "id_token_hint",
        "post_logout_redirect_uri",
        "state",
        "client_id",
    ]
    .iter()
    .any(|n| params.get(n).is_err())
    {
        return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None);
    }
    // A confirmed form from our own confirmation page.
    if get("confirm").as_deref() == Some("yes") {
        let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
        let sent = get("csrf").unwrap_or_default();
        if bid.is_empty()
            || !keys::constant_time_eq(sent.as_bytes(), confirm_csrf(state, &bid).as_bytes())
        {
            return page(StatusCode::FORBIDDEN, lang, ErrorKind::LogoutFailed, None);
        }
        return end_and(state, req, lang, None, None).await;
    }
    let hint = match get("id_token_hint") {
        None => None,
        Some(h) => {
            let keyset = state.keyring.snapshot();
            match tokens::check_own_id_token(&keyset, &state.issuer, &h) {
                Some(v) => Some(v),
                None => return page(StatusCode::BAD_REQUEST, lang, ErrorKind::LogoutFailed, None),
            }
        }
    };
    let Some(hint) = hint else {
        // No proof the relying party asked: never redirect; ask the user.
        return confirm_page(state, req, lang);
    };
    let aud = hint
        .get("aud")
        .and_then(|a| a.as_str())
        .unwrap_or("")
        .to_string();
    if get("client_id").is_some_and(|c| c != aud) {
        return page(StatusCode::BAD_REQUEST, lang, ErrorKind::LogoutFailed, None);
    }
    let target = match get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match state.store.call(move |s| s.find_client(&aud)).await {
                Ok(c) => c,
                Err(e) => return page_failure(lang, &e.into()),
            };
            // Exact match against the registered list.
            if !client.is_some_and(|c| c.post_logout_redirect_uris.contains(&uri)) {
                return page(StatusCode::BAD_REQUEST, lang, ErrorKind::LogoutFailed, None);
            }
            let mut u = match url::Url::parse(&uri) {
                Ok(u) => u,
                Err(_) => {
                    return page(StatusCode::BAD_REQUEST, lang, ErrorKind::LogoutFailed, None)
                }
            };
            if let Some(st) = get("state") {
                u.query_pairs_mut().append_pair("state", &st);
            }
            Some(u.to_string())
        }
    };
    end_and(state, req, lang, target, None).await
}

fn confirm_page(state: &AppState, req: &HttpRequest, lang: Lang) -> HttpResponse {
    let (bid, new_bid) = match cookies::read(req, &cookies::bid_name(state)) {
        Some(b) => (b, false),
        None => match keys::random_token(32) {
            Ok(b) => (b, true),
            Err(e) => return page_failure(lang, &OAuthError::server(e)),
        },
    };
    let csrf = confirm_csrf(state, &bid);
    let body = LogoutConfirmPage {
        lang,
        action: "/logout",
        csrf: &csrf,
        hidden: &[],
    }
    .render();
    let mut resp = html(StatusCode::OK, body);
    if new_bid {
        let _ = resp.add_cookie(&cookies::build(state, cookies::bid_name(state), bid, None));
    }
    resp
}

/// Ends the browser's session, clears the cookie, then redirects or shows "signed out".
/// `esia_client`: the client of an ESIA-dialect logout (`/idp/ext/Logout`), for the audit
/// event.
pub(super) async fn end_and(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    target: Option<String>,
    esia_client: Option<&str>,
) -> HttpResponse {
    let now = state.now();
    let session = match current_session(state, req).await {
        Ok(s) => s,
        Err(e) => return page_failure(lang, &e),
    };
    if let Some(s) = session {
        let event = AuditEvent {
            at: now,
            kind: "logout".into(),
            subject_id: Some(s.subject_id.clone()),
            client_id: esia_client.map(str::to_string),
            ip: super::client_ip(state, req),
            detail: match esia_client {
                Some(_) => serde_json::json!({ "sid": s.sid, "dialect": "esia" }),
                None => serde_json::json!({ "sid": s.sid }),
            },
        };
        let res = state
            .store
            .call(move |st| {
                st.end_session(&s.sid, now)?;
                st.append_audit(&event)
            })
            .await;
        if let Err(e) = res {
            return page_failure(lang, &e.into());
        }
    }
    let mut resp = match target {
        Some(t) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, t))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        None => html(StatusCode::OK, LoggedOutPage { lang }.render()),
    };
    let _ = resp.add_cookie(&cookies::removal(state, cookies::session_name(state)));
    resp
}
