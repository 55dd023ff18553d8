//! Confirming it is you before a change: the recent-confirmation ("elevation") plumbing,
//! by an app or recovery code, the password of a person without factors, or a passkey or
//! security key.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{Confirm, SecurityNotice};
use webauthn_rs::prelude::PublicKeyCredential;

use crate::authn::webauthn::{self as wa, Ceremony, CeremonyState, Refusal, StoredKey};
use crate::authn::{recovery, totp};
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::domain::SsoSession;
use crate::http::error::page_failure;
use crate::http::login::see_other;
use crate::http::passkey::{
    credential_field, json_refusal, known_answer, problem, record_use, relying_party,
    save_ceremony, start_answer, start_assertion, take_ceremony,
};
use crate::protocol::params::Params;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{CredentialStore, SubjectStore, WebauthnStore};

use super::page::{factors_of, render, Factors};
use super::{
    audit, ceremony_allowed, event, form_context, json_context, Ctx, ELEVATION_SECS, PAGE,
};

pub(super) fn elevation_key(sid: &str) -> String {
    format!("elev:{}", keys::sha256_b64url(sid.as_bytes()))
}

/// Whether the session may change factors now.
pub(in crate::http) async fn elevated(
    state: &AppState,
    s: &SsoSession,
) -> Result<bool, OAuthError> {
    if (state.now() - s.auth_time).num_seconds() <= ELEVATION_SECS {
        return Ok(true);
    }
    // The record holds the confirmation time, judged by the provider's clock; its TTL only
    // cleans up.
    let confirmed_at = state
        .eph
        .get(&elevation_key(&s.sid))
        .await?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|t| t.parse::<i64>().ok());
    Ok(confirmed_at
        .is_some_and(|at| (0..=ELEVATION_SECS).contains(&(state.now().timestamp() - at))))
}

pub(super) async fn elevate(state: &AppState, s: &SsoSession) -> Result<(), OAuthError> {
    let ttl = std::time::Duration::from_secs(ELEVATION_SECS as u64);
    let at = state.now().timestamp().to_string();
    state
        .eph
        .put(&elevation_key(&s.sid), at.as_bytes(), ttl)
        .await?;
    Ok(())
}

/// `POST /account/security/confirm`: an app or recovery code, or the password of a person
/// without any factor.
pub async fn confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, form) = match form_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ip = crate::http::client_ip(&state, &req).unwrap_or_default();
    match crate::http::login::throttle(&state).ip_attempt(&ip).await {
        Ok(true) => {}
        Ok(false) => return render(&state, &ctx, Some(SecurityNotice::WrongCode)).await,
        Err(e) => return page_failure(ctx.lang, &e.into()),
    }
    let sub = ctx.session.subject_id.clone();
    let run = async {
        let f = factors_of(&state, &sub).await?;
        let method = form.get("method").ok().flatten().unwrap_or("");
        let ok = match (f.confirm(), method) {
            (Confirm::Code, "code") => {
                let code = form.get("code").ok().flatten().unwrap_or("");
                check_code(&state, &f, &sub, code).await?
            }
            (Confirm::Password, "password") => {
                let pw = form
                    .get("password")
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .to_string();
                let s2 = sub.clone();
                let hash = state
                    .store
                    .call(move |s| s.find_subject(&s2))
                    .await?
                    .map(|s| s.password_hash);
                !pw.is_empty()
                    && pw.len() <= 1024
                    && state
                        .passwords
                        .verify(hash, pw)
                        .await
                        .map_err(OAuthError::server)?
            }
            _ => false,
        };
        let kind = if ok {
            "account.confirmed"
        } else {
            "account.confirm_failure"
        };
        audit(
            &state,
            event(
                &state,
                &req,
                kind,
                &sub,
                serde_json::json!({ "method": method }),
            ),
        )
        .await?;
        if ok {
            elevate(&state, &ctx.session).await?;
        }
        Ok::<_, OAuthError>((ok, method == "password"))
    };
    match run.await {
        Ok((true, _)) => see_other(&format!("{PAGE}?done=confirmed")),
        Ok((false, true)) => render(&state, &ctx, Some(SecurityNotice::WrongPassword)).await,
        Ok((false, false)) => render(&state, &ctx, Some(SecurityNotice::WrongCode)).await,
        Err(e) => page_failure(ctx.lang, &e),
    }
}

/// An app code (its step spent) or a recovery code (spent; the owner is alerted).
pub(super) async fn check_code(
    state: &AppState,
    f: &Factors,
    sub: &str,
    code: &str,
) -> Result<bool, OAuthError> {
    if code.is_empty() || code.len() > 64 {
        return Ok(false);
    }
    if let Some(app) = f.app() {
        let now = state.now();
        if let Some(step) = app
            .secret
            .as_ref()
            .and_then(|s| totp::check(s.expose(), code, now))
        {
            let id = app.id.clone();
            return Ok(state
                .store
                .call(move |s| s.use_totp_step(&id, step))
                .await?);
        }
    }
    let Some(normal) = recovery::normalize(code) else {
        return Ok(false);
    };
    let hash = recovery::hash(state.store.vault()?, &normal);
    let (s2, now) = (sub.to_string(), state.now());
    let spent = state
        .store
        .call(move |s| s.use_recovery_code(&s2, &hash, now))
        .await?;
    if spent {
        crate::http::alerts::alert_owner(state, sub, crate::http::alerts::Alert::RecoveryCodeUsed)
            .await?;
    }
    Ok(spent)
}

/// `POST /account/security/confirm-key/start`: options to confirm with a passkey or, when
/// the person has none, a security key.
pub async fn confirm_key_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, _form) = match json_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = ceremony_allowed(&state, &req, &ctx).await {
        return r;
    }
    let Some(rp) = relying_party(&state) else {
        return json_refusal(StatusCode::NOT_FOUND, "unavailable");
    };
    let run = async {
        let f = factors_of(&state, &ctx.session.subject_id).await?;
        // A passkey when the person has one, else a security key.
        let started = match start_assertion(&rp, &f.keys, WebauthnKind::Passkey)? {
            Some(v) => Some(v),
            None => start_assertion(&rp, &f.keys, WebauthnKind::SecurityKey)?,
        };
        let Some((options, st)) = started else {
            return Ok(Err("no_key"));
        };
        let ceremony = Ceremony {
            v: 1,
            binding: format!("sid:{}", ctx.session.sid),
            subject_id: Some(ctx.session.subject_id.clone()),
            name: None,
            state: st,
        };
        save_ceremony(&state, ceremony, options).await.map(Ok)
    };
    start_answer(run.await, "confirm start failed")
}

/// Verifies an assertion of one of `sub`'s keys against a ceremony bound to `sub`: a passkey
/// confirmation (`ConfirmPasskey`) or a security key (`SecondFactor`, in a sign-in or a
/// confirmation). The credential must be the subject's and of the kind the ceremony asked
/// for; the signature is checked and the new counter recorded (a clone or a racing replay
/// loses). Returns the stored credential as it was before this use.
///
/// The one check of a known key's assertion: the security page's confirmation and the
/// second factor of a sign-in (`http/passkey.rs`) both call it.
pub(in crate::http) async fn verify_key_assertion(
    state: &AppState,
    c: Ceremony,
    sub: &str,
    json: &str,
) -> Result<Result<WebauthnCredential, Refusal>, OAuthError> {
    let (rp, cred): (_, PublicKeyCredential) = match known_answer(state, &c, sub, json) {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    let cred_id = wa::cred_id_b64(cred.get_credential_id());
    let stored = state
        .store
        .call(move |s| s.find_webauthn(&cred_id))
        .await?
        .filter(|k| k.subject_id == sub);
    let Some(stored) = stored else {
        return Ok(Err(Refusal::UnknownCredential));
    };
    let (result, data) = match (c.state, StoredKey::parse(&stored.data)) {
        (CeremonyState::ConfirmPasskey(st), Some(StoredKey::PasskeyV1 { key: mut k })) => {
            match rp.finish_passkey_authentication(&cred, &st) {
                Ok(r) => {
                    k.update_credential(&r);
                    (r, StoredKey::PasskeyV1 { key: k }.to_json())
                }
                Err(e) => return Ok(Err(Refusal::from(&e))),
            }
        }
        (CeremonyState::SecondFactor(st), Some(StoredKey::SecurityKeyV1 { key: mut k })) => {
            match rp.finish_securitykey_authentication(&cred, &st) {
                Ok(r) => {
                    k.update_credential(&r);
                    (r, StoredKey::SecurityKeyV1 { key: k }.to_json())
                }
                Err(e) => return Ok(Err(Refusal::from(&e))),
            }
        }
        // The stored key cannot be read: not the person's fault, but no sign of it either.
        (_, None) => return Ok(Err(Refusal::Invalid)),
        _ => return Ok(Err(Refusal::UnknownCredential)),
    };
    Ok(record_use(state, &stored, result.counter(), data)
        .await?
        .map(|()| stored))
}

/// `POST /account/security/confirm-key`: the assertion that confirms.
pub async fn confirm_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, form) = match form_context(&state, &req, &body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let sub = ctx.session.subject_id.clone();
    let run = async {
        let outcome =
            match take_ceremony(&state, &form, &format!("sid:{}", ctx.session.sid)).await? {
                Ok(c) => verify_key_assertion(&state, c, &sub, credential_field(&form))
                    .await?
                    .map(|_| ()),
                Err(r) => Err(r),
            };
        let (kind, detail) = match outcome {
            Ok(()) => (
                "account.confirmed",
                serde_json::json!({ "method": "webauthn" }),
            ),
            Err(r) => (
                "account.confirm_failure",
                serde_json::json!({ "method": "webauthn", "reason": r.as_str() }),
            ),
        };
        audit(&state, event(&state, &req, kind, &sub, detail)).await?;
        if outcome.is_ok() {
            elevate(&state, &ctx.session).await?;
        }
        Ok::<_, OAuthError>(outcome)
    };
    match run.await {
        Ok(Ok(())) => see_other(&format!("{PAGE}?done=confirmed")),
        Ok(Err(r)) => render(&state, &ctx, Some(SecurityNotice::Problem(problem(r)))).await,
        Err(e) => page_failure(ctx.lang, &e),
    }
}

// ------------------------------------------------------------------ changes

/// The context of a change: signed in, CSRF checked, and recently confirmed.
pub(super) async fn change_context(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(Ctx, Params), HttpResponse> {
    let (ctx, form) = form_context(state, req, body).await?;
    match elevated(state, &ctx.session).await {
        Ok(true) => Ok((ctx, form)),
        Ok(false) => Err(render(state, &ctx, Some(SecurityNotice::ConfirmFirst)).await),
        Err(e) => Err(page_failure(ctx.lang, &e)),
    }
}
