//! Enrolling a passkey or a security key (WebAuthn registration).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::SecurityNotice;
use webauthn_rs::prelude::{RegisterPublicKeyCredential, Uuid};

use crate::authn::webauthn::{self as wa, Ceremony, CeremonyState, Refusal, StoredKey};
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::http::error::page_failure;
use crate::http::login::see_other;
use crate::http::passkey::{
    credential_field, json_refusal, known_answer, problem, relying_party, save_ceremony,
    start_answer, take_ceremony,
};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{StoreError, SubjectStore, WebauthnStore};

use super::confirm::{change_context, elevated};
use super::page::render;
use super::{audit, ceremony_allowed, event, json_context, notify_owner, PAGE};

/// `POST /account/security/webauthn/start`: registration options for a passkey or a
/// security key (`kind`), with a label (`name`).
pub async fn webauthn_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, form) = match json_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = ceremony_allowed(&state, &req, &ctx).await {
        return r;
    }
    match elevated(&state, &ctx.session).await {
        Ok(true) => {}
        Ok(false) => return json_refusal(StatusCode::FORBIDDEN, "confirm_first"),
        Err(_) => return json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
    let Some(kind) = form
        .get("kind")
        .ok()
        .flatten()
        .and_then(WebauthnKind::parse)
    else {
        return json_refusal(StatusCode::BAD_REQUEST, "kind");
    };
    let Some(rp) = relying_party(&state) else {
        return json_refusal(StatusCode::NOT_FOUND, "unavailable");
    };
    let name = form
        .get("name")
        .ok()
        .flatten()
        .and_then(wa::clean_name)
        .unwrap_or_else(|| wa::default_name(kind, state.now()));
    let run = async {
        let sub = ctx.session.subject_id.clone();
        let fresh = Uuid::new_v4().to_string();
        let (handle, login, existing) = state
            .store
            .call(move |s| {
                let h = s.webauthn_handle(&sub, &fresh)?;
                let login = s.find_subject(&sub)?.map(|x| x.login).unwrap_or_default();
                Ok((h, login, s.list_webauthn(&sub)?))
            })
            .await?;
        let handle = Uuid::parse_str(&handle)
            .map_err(|_| OAuthError::server("stored WebAuthn user handle is not a UUID"))?;
        let exclude: Vec<_> = wa::passkeys(&existing)
            .iter()
            .map(|(_, k)| k.cred_id().clone())
            .chain(
                wa::security_keys(&existing)
                    .iter()
                    .map(|(_, k)| k.cred_id().clone()),
            )
            .collect();
        let (options, st) = match kind {
            WebauthnKind::Passkey => {
                let (o, st) = rp
                    .start_passkey_registration(handle, &login, &login, Some(exclude))
                    .map_err(|e| OAuthError::server(format!("webauthn start: {e}")))?;
                let mut v = serde_json::to_value(o).unwrap_or_default();
                // A passkey must be discoverable (sign-in without typing a login, autofill).
                if let Some(sel) = v
                    .get_mut("publicKey")
                    .and_then(|p| p.get_mut("authenticatorSelection"))
                    .and_then(|s| s.as_object_mut())
                {
                    sel.insert("residentKey".into(), "required".into());
                    sel.insert("requireResidentKey".into(), true.into());
                }
                (v, CeremonyState::RegisterPasskey(st))
            }
            WebauthnKind::SecurityKey => {
                let (o, st) = rp
                    .start_securitykey_registration(
                        handle,
                        &login,
                        &login,
                        Some(exclude),
                        None,
                        None,
                    )
                    .map_err(|e| OAuthError::server(format!("webauthn start: {e}")))?;
                let mut v = serde_json::to_value(o).unwrap_or_default();
                // Chromium refuses (NotSupportedError) a credProtect "user verification
                // required" policy for a non-discoverable credential whose user verification
                // is only preferred: a security key is the second factor, so it goes.
                if let Some(ext) = v
                    .get_mut("publicKey")
                    .and_then(|p| p.get_mut("extensions"))
                    .and_then(|e| e.as_object_mut())
                {
                    ext.remove("credentialProtectionPolicy");
                    ext.remove("enforceCredentialProtectionPolicy");
                }
                (v, CeremonyState::RegisterSecurityKey(st))
            }
        };
        let ceremony = Ceremony {
            v: 1,
            binding: format!("sid:{}", ctx.session.sid),
            subject_id: Some(ctx.session.subject_id.clone()),
            name: Some(name),
            state: st,
        };
        save_ceremony(&state, ceremony, options).await
    };
    start_answer(run.await.map(Ok), "webauthn enrolment start failed")
}

/// Verifies a registration and builds the credential to store.
pub(super) async fn verify_registration(
    state: &AppState,
    c: Ceremony,
    sub: &str,
    json: &str,
) -> Result<Result<WebauthnCredential, Refusal>, OAuthError> {
    let (rp, reg): (_, RegisterPublicKeyCredential) = match known_answer(state, &c, sub, json) {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    let (kind, cred_id, data) = match c.state {
        CeremonyState::RegisterPasskey(st) => match rp.finish_passkey_registration(&reg, &st) {
            Ok(k) => (
                WebauthnKind::Passkey,
                wa::cred_id_b64(k.cred_id()),
                StoredKey::PasskeyV1 { key: k }.to_json(),
            ),
            Err(e) => return Ok(Err(Refusal::from(&e))),
        },
        CeremonyState::RegisterSecurityKey(st) => {
            match rp.finish_securitykey_registration(&reg, &st) {
                Ok(k) => (
                    WebauthnKind::SecurityKey,
                    wa::cred_id_b64(k.cred_id()),
                    StoredKey::SecurityKeyV1 { key: k }.to_json(),
                ),
                Err(e) => return Ok(Err(Refusal::from(&e))),
            }
        }
        _ => return Ok(Err(Refusal::OtherBrowser)),
    };
    let now = state.now();
    Ok(Ok(WebauthnCredential {
        id: Uuid::new_v4().to_string(),
        subject_id: sub.to_string(),
        kind,
        cred_id,
        name: c.name.unwrap_or_else(|| wa::default_name(kind, now)),
        data,
        sign_count: 0,
        created_at: now,
        last_used_at: None,
    }))
}

/// `POST /account/security/webauthn/finish`: stores the new passkey or security key.
pub async fn webauthn_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, form) = match change_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let sub = ctx.session.subject_id.clone();
    let run = async {
        let outcome =
            match take_ceremony(&state, &form, &format!("sid:{}", ctx.session.sid)).await? {
                Ok(c) => verify_registration(&state, c, &sub, credential_field(&form)).await?,
                Err(r) => Err(r),
            };
        let cred = match outcome {
            Ok(c) => c,
            Err(r) => {
                let d = serde_json::json!({ "reason": r.as_str() });
                audit(
                    &state,
                    event(&state, &req, "webauthn.enrolment_failure", &sub, d),
                )
                .await?;
                return Ok(Err(r));
            }
        };
        let kind = format!("{}.enrolled", cred.kind.as_str());
        let d = serde_json::json!({ "id": cred.id, "name": cred.name });
        let ev = event(&state, &req, &kind, &sub, d);
        let what = match cred.kind {
            WebauthnKind::Passkey => "добавлен ключ доступа",
            WebauthnKind::SecurityKey => "добавлен аппаратный ключ",
        };
        match state
            .store
            .call(move |s| s.insert_webauthn(&cred, &ev))
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(Err(Refusal::AlreadyRegistered)),
            Err(e) => return Err(e.into()),
        }
        notify_owner(&state, &sub, what).await?;
        Ok::<_, OAuthError>(Ok(()))
    };
    match run.await {
        Ok(Ok(())) => see_other(&format!("{PAGE}?done=enrolled")),
        Ok(Err(r)) => render(&state, &ctx, Some(SecurityNotice::Problem(problem(r)))).await,
        Err(e) => page_failure(ctx.lang, &e),
    }
}
