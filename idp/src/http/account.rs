//! The citizen's security page, `/account/security`: factors with their last use, TOTP
//! enrolment (QR code drawn here as SVG), recovery codes (shown once), passkeys and security
//! keys (WebAuthn), removal of a factor.
//!
//! It needs a live SSO session; without one the browser goes through sign-in (a login
//! transaction of the built-in `propusk.account` client, which never gets a code) and comes
//! back. A change needs a recent confirmation: a sign-in within the last
//! [`ELEVATION_SECS`], or a confirmation with an existing factor (an app or recovery code, a
//! passkey or security key; the password only for a person without any factor), kept in the
//! ephemeral store under `elev:<hash of sid>`. Every change writes its audit event in the
//! same transaction and notifies the owner through the outbox.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ui::{
    Confirm, ErrorKind, FactorKind, FactorRow, Lang, RecoveryCodesPage, SecurityNotice,
    SecurityPage, TotpEnrolPage,
};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Uuid};

use super::cookies;
use super::error::{html, lang_of, page, page_failure};
use super::login::see_other;
use super::passkey::{
    credential_field, json, json_refusal, new_ceremony_id, problem, record_use, relying_party,
    take_ceremony,
};
use crate::audit::AuditEvent;
use crate::authn::transaction::LoginTx;
use crate::authn::webauthn::{self as wa, Ceremony, CeremonyState, Refusal, StoredKey};
use crate::authn::{recovery, totp};
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::domain::{Credential, CredentialKind, SsoSession};
use crate::notify::{Channel, NewMessage, OutboxStore};
use crate::protocol::authorize::{AuthRequest, ResponseMode, ResponseTarget};
use crate::protocol::params::Params;
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;
use crate::store::{
    AuditStore, CredentialStore, FactorRef, StoreError, SubjectStore, WebauthnStore,
};

/// The client id of sign-ins started by the account pages (no code is ever issued to it).
pub const ACCOUNT_CLIENT: &str = "propusk.account";
/// How long a sign-in or a confirmation allows changes of factors.
pub const ELEVATION_SECS: i64 = 300;
const PAGE: &str = "/account/security";

/// The browser's live SSO session, if any.
pub async fn current_session(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<SsoSession>, OAuthError> {
    super::authorize::current_session(state, req).await
}

/// The CSRF token of the account forms: a keyed hash of the session cookie (stateless; a
/// page of another site cannot know it).
fn csrf_token(state: &AppState, req: &HttpRequest) -> Option<String> {
    let value = cookies::read(req, &cookies::session_name(state))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, state.csrf_secret.as_ref());
    let tag = ring::hmac::sign(&key, format!("account:{value}").as_bytes());
    Some(keys::sha256_b64url(tag.as_ref()))
}

fn elevation_key(sid: &str) -> String {
    format!("elev:{}", keys::sha256_b64url(sid.as_bytes()))
}

/// Whether the session may change factors now.
async fn elevated(state: &AppState, s: &SsoSession) -> Result<bool, OAuthError> {
    if (state.now() - s.auth_time).num_seconds() <= ELEVATION_SECS {
        return Ok(true);
    }
    Ok(state.eph.get(&elevation_key(&s.sid)).await?.is_some())
}

async fn elevate(state: &AppState, s: &SsoSession) -> Result<(), OAuthError> {
    let ttl = std::time::Duration::from_secs(ELEVATION_SECS as u64);
    state.eph.put(&elevation_key(&s.sid), b"1", ttl).await?;
    Ok(())
}

fn event(
    state: &AppState,
    req: &HttpRequest,
    kind: &str,
    sub: &str,
    d: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        at: state.now(),
        kind: kind.into(),
        subject_id: Some(sub.to_string()),
        client_id: None,
        ip: super::client_ip(state, req),
        detail: d,
    }
}

async fn audit(state: &AppState, e: AuditEvent) -> Result<(), OAuthError> {
    state.store.call(move |s| s.append_audit(&e)).await?;
    Ok(())
}

/// "Your sign-in methods changed", to the confirmed e-mail, else by SMS.
pub(super) async fn notify_owner(
    state: &AppState,
    subject_id: &str,
    what: &str,
) -> Result<(), OAuthError> {
    let sub = subject_id.to_string();
    let now = state.now();
    let text = format!(
        "В вашей учётной записи изменены способы входа: {what}. Если это были не вы, \
         смените пароль и проверьте страницу «Безопасность»."
    );
    state
        .store
        .call(move |s| {
            let Some(subject) = s.find_subject(&sub)? else {
                return Ok(());
            };
            let p = &subject.profile;
            let message = match (&p.email, &p.phone_number) {
                (Some(e), _) if p.email_verified => {
                    NewMessage::new(Channel::Email, e.clone(), "alert.factors_changed", text)
                        .with_subject("Изменены способы входа")
                }
                (_, Some(ph)) if p.phone_number_verified => {
                    NewMessage::new(Channel::Sms, ph.clone(), "alert.factors_changed", text)
                }
                _ => return Ok(()),
            };
            s.enqueue(&message.with_locale("ru"), now).map(|_| ())
        })
        .await?;
    Ok(())
}

// ------------------------------------------------------------------ signing in for the page

/// Starts a sign-in whose end comes back to the security page (`force`: even with a live
/// session, to confirm by signing in again).
async fn start_sign_in(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    force: bool,
) -> HttpResponse {
    let run = async {
        let (bid, new_bid) = match cookies::read(req, &cookies::bid_name(state)) {
            Some(b) => (b, false),
            None => (keys::random_token(32).map_err(OAuthError::server)?, true),
        };
        let request = AuthRequest {
            client_id: ACCOUNT_CLIENT.into(),
            target: ResponseTarget {
                redirect_uri: state.endpoint(PAGE),
                state: None,
                mode: ResponseMode::Query,
            },
            scopes: vec!["openid".into()],
            nonce: None,
            code_challenge: keys::random_token(32).map_err(OAuthError::server)?,
            prompt: if force { vec!["login".into()] } else { vec![] },
            max_age: None,
            login_hint: None,
            hint_sub: None,
            acr_values: vec![],
            ui_locales: Some(lang.code().into()),
            claims: None,
        };
        let tx = LoginTx {
            v: 1,
            id: tokens::new_id()?,
            bid_hash: keys::sha256_b64url(bid.as_bytes()),
            csrf: keys::random_token(24).map_err(OAuthError::server)?,
            request,
            auth: None,
            pending: None,
            password_due: None,
            created_at: state.now(),
        };
        let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
        tx.save(state.eph.as_ref(), ttl).await?;
        Ok::<_, OAuthError>((tx.id, new_bid.then_some(bid)))
    };
    match run.await {
        Ok((id, new_bid)) => {
            let mut r = HttpResponse::SeeOther();
            r.insert_header((header::LOCATION, format!("/login?tx={id}")));
            r.insert_header((header::CACHE_CONTROL, "no-store"));
            if let Some(b) = new_bid {
                r.cookie(cookies::build(state, cookies::bid_name(state), b, None));
            }
            r.finish()
        }
        Err(e) => page_failure(lang, &e),
    }
}

/// Whether a login transaction is one of the account pages (it ends here, not with a code).
pub fn is_account_tx(tx: &LoginTx) -> bool {
    tx.request.client_id == ACCOUNT_CLIENT
}

/// The end of an account sign-in: the transaction is spent and the browser, now with its
/// session cookie, goes back to the page.
pub async fn after_sign_in(state: &AppState, lang: Lang, tx: &LoginTx) -> HttpResponse {
    match LoginTx::take(state.eph.as_ref(), &tx.id).await {
        // The profile page (issue 5) signs in through this client too.
        Ok(_) if tx.request.target.redirect_uri.ends_with("/account/profile") => {
            see_other("/account/profile")
        }
        Ok(_) => see_other(PAGE),
        Err(e) => page_failure(lang, &e.into()),
    }
}

/// `GET /account/security/signin`: confirm by signing in again.
pub async fn sign_in_again(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    start_sign_in(&state, &req, lang, true).await
}

// ------------------------------------------------------------------ the page

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%d.%m.%Y %H:%M").to_string()
}

struct Factors {
    creds: Vec<Credential>,
    keys: Vec<WebauthnCredential>,
}

async fn factors_of(state: &AppState, sub: &str) -> Result<Factors, OAuthError> {
    let sub = sub.to_string();
    let (creds, keys) = state
        .store
        .call(move |s| Ok((s.list_credentials(&sub)?, s.list_webauthn(&sub)?)))
        .await?;
    Ok(Factors { creds, keys })
}

impl Factors {
    fn app(&self) -> Option<&Credential> {
        self.creds
            .iter()
            .find(|c| c.kind == CredentialKind::Totp && c.usable())
    }
    fn codes_left(&self) -> usize {
        self.creds
            .iter()
            .filter(|c| c.kind == CredentialKind::Recovery && c.usable())
            .count()
    }
    fn confirm(&self) -> Confirm {
        if self.app().is_some() || self.codes_left() > 0 {
            Confirm::Code
        } else if !self.keys.is_empty() {
            Confirm::Key
        } else {
            Confirm::Password
        }
    }
}

/// Owned strings of the rows (the page borrows them).
struct RowData {
    kind: FactorKind,
    name: String,
    added: String,
    last_used: Option<String>,
    remove: String,
}

fn rows(f: &Factors, lang: Lang) -> Vec<RowData> {
    let mut out = Vec::new();
    if let Some(app) = f.app() {
        let last = app
            .last_used_step
            .and_then(|s| DateTime::from_timestamp(s * totp::STEP_SECS as i64, 0));
        out.push(RowData {
            kind: FactorKind::App,
            name: "TOTP".into(),
            added: fmt_time(app.confirmed_at.unwrap_or(app.created_at)),
            last_used: last.map(fmt_time),
            remove: format!("totp:{}", app.id),
        });
    }
    let codes: Vec<&Credential> = f
        .creds
        .iter()
        .filter(|c| c.kind == CredentialKind::Recovery)
        .collect();
    if let Some(first) = codes.first() {
        let left = codes.iter().filter(|c| c.usable()).count();
        let name = match lang {
            Lang::Ru => format!("осталось {left} из {}", codes.len()),
            Lang::En => format!("{left} of {} left", codes.len()),
        };
        out.push(RowData {
            kind: FactorKind::RecoveryCodes,
            name,
            added: fmt_time(first.created_at),
            last_used: codes.iter().filter_map(|c| c.used_at).max().map(fmt_time),
            remove: "recovery".into(),
        });
    }
    for k in &f.keys {
        out.push(RowData {
            kind: match k.kind {
                WebauthnKind::Passkey => FactorKind::Passkey,
                WebauthnKind::SecurityKey => FactorKind::SecurityKey,
            },
            name: k.name.clone(),
            added: fmt_time(k.created_at),
            last_used: k.last_used_at.map(fmt_time),
            remove: format!("wa:{}", k.id),
        });
    }
    out
}

/// The signed-in person of this request, with the page's CSRF token; or the answer to give.
struct Ctx {
    session: SsoSession,
    csrf: String,
    lang: Lang,
}

async fn context(state: &AppState, req: &HttpRequest) -> Result<Ctx, HttpResponse> {
    let lang = lang_of(req, None);
    let session = match current_session(state, req).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(start_sign_in(state, req, lang, false).await),
        Err(e) => return Err(page_failure(lang, &e)),
    };
    let Some(csrf) = csrf_token(state, req) else {
        return Err(start_sign_in(state, req, lang, false).await);
    };
    Ok(Ctx {
        session,
        csrf,
        lang,
    })
}

/// The context of a form post: the session, and the form with its CSRF token checked.
async fn form_context(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(Ctx, Params), HttpResponse> {
    let lang = lang_of(req, None);
    let Ok(form) = super::token::form_body(req, body) else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            lang,
            ErrorKind::BadRequest,
            None,
        ));
    };
    let ctx = context(state, req).await?;
    let sent = form.get("csrf").ok().flatten().unwrap_or("");
    if !keys::constant_time_eq(sent.as_bytes(), ctx.csrf.as_bytes()) {
        return Err(page(
            StatusCode::FORBIDDEN,
            lang,
            ErrorKind::BadRequest,
            None,
        ));
    }
    Ok((ctx, form))
}

async fn render(state: &AppState, ctx: &Ctx, notice: Option<SecurityNotice>) -> HttpResponse {
    let run = async {
        let sub = ctx.session.subject_id.clone();
        let user = state
            .store
            .call(move |s| s.find_subject(&sub))
            .await?
            .map(|s| s.login)
            .unwrap_or_default();
        let f = factors_of(state, &ctx.session.subject_id).await?;
        let up = elevated(state, &ctx.session).await?;
        Ok::<_, OAuthError>((user, f, up))
    };
    let (user, f, up) = match run.await {
        Ok(v) => v,
        Err(e) => return page_failure(ctx.lang, &e),
    };
    let data = rows(&f, ctx.lang);
    let rows: Vec<FactorRow<'_>> = data
        .iter()
        .map(|r| FactorRow {
            kind: r.kind,
            name: &r.name,
            added: &r.added,
            last_used: r.last_used.as_deref(),
            remove: &r.remove,
        })
        .collect();
    let body = SecurityPage {
        lang: ctx.lang,
        csrf: &ctx.csrf,
        user: &user,
        factors: &rows,
        elevated: up,
        confirm: f.confirm(),
        notice,
    }
    .render();
    let status = match notice {
        Some(
            SecurityNotice::WrongCode
            | SecurityNotice::WrongPassword
            | SecurityNotice::Problem(_)
            | SecurityNotice::ConfirmFirst
            | SecurityNotice::Nothing,
        ) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    html(status, body)
}

/// `GET /account/security`.
pub async fn security_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let ctx = match context(&state, &req).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let notice = match Params::parse(req.query_string().as_bytes())
        .get("done")
        .ok()
        .flatten()
    {
        Some("confirmed") => Some(SecurityNotice::Confirmed),
        Some("enrolled") => Some(SecurityNotice::Enrolled),
        Some("removed") => Some(SecurityNotice::Removed),
        _ => None,
    };
    render(&state, &ctx, notice).await
}

// ------------------------------------------------------------------ confirming it is you

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
    let ip = super::client_ip(&state, &req).unwrap_or_default();
    match super::login::throttle(&state).ip_attempt(&ip).await {
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
async fn check_code(
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
        super::alerts::alert_owner(state, sub, super::alerts::Alert::RecoveryCodeUsed).await?;
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
    let Some(rp) = relying_party(&state) else {
        return json_refusal(StatusCode::NOT_FOUND, "unavailable");
    };
    let run = async {
        let f = factors_of(&state, &ctx.session.subject_id).await?;
        let passkeys: Vec<_> = wa::passkeys(&f.keys).into_iter().map(|(_, k)| k).collect();
        let st = if !passkeys.is_empty() {
            let (o, st) = rp
                .start_passkey_authentication(&passkeys)
                .map_err(|e| OAuthError::server(format!("webauthn start: {e}")))?;
            (
                serde_json::to_value(o).unwrap_or_default(),
                CeremonyState::ConfirmPasskey(st),
            )
        } else {
            let sks: Vec<_> = wa::security_keys(&f.keys)
                .into_iter()
                .map(|(_, k)| k)
                .collect();
            if sks.is_empty() {
                return Ok(None);
            }
            let (o, st) = rp
                .start_securitykey_authentication(&sks)
                .map_err(|e| OAuthError::server(format!("webauthn start: {e}")))?;
            (
                serde_json::to_value(o).unwrap_or_default(),
                CeremonyState::SecondFactor(st),
            )
        };
        let id = new_ceremony_id()?;
        Ceremony {
            v: 1,
            binding: format!("sid:{}", ctx.session.sid),
            subject_id: Some(ctx.session.subject_id.clone()),
            name: None,
            state: st.1,
        }
        .save(state.eph.as_ref(), &id)
        .await?;
        Ok::<_, OAuthError>(Some(serde_json::json!({ "ceremony": id, "options": st.0 })))
    };
    match run.await {
        Ok(Some(v)) => json(StatusCode::OK, v),
        Ok(None) => json_refusal(StatusCode::BAD_REQUEST, "no_key"),
        Err(e) => {
            tracing::error!(
                detail = e.detail.as_deref().unwrap_or(""),
                "confirm start failed"
            );
            json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    }
}

/// Verifies an assertion of one of `sub`'s keys against a confirmation ceremony.
async fn verify_confirm(
    state: &AppState,
    c: Ceremony,
    sub: &str,
    json: &str,
) -> Result<Result<(), Refusal>, OAuthError> {
    if c.subject_id.as_deref() != Some(sub) {
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
        _ => return Ok(Err(Refusal::UnknownCredential)),
    };
    record_use(state, &stored, result.counter(), data).await
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
                Ok(c) => verify_confirm(&state, c, &sub, credential_field(&form)).await?,
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
async fn change_context(
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

/// The QR code of `uri` as SVG markup (drawn here: the page asks the browser for nothing).
fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

async fn totp_page(
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
fn clone_meta(c: &Credential) -> Credential {
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

/// `POST /account/security/remove`: removes a factor (`totp:<id>`, `recovery`, `wa:<id>`).
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

/// A JSON endpoint's context: the session and the CSRF token, with JSON errors.
async fn json_context(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(Ctx, Params), HttpResponse> {
    let lang = lang_of(req, None);
    let Ok(form) = super::token::form_body(req, body) else {
        return Err(json_refusal(StatusCode::BAD_REQUEST, "bad_request"));
    };
    let session = match current_session(state, req).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(json_refusal(StatusCode::UNAUTHORIZED, "signed_out")),
        Err(_) => return Err(json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")),
    };
    let csrf = csrf_token(state, req).unwrap_or_default();
    let sent = form.get("csrf").ok().flatten().unwrap_or("");
    if csrf.is_empty() || !keys::constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
        return Err(json_refusal(StatusCode::FORBIDDEN, "csrf"));
    }
    Ok((
        Ctx {
            session,
            csrf,
            lang,
        },
        form,
    ))
}

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
        let id = new_ceremony_id()?;
        Ceremony {
            v: 1,
            binding: format!("sid:{}", ctx.session.sid),
            subject_id: Some(ctx.session.subject_id.clone()),
            name: Some(name),
            state: st,
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
                "webauthn enrolment start failed"
            );
            json_refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    }
}

/// Verifies a registration and builds the credential to store.
async fn verify_registration(
    state: &AppState,
    c: Ceremony,
    sub: &str,
    json: &str,
) -> Result<Result<WebauthnCredential, Refusal>, OAuthError> {
    if c.subject_id.as_deref() != Some(sub) {
        return Ok(Err(Refusal::OtherBrowser));
    }
    let Some(rp) = relying_party(state) else {
        return Ok(Err(Refusal::Invalid));
    };
    let reg: RegisterPublicKeyCredential = match wa::parse_response(json) {
        Ok(r) => r,
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
