//! WebAuthn in a sign-in: a passkey as the first factor (conditional UI on the login page or
//! the "sign in with a passkey" button) and a security key as the second factor.
//!
//! `.../start` answers JSON options for `navigator.credentials.get` (static/webauthn.js) and
//! keeps the ceremony state server-side, bound to the login transaction; `.../finish` is a
//! form post that takes the state (single use) and continues like a password sign-in.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{FactorError, Lang, LoginError, WebauthnProblem};
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
use crate::store::{AuditStore, WebauthnStore};

/// What the owner is told when a key's signature counter went backwards.
pub(super) const CLONED: &str =
    "ключ отклонён при входе: его счётчик подписей уменьшился, ключ мог быть \
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

/// Keeps a new ceremony (single use, in the ephemeral store) and gives the browser its id
/// and the options: how every ceremony start ends.
pub(super) async fn save_ceremony(
    state: &AppState,
    ceremony: Ceremony,
    options: impl serde::Serialize,
) -> Result<serde_json::Value, OAuthError> {
    let id = new_ceremony_id()?;
    ceremony.save(state.eph.as_ref(), &id).await?;
    Ok(serde_json::json!({ "ceremony": id, "options": options }))
}

/// The answer of a ceremony start: the options (200); a refusal code (400) when there is
/// nothing to ask for (the person has no key of the kind); or `unavailable` (503), with
/// `failure` and the detail in the log.
pub(super) fn start_answer(
    outcome: Result<Result<serde_json::Value, &str>, OAuthError>,
    failure: &str,
) -> HttpResponse {
    match outcome {
        Ok(Ok(v)) => json(StatusCode::OK, v),
        Ok(Err(refusal)) => json_refusal(StatusCode::BAD_REQUEST, refusal),
        Err(e) => {
            tracing::error!(detail = e.detail.as_deref().unwrap_or(""), "{failure}");
            json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    }
}

/// Options for an assertion by one of `stored` of `kind` (a person known, not a discoverable
/// credential): a passkey confirms (`ConfirmPasskey`), a security key is a second factor
/// (`SecondFactor`). `None` when the person has no key of that kind.
pub(super) fn start_assertion(
    rp: &webauthn_rs::prelude::Webauthn,
    stored: &[WebauthnCredential],
    kind: WebauthnKind,
) -> Result<Option<(serde_json::Value, CeremonyState)>, OAuthError> {
    let failed = |e| OAuthError::server(format!("webauthn start: {e}"));
    let started = match kind {
        WebauthnKind::Passkey => {
            let keys: Vec<_> = wa::passkeys(stored).into_iter().map(|(_, k)| k).collect();
            if keys.is_empty() {
                return Ok(None);
            }
            let (o, st) = rp.start_passkey_authentication(&keys).map_err(failed)?;
            (serde_json::to_value(o), CeremonyState::ConfirmPasskey(st))
        }
        WebauthnKind::SecurityKey => {
            let keys: Vec<_> = wa::security_keys(stored)
                .into_iter()
                .map(|(_, k)| k)
                .collect();
            if keys.is_empty() {
                return Ok(None);
            }
            let (o, st) = rp.start_securitykey_authentication(&keys).map_err(failed)?;
            (serde_json::to_value(o), CeremonyState::SecondFactor(st))
        }
    };
    let (options, st) = started;
    Ok(Some((options.unwrap_or_default(), st)))
}

/// The opening of every check of a known person's ceremony answer: the ceremony was
/// started for `sub`, WebAuthn is on, and the browser's JSON parses as `T` (an assertion or
/// a registration).
pub(super) fn known_answer<T: serde::de::DeserializeOwned>(
    state: &AppState,
    c: &Ceremony,
    sub: &str,
    json: &str,
) -> Result<(webauthn_rs::prelude::Webauthn, T), Refusal> {
    if c.subject_id.as_deref() != Some(sub) {
        return Err(Refusal::OtherBrowser);
    }
    let Some(rp) = relying_party(state) else {
        return Err(Refusal::Invalid);
    };
    Ok((rp, wa::parse_response(json)?))
}

/// Counts a sign-in answer (a key, a code) against the address's attempt budget: `Err` with
/// the page to show when the budget is spent (the login page, locked) or cannot be kept.
pub(super) async fn count_attempt(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    lang: Lang,
) -> Result<(), HttpResponse> {
    let ip = ip_of(state, req).unwrap_or_default();
    match throttle(state).ip_attempt(&ip).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(render_login(state, req, tx, None, Some(LoginError::Locked)).await),
        Err(e) => Err(page_failure(lang, &e.into())),
    }
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

/// The form of a `start` call within a login transaction (JSON errors, not pages), under
/// the ceremony rate limits.
pub(super) async fn start_tx(
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
    let lang = super::login::tx_lang(req, &tx);
    let client = Some(tx.request.client_id.clone());
    start_allowed(state, req, lang, &format!("tx:{}", tx.id), client).await?;
    Ok(tx)
}

/// The rate limits of ceremony starts (each keeps a challenge in the ephemeral store):
/// per IP address and per login transaction or session (`binding`), counted in the
/// ephemeral store so they hold across nodes. A flood gets a 429 with a readable message
/// and `Retry-After`, and each limit's first refusal of a window an audit event
/// (`webauthn.throttled`).
pub(super) async fn start_allowed(
    state: &AppState,
    req: &HttpRequest,
    lang: consent_ui::Lang,
    binding: &str,
    client_id: Option<String>,
) -> Result<(), HttpResponse> {
    let ip = ip_of(state, req).unwrap_or_default();
    let hashed = keys::sha256_b64url(binding.as_bytes());
    let (limit, first) = match throttle(state).ceremony_start(&ip, &hashed).await {
        Ok(None) => return Ok(()),
        Ok(Some(l)) => l,
        Err(_) => return Err(json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")),
    };
    // The first refusal of a limit's window is audited; the rest of a flood writes nothing.
    if first {
        let event = crate::audit::AuditEvent {
            at: state.now(),
            kind: "webauthn.throttled".into(),
            subject_id: None,
            client_id,
            ip: ip_of(state, req),
            detail: serde_json::json!({ "limit": limit.as_str() }),
        };
        if let Err(e) = state.store.call(move |s| s.append_audit(&event)).await {
            tracing::error!(error = %e, "cannot write the audit event of a throttled ceremony");
        }
    }
    let window = state.cfg.lockout.ceremony_window_secs;
    let minutes = window.div_ceil(60).max(1);
    let message = match lang {
        consent_ui::Lang::Ru => {
            format!("Слишком много запросов ключа доступа. Попробуйте снова через {minutes} мин.")
        }
        consent_ui::Lang::En => {
            format!("Too many passkey requests. Please try again in {minutes} min.")
        }
    };
    Err(HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Retry-After", window.to_string()))
        .json(serde_json::json!({
            "error": "too_many_requests",
            "error_description": message,
        })))
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
        let ceremony = Ceremony {
            v: 1,
            binding: format!("tx:{}", tx.id),
            subject_id: None,
            name: None,
            state: CeremonyState::SignIn(st),
        };
        save_ceremony(&state, ceremony, options).await
    };
    start_answer(run.await.map(Ok), "passkey start failed")
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
    if let Err(r) = count_attempt(&state, &req, &tx, lang).await {
        return r;
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
            signed_in(
                &state,
                &req,
                lang,
                tx,
                &ok.subject_id,
                acr,
                amr,
                remember,
                None,
            )
            .await
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

/// The subject's WebAuthn credentials of one kind.
async fn keys_of(
    state: &AppState,
    subject_id: &str,
    kind: WebauthnKind,
) -> Result<Vec<WebauthnCredential>, OAuthError> {
    let sub = subject_id.to_string();
    let all = state.store.call(move |s| s.list_webauthn(&sub)).await?;
    Ok(all.into_iter().filter(|c| c.kind == kind).collect())
}

/// The subject's security keys.
pub(super) async fn security_keys_of(
    state: &AppState,
    subject_id: &str,
) -> Result<Vec<WebauthnCredential>, OAuthError> {
    keys_of(state, subject_id, WebauthnKind::SecurityKey).await
}

/// The subject's passkeys.
pub(super) async fn passkeys_of(
    state: &AppState,
    subject_id: &str,
) -> Result<Vec<WebauthnCredential>, OAuthError> {
    keys_of(state, subject_id, WebauthnKind::Passkey).await
}

/// Whether the subject has a passkey (what a portal that needs acr 3 asks for).
pub async fn has_passkey(state: &AppState, subject_id: &str) -> Result<bool, OAuthError> {
    Ok(!passkeys_of(state, subject_id).await?.is_empty())
}

/// A passkey of a known person that verified (a step-up): how it was held, and its label.
pub(super) struct OwnPasskey {
    pub backup_eligible: bool,
    pub name: String,
}

/// Whether a stored passkey may be synced between devices (its backup-eligible flag, set at
/// registration and fixed for its life: WebAuthn §6.1.3).
fn backup_eligible(stored: &WebauthnCredential) -> bool {
    match wa::StoredKey::parse(&stored.data) {
        Some(wa::StoredKey::PasskeyV1 { key }) => serde_json::to_value(&key)
            .ok()
            .and_then(|v| v["cred"]["backup_eligible"].as_bool())
            .unwrap_or(false),
        _ => false,
    }
}

/// Verifies an assertion of one of `subject_id`'s passkeys against a ceremony started for
/// them (`start_passkey_authentication` with their credentials only): the shared check of
/// a known key (`account::verify_key_assertion`, which also records the counter), limited
/// to passkey ceremonies.
pub(super) async fn verify_own_passkey(
    state: &AppState,
    ceremony: Ceremony,
    subject_id: &str,
    json: &str,
) -> Result<Result<OwnPasskey, Refusal>, OAuthError> {
    if !matches!(ceremony.state, CeremonyState::ConfirmPasskey(_)) {
        return Ok(Err(Refusal::OtherBrowser));
    }
    Ok(
        super::account::verify_key_assertion(state, ceremony, subject_id, json)
            .await?
            .map(|key| OwnPasskey {
                backup_eligible: backup_eligible(&key),
                name: key.name,
            }),
    )
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
    // A sign-in that needs a passkey cannot be finished by a security key.
    let Some(pending) = tx.pending.clone().filter(|p| !p.needs_passkey()) else {
        return json_refusal(StatusCode::BAD_REQUEST, "expired");
    };
    start_for_pending(
        &state,
        &tx,
        &pending.subject_id,
        WebauthnKind::SecurityKey,
        "no_security_key",
    )
    .await
}

/// Starts a key check for the pending sign-in of `tx`: an assertion over the person's keys of
/// `kind` (`none` when they have none), its ceremony bound to the transaction. The security
/// key as a second factor and the passkey step-up (acr 3) both start here.
pub(super) async fn start_for_pending(
    state: &AppState,
    tx: &LoginTx,
    subject_id: &str,
    kind: WebauthnKind,
    none: &'static str,
) -> HttpResponse {
    let Some(rp) = relying_party(state) else {
        return json_refusal(StatusCode::NOT_FOUND, "unavailable");
    };
    let run = async {
        let stored = keys_of(state, subject_id, kind).await?;
        let Some((options, st)) = start_assertion(&rp, &stored, kind)? else {
            return Ok(Err(none));
        };
        let ceremony = Ceremony {
            v: 1,
            binding: format!("tx:{}", tx.id),
            subject_id: Some(subject_id.to_string()),
            name: None,
            state: st,
        };
        save_ceremony(state, ceremony, options).await.map(Ok)
    };
    start_answer(run.await, "key check start failed")
}

/// Verifies a security-key assertion of `subject_id` against a second-factor ceremony (the
/// check itself is shared with the security page's confirmation).
async fn verify_second(
    state: &AppState,
    ceremony: Ceremony,
    subject_id: &str,
    json: &str,
) -> Result<Result<String, Refusal>, OAuthError> {
    if !matches!(ceremony.state, CeremonyState::SecondFactor(_)) {
        return Ok(Err(Refusal::OtherBrowser));
    }
    Ok(
        super::account::verify_key_assertion(state, ceremony, subject_id, json)
            .await?
            .map(|key| key.name),
    )
}

/// A refused key in a pending sign-in (a security key as the second factor, or a passkey
/// step-up).
pub(super) struct KeyFailure {
    /// The audit event.
    pub kind: &'static str,
    /// The audit detail's `method`.
    pub method: &'static str,
    pub refusal: Refusal,
}

impl KeyFailure {
    /// Tells the owner of a possibly cloned key, writes the audit event and counts the
    /// failure (a cancelled request is not a wrong answer). The third sends the person back
    /// to the password (`Err` with that redirect); otherwise the transaction keeps the count
    /// and the caller shows its page again.
    pub(super) async fn record(
        &self,
        state: &AppState,
        req: &HttpRequest,
        lang: consent_ui::Lang,
        tx: &mut LoginTx,
        mut pending: login::Pending,
    ) -> Result<(), HttpResponse> {
        let sub = pending.subject_id.clone();
        if self.refusal == Refusal::CounterRegression {
            super::account::notify_owner(state, &sub, CLONED)
                .await
                .map_err(|e| page_failure(lang, &e))?;
        }
        let detail = serde_json::json!({ "method": self.method, "reason": self.refusal.as_str() });
        audit(state, req, tx, self.kind, Some(sub), detail)
            .await
            .map_err(|e| page_failure(lang, &e))?;
        if self.refusal != Refusal::Cancelled {
            pending.failures += 1;
        }
        let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
        let over = pending.failures >= MAX_CODE_FAILURES;
        tx.pending = (!over).then_some(pending);
        tx.save(state.eph.as_ref(), ttl)
            .await
            .map_err(|e| page_failure(lang, &e.into()))?;
        match over {
            true => Err(see_other(&format!("/login?tx={}&notice=codes", tx.id))),
            false => Ok(()),
        }
    }
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
    let Some(pending) = tx.pending.clone().filter(|p| !p.needs_passkey()) else {
        return expired(lang);
    };
    if let Err(r) = count_attempt(&state, &req, &tx, lang).await {
        return r;
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
            signed_in(&state, &req, lang, tx, &sub, acr, amr, remember, None).await
        }
        Err(refusal) => {
            let failure = KeyFailure {
                kind: "login.second_factor_failure",
                method: "security_key",
                refusal,
            };
            if let Err(r) = failure
                .record(&state, &req, lang, &mut tx, pending.clone())
                .await
            {
                return r;
            }
            let err = FactorError::SecurityKey(problem(refusal));
            super::second_factor::render(&state, lang, &tx, &pending, Some(err)).await
        }
    }
}
