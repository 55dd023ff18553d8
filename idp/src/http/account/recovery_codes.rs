//! New recovery codes, shown once.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::RecoveryCodesPage;
use webauthn_rs::prelude::Uuid;

use crate::authn::recovery;
use crate::domain::{Credential, CredentialKind};
use crate::http::error::{html, page_failure};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::CredentialStore;

use super::confirm::change_context;
use super::{event, notify_owner};

/// `POST /account/security/recovery`: new recovery codes (the old ones die), shown once.
pub async fn recovery_codes(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, _form) = match change_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(codes) = recovery::generate() else {
        return page_failure(
            ctx.lang,
            &OAuthError::server("random number generator failed"),
        );
    };
    let vault = match state.store.vault() {
        Ok(v) => v,
        Err(e) => return page_failure(ctx.lang, &e.into()),
    };
    let now = state.now();
    let sub = ctx.session.subject_id.clone();
    let creds: Vec<Credential> = codes
        .iter()
        .map(|c| Credential {
            id: Uuid::new_v4().to_string(),
            subject_id: sub.clone(),
            kind: CredentialKind::Recovery,
            secret: None,
            secret_hash: recovery::normalize(c).map(|n| recovery::hash(vault, &n)),
            last_used_step: None,
            created_at: now,
            confirmed_at: None,
            used_at: None,
        })
        .collect();
    let ev = event(
        &state,
        &req,
        "recovery_codes.issued",
        &sub,
        serde_json::json!({ "count": creds.len() }),
    );
    let s2 = sub.clone();
    if let Err(e) = state
        .store
        .call(move |s| s.replace_recovery_codes(&s2, &creds, &ev))
        .await
    {
        return page_failure(ctx.lang, &e.into());
    }
    if let Err(e) = notify_owner(&state, &sub, "выпущены новые резервные коды").await
    {
        return page_failure(ctx.lang, &e);
    }
    html(
        StatusCode::OK,
        RecoveryCodesPage {
            lang: ctx.lang,
            codes: &codes,
        }
        .render(),
    )
}
