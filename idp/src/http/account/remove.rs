//! Removing a factor.

use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::SecurityNotice;

use crate::http::error::page_failure;
use crate::http::login::see_other;
use crate::state::AppState;
use crate::store::{FactorRef, PushDeviceStore, WebauthnStore};

use super::confirm::change_context;
use super::page::render;
use super::{event, notify_owner, Ctx, PAGE};

/// `POST /account/security/remove`: removes a factor (`totp:<id>`, `recovery`, `wa:<id>`,
/// `push:<id>`).
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, form) = match change_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let raw = form.get("factor").ok().flatten().unwrap_or("");
    if let Some(id) = raw.strip_prefix("push:") {
        return remove_push(&state, &req, &ctx, id).await;
    }
    let (factor, what) = if let Some(id) = raw.strip_prefix("totp:") {
        (
            FactorRef::Totp(id.to_string()),
            "удалено приложение-аутентификатор",
        )
    } else if let Some(id) = raw.strip_prefix("wa:") {
        (FactorRef::Webauthn(id.to_string()), "удалён ключ доступа")
    } else if raw == "recovery" {
        (FactorRef::RecoveryCodes, "удалены резервные коды")
    } else {
        return render(&state, &ctx, Some(SecurityNotice::Nothing)).await;
    };
    let sub = ctx.session.subject_id.clone();
    let ev = event(
        &state,
        &req,
        "factor.removed",
        &sub,
        serde_json::json!({ "factor": raw }),
    );
    let f2 = factor.clone();
    let s2 = sub.clone();
    match state
        .store
        .call(move |s| s.remove_factor(&s2, &f2, &ev))
        .await
    {
        Ok(true) => {}
        Ok(false) => return render(&state, &ctx, Some(SecurityNotice::Nothing)).await,
        Err(e) => return page_failure(ctx.lang, &e.into()),
    }
    if let Err(e) = notify_owner(&state, &sub, what).await {
        return page_failure(ctx.lang, &e);
    }
    see_other(&format!("{PAGE}?done=removed"))
}

/// Removes a push device: no more codes go to it (the row stays, marked removed).
async fn remove_push(state: &AppState, req: &HttpRequest, ctx: &Ctx, id: &str) -> HttpResponse {
    let sub = ctx.session.subject_id.clone();
    let ev = event(
        state,
        req,
        "factor.removed",
        &sub,
        serde_json::json!({ "factor": format!("push:{id}") }),
    );
    let (s2, id, now) = (sub.clone(), id.to_string(), state.now());
    match state
        .store
        .call(move |s| s.remove_push_device(&s2, &id, now, &ev))
        .await
    {
        Ok(true) => {}
        Ok(false) => return render(state, ctx, Some(SecurityNotice::Nothing)).await,
        Err(e) => return page_failure(ctx.lang, &e.into()),
    }
    if let Err(e) = notify_owner(state, &sub, "удалено приложение для получения кодов").await
    {
        return page_failure(ctx.lang, &e);
    }
    see_other(&format!("{PAGE}?done=removed"))
}
