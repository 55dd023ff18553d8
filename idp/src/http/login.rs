//! Sign-in and consent pages of a login transaction.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{ConsentPage, ErrorKind, Lang, LoginError, LoginPage};

use super::authorize::{current_session, finish, redirect_error};
use super::cookies;
use super::error::{html, lang_of, page, page_failure};
use crate::audit::AuditEvent;
use crate::authn::login::{self, Next};
use crate::authn::transaction::{AuthContext, LoginTx};
use crate::authn::ACR_ONE_FACTOR;
use crate::domain::identifier::normalize_login;
use crate::domain::{Grant, SsoSession};
use crate::protocol::params::Params;
use crate::protocol::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, ClientStore, GrantStore, SessionStore, SubjectStore};

/// The `tx` query parameter.
fn tx_param(req: &HttpRequest) -> String {
    Params::parse(req.query_string().as_bytes())
        .get("tx")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string()
}

fn expired(lang: Lang) -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        lang,
        ErrorKind::SessionExpired,
        None,
    )
}

/// Loads the transaction and checks it belongs to this browser.
async fn load_tx(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<Option<LoginTx>, OAuthError> {
    let Some(tx) = LoginTx::load(state.eph.as_ref(), id).await? else {
        return Ok(None);
    };
    let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
    let bid_hash = keys::sha256_b64url(bid.as_bytes());
    Ok(keys::constant_time_eq(bid_hash.as_bytes(), tx.bid_hash.as_bytes()).then_some(tx))
}

fn tx_lang(req: &HttpRequest, tx: &LoginTx) -> Lang {
    lang_of(req, tx.request.ui_locales.as_deref())
}

async fn client_name(state: &AppState, id: &str) -> String {
    let cid = id.to_string();
    match state.store.call(move |s| s.find_client(&cid)).await {
        Ok(Some(c)) => c.name,
        _ => id.to_string(),
    }
}

async fn render_login(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    identifier: Option<&str>,
    err: Option<LoginError>,
) -> HttpResponse {
    let name = client_name(state, &tx.request.client_id).await;
    let body = LoginPage {
        lang: tx_lang(req, tx),
        client_name: &name,
        action: "/login",
        tx: &tx.id,
        csrf: &tx.csrf,
        identifier: identifier.or(tx.request.login_hint.as_deref()),
        error: err,
    }
    .render();
    html(StatusCode::OK, body)
}

pub async fn login_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    let id = tx_param(&req);
    match load_tx(&state, &req, &id).await {
        Ok(Some(tx)) => render_login(&state, &req, &tx, None, None).await,
        Ok(None) => expired(lang),
        Err(e) => page_failure(lang, &e),
    }
}

/// Checks the CSRF token of a form against the transaction's (constant time).
fn csrf_ok(form: &Params, tx: &LoginTx) -> bool {
    let sent = form.get("csrf").ok().flatten().unwrap_or("");
    keys::constant_time_eq(sent.as_bytes(), tx.csrf.as_bytes())
}

fn ip_of(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let lang = lang_of(&req, None);
    let Ok(form) = super::token::form_body(&req, &body) else {
        return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None);
    };
    let id = form.get("tx").ok().flatten().unwrap_or("").to_string();
    let tx = match load_tx(&state, &req, &id).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return expired(lang),
        Err(e) => return page_failure(lang, &e),
    };
    let lang = tx_lang(&req, &tx);
    if !csrf_ok(&form, &tx) {
        return page(StatusCode::FORBIDDEN, lang, ErrorKind::BadRequest, None);
    }
    let identifier = form
        .get("identifier")
        .ok()
        .flatten()
        .unwrap_or("")
        .trim()
        .to_string();
    let password = form
        .get("password")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    if identifier.is_empty()
        || password.is_empty()
        || identifier.len() > 256
        || password.len() > 1024
    {
        return render_login(
            &state,
            &req,
            &tx,
            Some(&identifier),
            Some(LoginError::MissingFields),
        )
        .await;
    }
    let remember = form.get("remember").ok().flatten() == Some("on");
    match sign_in(&state, &req, &tx, &identifier, password, remember).await {
        Ok(Some((auth, cookie_value))) => {
            let mut resp = continue_after_login(&state, lang, tx, auth).await;
            let max_age = remember.then_some(state.cfg.session.remember_ttl_secs as i64);
            let _ = resp.add_cookie(&cookies::build(
                &state,
                cookies::session_name(&state),
                cookie_value,
                max_age,
            ));
            resp
        }
        Ok(None) => {
            render_login(
                &state,
                &req,
                &tx,
                Some(&identifier),
                Some(LoginError::InvalidCredentials),
            )
            .await
        }
        Err(e) => page_failure(lang, &e),
    }
}

/// Checks the password and opens a new SSO session (a fresh id at every sign-in).
/// `Ok(None)` for wrong credentials, the same for unknown and known accounts.
async fn sign_in(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    identifier: &str,
    password: String,
    remember: bool,
) -> Result<Option<(AuthContext, String)>, OAuthError> {
    let login = normalize_login(identifier);
    let subject = state
        .store
        .call(move |s| s.find_subject_by_login(&login))
        .await?;
    let ok = state
        .passwords
        .verify(subject.as_ref().map(|s| s.password_hash.clone()), password)
        .await
        .map_err(OAuthError::server)?;
    let now = state.now();
    let ip = ip_of(req);
    let client_id = Some(tx.request.client_id.clone());
    let subject = match subject {
        Some(s) if ok => s,
        other => {
            let event = AuditEvent {
                at: now,
                kind: "login.failure".into(),
                subject_id: other.map(|s| s.id),
                client_id,
                ip,
                detail: serde_json::json!({ "method": "pwd" }),
            };
            state.store.call(move |s| s.append_audit(&event)).await?;
            return Ok(None);
        }
    };
    let cookie_value = keys::random_token(32).map_err(OAuthError::server)?;
    let ttl = if remember {
        state.cfg.session.remember_ttl_secs
    } else {
        state.cfg.session.ttl_secs
    };
    let session = SsoSession {
        id_hash: keys::sha256_b64url(cookie_value.as_bytes()),
        sid: crate::protocol::tokens::new_id()?,
        subject_id: subject.id.clone(),
        auth_time: now,
        acr: ACR_ONE_FACTOR.into(),
        amr: vec!["pwd".into()],
        remember,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(ttl as i64),
        ended_at: None,
    };
    let previous = current_session(state, req).await?;
    let auth = login::context_of(&session);
    let event = AuditEvent {
        at: now,
        kind: "login.success".into(),
        subject_id: Some(subject.id.clone()),
        client_id,
        ip,
        detail: serde_json::json!({ "method": "pwd", "sid": session.sid }),
    };
    state
        .store
        .call(move |s| {
            if let Some(p) = previous {
                s.end_session(&p.sid, now)?;
            }
            s.insert_session(&session)?;
            s.append_audit(&event)
        })
        .await?;
    Ok(Some((auth, cookie_value)))
}

async fn continue_after_login(
    state: &AppState,
    lang: Lang,
    mut tx: LoginTx,
    auth: AuthContext,
) -> HttpResponse {
    let (sub, cid) = (auth.subject_id.clone(), tx.request.client_id.clone());
    let grant = match state.store.call(move |s| s.find_grant(&sub, &cid)).await {
        Ok(g) => g,
        Err(e) => return page_failure(lang, &e.into()),
    };
    match login::after_login(&tx.request, auth, grant.as_ref()) {
        Next::Consent(auth) => {
            tx.auth = Some(auth);
            let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
            if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                return page_failure(lang, &e.into());
            }
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/consent?tx={}", tx.id)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Next::Finish(auth) => complete(state, lang, &tx, &auth).await,
        Next::Fail(e) => redirect_error(state, &tx.request.target, &e),
        Next::Login => expired(lang),
    }
}

/// Ends the transaction (once) and issues the code.
async fn complete(state: &AppState, lang: Lang, tx: &LoginTx, auth: &AuthContext) -> HttpResponse {
    match LoginTx::take(state.eph.as_ref(), &tx.id).await {
        Ok(Some(_)) => finish(state, lang, &tx.request, auth).await,
        Ok(None) => expired(lang),
        Err(e) => page_failure(lang, &e.into()),
    }
}

pub async fn consent_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    let id = tx_param(&req);
    let tx = match load_tx(&state, &req, &id).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return expired(lang),
        Err(e) => return page_failure(lang, &e),
    };
    let Some(auth) = &tx.auth else {
        return expired(lang);
    };
    let name = client_name(&state, &tx.request.client_id).await;
    let sub = auth.subject_id.clone();
    let user = match state.store.call(move |s| s.find_subject(&sub)).await {
        Ok(Some(s)) => s.login,
        _ => return expired(lang),
    };
    let scopes: Vec<&str> = tx.request.scopes.iter().map(String::as_str).collect();
    let body = ConsentPage {
        lang: tx_lang(&req, &tx),
        client_name: &name,
        action: "/consent",
        tx: &tx.id,
        csrf: &tx.csrf,
        scopes: &scopes,
        user_display: &user,
    }
    .render();
    html(StatusCode::OK, body)
}

pub async fn consent_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let lang = lang_of(&req, None);
    let Ok(form) = super::token::form_body(&req, &body) else {
        return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None);
    };
    let id = form.get("tx").ok().flatten().unwrap_or("").to_string();
    let tx = match load_tx(&state, &req, &id).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return expired(lang),
        Err(e) => return page_failure(lang, &e),
    };
    let lang = tx_lang(&req, &tx);
    if !csrf_ok(&form, &tx) {
        return page(StatusCode::FORBIDDEN, lang, ErrorKind::BadRequest, None);
    }
    let Some(auth) = tx.auth.clone() else {
        return expired(lang);
    };
    match form.get("decision").ok().flatten() {
        Some("allow") => {}
        Some("deny") => {
            let _ = LoginTx::take(state.eph.as_ref(), &tx.id).await;
            let e = OAuthError::new(
                ErrorCode::AccessDenied,
                "the user declined to share the data",
            );
            return redirect_error(&state, &tx.request.target, &e);
        }
        _ => return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None),
    }
    if let Err(e) = record_consent(&state, &req, &tx, &auth).await {
        return page_failure(lang, &e);
    }
    complete(&state, lang, &tx, &auth).await
}

/// Remembers the scopes the user agreed to, with an audit event.
async fn record_consent(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    auth: &AuthContext,
) -> Result<(), OAuthError> {
    let now = state.now();
    let (sub, cid) = (auth.subject_id.clone(), tx.request.client_id.clone());
    let scopes = tx.request.scopes.clone();
    let event = AuditEvent {
        at: now,
        kind: "consent.granted".into(),
        subject_id: Some(sub.clone()),
        client_id: Some(cid.clone()),
        ip: ip_of(req),
        detail: serde_json::json!({ "scopes": scopes }),
    };
    state
        .store
        .call(move |s| {
            let existing = s.find_grant(&sub, &cid)?;
            let mut all = existing
                .as_ref()
                .map(|g| g.scopes.clone())
                .unwrap_or_default();
            for sc in scopes {
                if !all.contains(&sc) {
                    all.push(sc);
                }
            }
            s.upsert_grant(&Grant {
                subject_id: sub,
                client_id: cid,
                scopes: all,
                created_at: existing.map(|g| g.created_at).unwrap_or(now),
                updated_at: now,
            })?;
            s.append_audit(&event)
        })
        .await?;
    Ok(())
}
