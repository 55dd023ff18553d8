//! WebAuthn in a sign-in: a passkey as the first factor (conditional UI on the login page or
//! the "sign in with a passkey" button) and a security key as the second factor.
//!
//! `.../start` answers JSON options for `navigator.credentials.get` (static/webauthn.js) and
//! keeps the ceremony state server-side, bound to the login transaction; `.../finish` is a
//! form post that takes the state (single use) and continues like a password sign-in.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{FactorError, LoginError, WebauthnProblem};
use webauthn_rs::prelude::{DiscoverableKey, PublicKeyCredential};

use super::error::page_failure;
use super::login::{
    audit, csrf_ok, expired, ip_of, load_tx, render_login, see_other, signed_in, throttle, tx_form,
};
use crate::authn::login::{self, MAX_CODE_FAILURES};
use crate::authn::transaction::LoginTx;
use crate::authn::webauthn::{self as wa, Ceremony, CeremonyState, Refusal, SECURITY_KEY_AMR};
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::protocol::params::Params;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::WebauthnStore;

/// What the owner is told when a key's signature counter went backwards.
const CLONED: &str = "ключ отклонён при входе: его счётчик подписей уменьшился, ключ мог быть \
     скопирован; удалите его на странице «Безопасность»";

/// The relying party, or `None` (logged) when the issuer cannot be one.
pub(super) fn relying_party(state: &AppState) -> Option<webauthn_rs::prelude::Webauthn> {
    match wa::build(&state.issuer, state.cfg.dev) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "WebAuthn is not available with this issuer");
            None
        }
    }
}

/// A JSON answer of a `start` endpoint.
pub(super) fn json(status: StatusCode, v: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(v)
}

pub(super) fn json_refusal(status: StatusCode, error: &str) -> HttpResponse {
    json(status, serde_json::json!({ "error": error }))
}

pub(super) fn new_ceremony_id() -> Result<String, OAuthError> {
    keys::random_token(24).map_err(OAuthError::server)
}

/// The page text for a refusal.
pub(super) fn problem(r: Refusal) -> WebauthnProblem {
    match r {
        Refusal::Malformed => WebauthnProblem::Malformed,
        Refusal::NoCeremony => WebauthnProblem::Expired,
        Refusal::OtherBrowser | Refusal::WrongChallenge => WebauthnProblem::WrongRequest,
        Refusal::WrongOrigin => WebauthnProblem::WrongSite,
        Refusal::UnknownCredential => WebauthnProblem::UnknownKey,
        Refusal::CounterRegression => WebauthnProblem::Cloned,
        Refusal::NotVerified => WebauthnProblem::NotVerified,
        Refusal::AlreadyRegistered => WebauthnProblem::AlreadyRegistered,
        Refusal::Invalid => WebauthnProblem::Invalid,
        Refusal::Cancelled => WebauthnProblem::Cancelled,
    }
}

/// The form of a `start` call within a login transaction (JSON errors, not pages).
async fn start_tx(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<LoginTx, HttpResponse> {
    let Ok(form) = super::token::form_body(req, body) else {
        return Err(json_refusal(StatusCode::BAD_REQUEST, "bad_request"));
    };
    let id = form.get("tx").ok().flatten().unwrap_or("").to_string();
    let tx = match load_tx(state, req, &id).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return Err(json_refusal(StatusCode::BAD_REQUEST, "expired")),
        Err(_) => return Err(json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")),
    };
    if !csrf_ok(&form, &tx) {
        return Err(json_refusal(StatusCode::FORBIDDEN, "csrf"));
    }
    Ok(tx)
}

/// `POST /login/passkey/start`: options for a discoverable-credential request.
pub async fn signin_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let tx = match start_tx(&state, &req, &body).await {
        Ok(tx) => tx,
        Err(r) => return r,
    };
    let Some(rp) = relying_party(&state) else {
        return json_refusal(StatusCode::NOT_FOUND, "unavailable");
    };
    let run = async {
        let (options, st) = rp
            .start_discoverable_authentication()
            .map_err(|e| OAuthError::server(format!("webauthn start: {e}")))?;
        let id = new_ceremony_id()?;
        Ceremony {
            v: 1,
            binding: format!("tx:{}", tx.id),
            subject_id: None,
            name: None,
            state: CeremonyState::SignIn(st),
        }
        .save(state.eph.as_ref(), &id)
        .await?;
        Ok::<_, OAuthError>(serde_json::json!({ "ceremony": id, "options": options }))
    };
    match run.await {
        Ok(v) => json(StatusCode::OK, v),
        Err(e) => {
            tracing::error!(
                detail = e.detail.as_deref().unwrap_or(""),
                "passkey start failed"
            );
            json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    }
}

/// The ceremony named by the form, taken (single use) and checked against `binding`.
pub(super) async fn take_ceremony(
    state: &AppState,
    form: &Params,
    binding: &str,
) -> Result<Result<Ceremony, Refusal>, OAuthError> {
    let id = form.get("ceremony").ok().flatten().unwrap_or("");
    let taken = Ceremony::take(state.eph.as_ref(), id).await?;
    // The browser's own failure (cancelled, timed out): the ceremony is spent all the same.
    let client_error = form.get("client_error").ok().flatten().unwrap_or("");
    if !client_error.is_empty() {
        // The DOMException name (NotAllowedError, InvalidStateError, ...): no personal data.
        let name: String = client_error
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(40)
            .collect();
        tracing::info!(client_error = %name, "WebAuthn ceremony failed in the browser");
        return Ok(Err(Refusal::Cancelled));
    }
    let Some(c) = taken else {
        return Ok(Err(Refusal::NoCeremony));
    };
    if !keys::constant_time_eq(c.binding.as_bytes(), binding.as_bytes()) {
        return Ok(Err(Refusal::OtherBrowser));
    }
    Ok(Ok(c))
}

pub(super) fn credential_field(form: &Params) -> &str {
    form.get("credential").ok().flatten().unwrap_or("")
}

/// Checks the counter and records the use (a conditional UPDATE: a clone or a racing replay
/// loses). `data` is the credential with its new counter.
pub(super) async fn record_use(
    state: &AppState,
    stored: &WebauthnCredential,
    counter: u32,
    data: String,
) -> Result<Result<(), Refusal>, OAuthError> {
    if !wa::counter_ok(stored.sign_count, counter) {
        return Ok(Err(Refusal::CounterRegression));
    }
    let (id, seen, now) = (stored.id.clone(), stored.sign_count, state.now());
    let won = state
        .store
        .call(move |s| s.use_webauthn(&id, seen, i64::from(counter), &data, now))
        .await?;
    Ok(if won {
        Ok(())
    } else {
        Err(Refusal::CounterRegression)
    })
}

/// A passkey sign-in that verified: the subject and how (backup eligible or not).
struct PasskeyOk {
    subject_id: String,
    backup_eligible: bool,
    cred_name: String,
}

/// Verifies a passkey assertion against a sign-in ceremony.
async fn verify_signin(
    state: &AppState,
    ceremony: Ceremony,
    json: &str,
) -> Result<Result<PasskeyOk, (Refusal, Option<String>)>, OAuthError> {
    let CeremonyState::SignIn(st) = ceremony.state else {
        return Ok(Err((Refusal::OtherBrowser, None)));
    };
    let Some(rp) = relying_party(state) else {
        return Ok(Err((Refusal::Invalid, None)));
    };
    let cred: PublicKeyCredential = match wa::parse_response(json) {
        Ok(c) => c,
        Err(r) => return Ok(Err((r, None))),
    };
    let (handle, raw_id) = match rp.identify_discoverable_authentication(&cred) {
        Ok(v) => v,
        Err(e) => return Ok(Err((Refusal::from(&e), None))),
    };
    let (handle, cred_id) = (handle.to_string(), wa::cred_id_b64(raw_id));
    let (owner, stored) = state
        .store
        .call(move |s| Ok((s.subject_of_handle(&handle)?, s.find_webauthn(&cred_id)?)))
        .await?;
    // The credential must exist, be a passkey, and belong to the user the authenticator named.
    let Some(stored) = stored.filter(|c| {
        c.kind == WebauthnKind::Passkey && owner.as_deref() == Some(c.subject_id.as_str())
    }) else {
        return Ok(Err((Refusal::UnknownCredential, owner)));
    };
    let sub = Some(stored.subject_id.clone());
    let Some(wa::StoredKey::PasskeyV1 { key: mut passkey }) = wa::StoredKey::parse(&stored.data)
    else {
        return Ok(Err((Refusal::Invalid, sub)));
    };
    #[allow(deprecated)]
    let result = match rp.finish_discoverable_authentication(
        &cred,
        st,
        &[DiscoverableKey::from(&passkey)],
    ) {
        Ok(r) => r,
        Err(e) => return Ok(Err((Refusal::from(&e), sub))),
    };
    passkey.update_credential(&result);
    let data = wa::StoredKey::PasskeyV1 { key: passkey }.to_json();
    if let Err(r) = record_use(state, &stored, result.counter(), data).await? {
        return Ok(Err((r, sub)));
    }
    Ok(Ok(PasskeyOk {
        subject_id: stored.subject_id,
        backup_eligible: result.backup_eligible(),
        cred_name: stored.name,
    }))
}

/// `POST /login/passkey/finish`: the assertion of a passkey, as the only factor.
pub async fn signin_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let ip = ip_of(&state, &req).unwrap_or_default();
    match throttle(&state).ip_attempt(&ip).await {
        Ok(true) => {}
        Ok(false) => return render_login(&state, &req, &tx, None, Some(LoginError::Locked)).await,
        Err(e) => return page_failure(lang, &e.into()),
    }
    let run = async {
        match take_ceremony(&state, &form, &format!("tx:{}", tx.id)).await? {
            Ok(c) => verify_signin(&state, c, credential_field(&form)).await,
            Err(r) => Ok(Err((r, None))),
        }
    };
    let outcome = match run.await {
        Ok(o) => o,
        Err(e) => return page_failure(lang, &e),
    };
    match outcome {
        Ok(ok) => {
            let (acr, amr) = wa::passkey_acr_amr(ok.backup_eligible);
            let detail = serde_json::json!({ "method": "passkey", "name": ok.cred_name });
            let sub = Some(ok.subject_id.clone());
            if let Err(e) = audit(&state, &req, &tx, "login.passkey", sub, detail).await {
                return page_failure(lang, &e);
            }
            let remember = form.get("remember").ok().flatten() == Some("on");
            signed_in(&state, &req, lang, tx, &ok.subject_id, acr, amr, remember).await
        }
        Err((refusal, subject)) => {
            if let (Refusal::CounterRegression, Some(sub)) = (refusal, &subject) {
                if let Err(e) = super::account::notify_owner(&state, sub, CLONED).await {
                    return page_failure(lang, &e);
                }
            }
            let detail = serde_json::json!({ "method": "passkey", "reason": refusal.as_str() });
            if let Err(e) = audit(&state, &req, &tx, "login.passkey_failure", subject, detail).await
            {
                return page_failure(lang, &e);
            }
            let err = LoginError::Passkey(problem(refusal));
            render_login(&state, &req, &tx, None, Some(err)).await
        }
    }
}

/// The subject's security keys.
pub(super) async fn security_keys_of(
    state: &AppState,
    subject_id: &str,
) -> Result<Vec<WebauthnCredential>, OAuthError> {
    let sub = subject_id.to_string();
    let all = state.store.call(move |s| s.list_webauthn(&sub)).await?;
    Ok(all
        .into_iter()
        .filter(|c| c.kind == WebauthnKind::SecurityKey)
        .collect())
}

/// Whether the subject has a security key (it turns two-factor sign-in on, like an app).
pub async fn has_security_key(state: &AppState, subject_id: &str) -> Result<bool, OAuthError> {
    Ok(!security_keys_of(state, subject_id).await?.is_empty())
}

/// `POST /login/security-key/start`: options for the second factor.
pub async fn second_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let tx = match start_tx(&state, &req, &body).await {
        Ok(tx) => tx,
        Err(r) => return r,
    };
    let Some(pending) = tx.pending.clone() else {
        return json_refusal(StatusCode::BAD_REQUEST, "expired");
    };
    let Some(rp) = relying_party(&state) else {
        return json_refusal(StatusCode::NOT_FOUND, "unavailable");
    };
    let run = async {
        let stored = security_keys_of(&state, &pending.subject_id).await?;
        let keys: Vec<_> = wa::security_keys(&stored)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let (options, st) = rp
            .start_securitykey_authentication(&keys)
            .map_err(|e| OAuthError::server(format!("webauthn start: {e}")))?;
        let id = new_ceremony_id()?;
        Ceremony {
            v: 1,
            binding: format!("tx:{}", tx.id),
            subject_id: Some(pending.subject_id.clone()),
            name: None,
            state: CeremonyState::SecondFactor(st),
        }
        .save(state.eph.as_ref(), &id)
        .await?;
        Ok::<_, OAuthError>(Some(
            serde_json::json!({ "ceremony": id, "options": options }),
        ))
    };
    match run.await {
        Ok(Some(v)) => json(StatusCode::OK, v),
        Ok(None) => json_refusal(StatusCode::BAD_REQUEST, "no_security_key"),
        Err(e) => {
            tracing::error!(
                detail = e.detail.as_deref().unwrap_or(""),
                "security key start failed"
            );
            json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    }
}

/// Verifies a security-key assertion of `subject_id` against a second-factor ceremony.
async fn verify_second(
    state: &AppState,
    ceremony: Ceremony,
    subject_id: &str,
    json: &str,
) -> Result<Result<String, Refusal>, OAuthError> {
    let CeremonyState::SecondFactor(st) = ceremony.state else {
        return Ok(Err(Refusal::OtherBrowser));
    };
    if ceremony.subject_id.as_deref() != Some(subject_id) {
        return Ok(Err(Refusal::OtherBrowser));
    }
    let Some(rp) = relying_party(state) else {
        return Ok(Err(Refusal::Invalid));
    };
    let cred: PublicKeyCredential = match wa::parse_response(json) {
        Ok(c) => c,
        Err(r) => return Ok(Err(r)),
    };
    let cred_id = wa::cred_id_b64(cred.get_credential_id());
    let stored = state
        .store
        .call(move |s| s.find_webauthn(&cred_id))
        .await?
        .filter(|c| c.kind == WebauthnKind::SecurityKey && c.subject_id == subject_id);
    let Some(stored) = stored else {
        return Ok(Err(Refusal::UnknownCredential));
    };
    let Some(wa::StoredKey::SecurityKeyV1 { key: mut sk }) = wa::StoredKey::parse(&stored.data)
    else {
        return Ok(Err(Refusal::Invalid));
    };
    let result = match rp.finish_securitykey_authentication(&cred, &st) {
        Ok(r) => r,
        Err(e) => return Ok(Err(Refusal::from(&e))),
    };
    sk.update_credential(&result);
    let data = wa::StoredKey::SecurityKeyV1 { key: sk }.to_json();
    if let Err(r) = record_use(state, &stored, result.counter(), data).await? {
        return Ok(Err(r));
    }
    Ok(Ok(stored.name))
}

/// `POST /login/security-key/finish`: the second factor by security key.
pub async fn second_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, mut tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(mut pending) = tx.pending.clone() else {
        return expired(lang);
    };
    let ip = ip_of(&state, &req).unwrap_or_default();
    match throttle(&state).ip_attempt(&ip).await {
        Ok(true) => {}
        Ok(false) => return render_login(&state, &req, &tx, None, Some(LoginError::Locked)).await,
        Err(e) => return page_failure(lang, &e.into()),
    }
    let run = async {
        match take_ceremony(&state, &form, &format!("tx:{}", tx.id)).await? {
            Ok(c) => verify_second(&state, c, &pending.subject_id, credential_field(&form)).await,
            Err(r) => Ok(Err(r)),
        }
    };
    let outcome = match run.await {
        Ok(o) => o,
        Err(e) => return page_failure(lang, &e),
    };
    let subject = Some(pending.subject_id.clone());
    match outcome {
        Ok(name) => {
            let detail = serde_json::json!({ "method": "security_key", "name": name });
            if let Err(e) = audit(&state, &req, &tx, "login.second_factor", subject, detail).await {
                return page_failure(lang, &e);
            }
            let (acr, amr) = login::after_second_factor(&pending, SECURITY_KEY_AMR);
            tx.pending = None;
            let (sub, remember) = (pending.subject_id.clone(), pending.remember);
            signed_in(&state, &req, lang, tx, &sub, acr, amr, remember).await
        }
        Err(refusal) => {
            if refusal == Refusal::CounterRegression {
                if let Err(e) =
                    super::account::notify_owner(&state, &pending.subject_id, CLONED).await
                {
                    return page_failure(lang, &e);
                }
            }
            let detail =
                serde_json::json!({ "method": "security_key", "reason": refusal.as_str() });
            if let Err(e) = audit(
                &state,
                &req,
                &tx,
                "login.second_factor_failure",
                subject,
                detail,
            )
            .await
            {
                return page_failure(lang, &e);
            }
            let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
            // A cancelled request is not a wrong answer.
            if refusal != Refusal::Cancelled {
                pending.failures += 1;
            }
            if pending.failures >= MAX_CODE_FAILURES {
                tx.pending = None;
                if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                    return page_failure(lang, &e.into());
                }
                return see_other(&format!("/login?tx={}&notice=codes", tx.id));
            }
            tx.pending = Some(pending.clone());
            if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                return page_failure(lang, &e.into());
            }
            let err = FactorError::SecurityKey(problem(refusal));
            super::second_factor::render(&state, lang, &tx, &pending, Some(err)).await
        }
    }
}
