//! The consent page of a login transaction: the scopes a portal asks for, and the person's
//! answer, remembered as a grant with an audit event.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{ConsentPage, ErrorKind};

use super::authorize::redirect_error;
use super::error::{html, lang_of, page, page_failure};
use super::login::{client_name, complete, expired, ip_of, load_tx, tx_form, tx_lang, tx_param};
use crate::audit::AuditEvent;
use crate::authn::transaction::{AuthContext, LoginTx};
use crate::domain::Grant;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{AuditStore, GrantStore, SubjectStore};

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
    // Below the portal's minimum level or not active: that page instead of consent (issue 5).
    if let Err(resp) = super::level::gate(&state, tx_lang(&req, &tx), &tx.request, auth, None).await
    {
        return resp;
    }
    let view = super::level::consent_view(&state, &tx, &auth.subject_id).await;
    let mut withheld = Vec::new();
    let body = ConsentPage {
        lang: tx_lang(&req, &tx),
        client_name: &name,
        action: "/consent",
        tx: &tx.id,
        csrf: &tx.csrf,
        scopes: &scopes,
        user_display: &user,
    }
    // Sensitive scopes marked; scopes above the account level named as withheld (issue 5).
    .render_with(&view.extra(&mut withheld));
    html(StatusCode::OK, body)
}

pub async fn consent_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(auth) = tx.auth.clone() else {
        return expired(lang);
    };
    match form.get("decision").ok().flatten() {
        Some("allow") => {}
        Some("deny") => {
            let _ = LoginTx::take(state.eph.as_ref(), &tx.id).await;
            // The ESIA dialect answers with its own code (issue 5).
            let e = super::esia::consent_denied(&state, &req, &tx.request.client_id).await;
            return redirect_error(&state, &tx.request.target, &e);
        }
        _ => return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None),
    }
    let tx = super::level::without_withheld(&state, tx, &auth.subject_id).await;
    if let Err(e) = record_consent(&state, &req, &tx, &auth).await {
        return page_failure(lang, &e);
    }
    complete(&state, lang, &tx, &auth, None).await
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
        ip: ip_of(state, req),
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
