//! Enrolling an authenticator app (TOTP): the secret, its QR code, the first code.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::TotpEnrolPage;
use webauthn_rs::prelude::Uuid;

use crate::authn::totp;
use crate::domain::{Credential, CredentialKind};
use crate::http::error::{html, page_failure};
use crate::http::login::see_other;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{CredentialStore, SubjectStore};

use super::confirm::change_context;
use super::{audit, event, notify_owner, Ctx, PAGE};

/// The QR code of `uri` as SVG markup (drawn here: the page asks the browser for nothing).
pub(super) fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

pub(super) async fn totp_page(
    state: &AppState,
    ctx: &Ctx,
    cred: &Credential,
    wrong_code: bool,
) -> HttpResponse {
    let sub = ctx.session.subject_id.clone();
    let login = match state.store.call(move |s| s.find_subject(&sub)).await {
        Ok(Some(s)) => s.login,
        Ok(None) => String::new(),
        Err(e) => return page_failure(ctx.lang, &e.into()),
    };
    let Some(secret) = &cred.secret else {
        return page_failure(
            ctx.lang,
            &OAuthError::server("TOTP credential without a secret"),
        );
    };
    let issuer = url::Url::parse(&state.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "Propusk".into());
    let uri = match totp::otpauth_uri(secret.expose(), &issuer, &login) {
        Ok(u) => u,
        Err(e) => return page_failure(ctx.lang, &OAuthError::server(e.to_string())),
    };
    let svg = qr_svg(&uri).unwrap_or_default();
    let body = TotpEnrolPage {
        lang: ctx.lang,
        action: "/account/security/totp/confirm",
        csrf: &ctx.csrf,
        id: &cred.id,
        qr_svg: &svg,
        uri: &uri,
        wrong_code,
    }
    .render();
    html(
        if wrong_code {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        body,
    )
}

/// `POST /account/security/totp`: a new (unconfirmed) app secret and its QR code.
pub async fn totp_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, _form) = match change_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let secret = match totp::new_secret() {
        Ok(s) => s,
        Err(e) => return page_failure(ctx.lang, &OAuthError::server(e.to_string())),
    };
    let cred = Credential {
        id: Uuid::new_v4().to_string(),
        subject_id: ctx.session.subject_id.clone(),
        kind: CredentialKind::Totp,
        secret: Some(secret),
        secret_hash: None,
        last_used_step: None,
        created_at: state.now(),
        confirmed_at: None,
        used_at: None,
    };
    let ev = event(
        &state,
        &req,
        "totp.enrolment_started",
        &cred.subject_id,
        serde_json::json!({}),
    );
    let (c2, ev2) = (
        Credential {
            secret: cred
                .secret
                .as_ref()
                .map(|s| keys::SecretBytes::new(s.expose().to_vec())),
            ..clone_meta(&cred)
        },
        ev,
    );
    if let Err(e) = state
        .store
        .call(move |s| s.insert_credential(&c2, &ev2))
        .await
    {
        return page_failure(ctx.lang, &e.into());
    }
    totp_page(&state, &ctx, &cred, false).await
}

/// A credential's fields without its secret (`Credential` is not `Clone`: secrets are not copied by accident).
pub(super) fn clone_meta(c: &Credential) -> Credential {
    Credential {
        id: c.id.clone(),
        subject_id: c.subject_id.clone(),
        kind: c.kind,
        secret: None,
        secret_hash: c.secret_hash.clone(),
        last_used_step: c.last_used_step,
        created_at: c.created_at,
        confirmed_at: c.confirmed_at,
        used_at: c.used_at,
    }
}

/// `POST /account/security/totp/confirm`: the first code from the app confirms it.
pub async fn totp_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, form) = match change_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = form.get("id").ok().flatten().unwrap_or("").to_string();
    let code = form.get("code").ok().flatten().unwrap_or("").to_string();
    let sub = ctx.session.subject_id.clone();
    let creds = match state.store.call(move |s| s.list_credentials(&sub)).await {
        Ok(c) => c,
        Err(e) => return page_failure(ctx.lang, &e.into()),
    };
    let Some(pending) = creds
        .into_iter()
        .find(|c| c.id == id && c.kind == CredentialKind::Totp && c.confirmed_at.is_none())
    else {
        return see_other(PAGE);
    };
    let step = pending
        .secret
        .as_ref()
        .and_then(|s| totp::check(s.expose(), &code, state.now()));
    let Some(step) = step else {
        let ev = event(
            &state,
            &req,
            "totp.enrolment_failure",
            &ctx.session.subject_id,
            serde_json::json!({}),
        );
        if let Err(e) = audit(&state, ev).await {
            return page_failure(ctx.lang, &e);
        }
        return totp_page(&state, &ctx, &pending, true).await;
    };
    let ev = event(
        &state,
        &req,
        "totp.enrolled",
        &ctx.session.subject_id,
        serde_json::json!({}),
    );
    let pid = pending.id.clone();
    match state
        .store
        .call(move |s| s.confirm_totp(&pid, step, &ev))
        .await
    {
        Ok(true) => {}
        Ok(false) => return see_other(PAGE),
        Err(e) => return page_failure(ctx.lang, &e.into()),
    }
    if let Err(e) = notify_owner(
        &state,
        &ctx.session.subject_id,
        "подключено приложение-аутентификатор",
    )
    .await
    {
        return page_failure(ctx.lang, &e);
    }
    see_other(&format!("{PAGE}?done=enrolled"))
}
