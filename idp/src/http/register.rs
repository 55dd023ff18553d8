//! `/register`: a simplified account (issue 5). Name + a mobile phone or e-mail -> a one-time
//! code through the notification outbox (6 digits, hashed, 5 minutes, 3 attempts: the
//! sign-in code service of `authn/otp.rs` under the scope `register:<id>`) -> a password
//! (the policy of `authn/password_policy.rs`) -> the account exists and the browser is
//! signed in. The registration in progress is kept in the ephemeral store, bound to the
//! browser cookie; nothing durable is written before the password step.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ui::{Lang, RegisterPage, RegisterStep};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cookies;
use super::error::{html, lang_of, page_failure};
use super::login::see_other;
use crate::audit::AuditEvent;
use crate::authn::otp::{CodeChannel, Verdict};
use crate::domain::identifier::Identifier;
use crate::domain::{Profile, SsoSession, Subject};
use crate::notify::{NewMessage, OutboxStore};
use crate::protocol::params::Params;
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, SessionStore, SigninStore, StoreError, SubjectStore};

/// A registration in progress (ephemeral, `reg:<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Registration {
    v: u8,
    id: String,
    bid_hash: String,
    csrf: String,
    family_name: String,
    given_name: String,
    middle_name: Option<String>,
    /// Normalised phone (`+7...`) or e-mail.
    contact: String,
    email: bool,
    /// The code was entered right.
    confirmed: bool,
    /// The contact already belongs to an account: its owner was sent a notice instead of a
    /// code, and no code is ever accepted (the page looks the same as for a free contact).
    #[serde(default)]
    taken: bool,
    created_at: DateTime<Utc>,
}

/// How long a self-service step (registration, activation) stays live.
pub(super) const TTL_SECS: u64 = 15 * 60;
const FLOW: &str = "register";

fn key(id: &str) -> String {
    format!("reg:{id}")
}

async fn save(state: &AppState, r: &Registration) -> Result<(), OAuthError> {
    keep(state, &key(&r.id), r).await
}

/// Keeps a step of a self-service flow (registration, activation) in the ephemeral store for
/// [`TTL_SECS`].
pub(super) async fn keep<T: Serialize>(
    state: &AppState,
    key: &str,
    value: &T,
) -> Result<(), OAuthError> {
    let bytes = serde_json::to_vec(value).map_err(OAuthError::server)?;
    state
        .eph
        .put(key, &bytes, std::time::Duration::from_secs(TTL_SECS))
        .await?;
    Ok(())
}

/// The step kept under `key(id)`, if `id` is plausible and it is still live.
pub(super) async fn kept<T: DeserializeOwned>(
    state: &AppState,
    key: fn(&str) -> String,
    id: &str,
) -> Result<Option<T>, OAuthError> {
    if id.is_empty() || id.len() > 100 {
        return Ok(None);
    }
    let Some(bytes) = state.eph.get(&key(id)).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<T>(&bytes).ok())
}

/// Whether this request comes from the browser whose cookie hashes to `bid_hash`.
pub(super) fn same_browser(state: &AppState, req: &HttpRequest, bid_hash: &str) -> bool {
    let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
    keys::constant_time_eq(
        keys::sha256_b64url(bid.as_bytes()).as_bytes(),
        bid_hash.as_bytes(),
    )
}

/// The registration of this browser, if it is still live.
async fn load(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<Option<Registration>, OAuthError> {
    let r = kept::<Registration>(state, key, id).await?;
    Ok(r.filter(|r| same_browser(state, req, &r.bid_hash)))
}

/// CSRF token of the first form of a self-service `flow` (`register`, `activate`): a keyed
/// hash of the browser cookie.
pub(super) fn start_csrf(state: &AppState, flow: &str, bid: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, state.csrf_secret.as_ref());
    let tag = ring::hmac::sign(&key, format!("{flow}:{bid}").as_bytes());
    keys::sha256_b64url(tag.as_ref())
}

/// The first form's CSRF token of this browser (empty cookie: a token no form carries).
pub(super) fn browser_csrf(state: &AppState, req: &HttpRequest, flow: &str) -> (String, String) {
    let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
    let csrf = start_csrf(state, flow, &bid);
    (bid, csrf)
}

/// The first page of a self-service `flow`, drawn by `render` with its CSRF token; a browser
/// without a cookie gets one.
pub(super) fn first_page(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    flow: &str,
    render: impl FnOnce(&str) -> HttpResponse,
) -> HttpResponse {
    let (bid, new_bid) = match cookies::read(req, &cookies::bid_name(state)) {
        Some(b) => (b, false),
        None => match keys::random_token(32) {
            Ok(b) => (b, true),
            Err(e) => return page_failure(lang, &OAuthError::server(e)),
        },
    };
    let mut resp = render(&start_csrf(state, flow, &bid));
    if new_bid {
        let _ = resp.add_cookie(&cookies::build(state, cookies::bid_name(state), bid, None));
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn render(
    lang: Lang,
    status: StatusCode,
    step: RegisterStep,
    csrf: &str,
    reg: Option<&str>,
    values: &[(&str, &str)],
    sent_to: Option<&str>,
    error: Option<&str>,
    error_text: Option<String>,
) -> HttpResponse {
    html(
        status,
        RegisterPage {
            lang,
            step,
            csrf,
            reg,
            values,
            sent_to,
            error,
            error_text,
        }
        .render(),
    )
}

/// `GET /register`.
pub async fn page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    first_page(&state, &req, lang, FLOW, |csrf| {
        render(
            lang,
            StatusCode::OK,
            RegisterStep::Start,
            csrf,
            None,
            &[],
            None,
            None,
            None,
        )
    })
}

/// `POST /register` (`step` = start | code | password).
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let lang = lang_of(&req, None);
    let Ok(form) = super::token::form_body(&req, &body) else {
        return super::error::page(
            StatusCode::BAD_REQUEST,
            lang,
            consent_ui::ErrorKind::BadRequest,
            None,
        );
    };
    let res = match form.get("step").ok().flatten() {
        Some("start") => start(&state, &req, lang, &form).await,
        Some("code") => code(&state, &req, lang, &form).await,
        Some("password") => password(&state, &req, lang, &form).await,
        _ => Ok(super::error::page(
            StatusCode::BAD_REQUEST,
            lang,
            consent_ui::ErrorKind::BadRequest,
            None,
        )),
    };
    res.unwrap_or_else(|e| page_failure(lang, &e))
}

/// A form field, trimmed ("" when absent).
pub(super) fn field<'a>(form: &'a Params, k: &str) -> &'a str {
    form.get(k).ok().flatten().unwrap_or("").trim()
}

fn forbidden(lang: Lang) -> HttpResponse {
    super::error::page(
        StatusCode::FORBIDDEN,
        lang,
        consent_ui::ErrorKind::BadRequest,
        None,
    )
}

/// An audit event of a self-service flow (`sub`: the account, once there is one).
pub(super) async fn audit(
    state: &AppState,
    req: &HttpRequest,
    kind: &str,
    sub: Option<String>,
    d: serde_json::Value,
) -> Result<(), OAuthError> {
    let e = AuditEvent {
        at: state.now(),
        kind: kind.into(),
        subject_id: sub,
        client_id: None,
        ip: super::client_ip(state, req),
        detail: d,
    };
    state.store.call(move |s| s.append_audit(&e)).await?;
    Ok(())
}

async fn start(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let (bid, csrf) = browser_csrf(state, req, FLOW);
    if bid.is_empty() || !keys::constant_time_eq(field(form, "csrf").as_bytes(), csrf.as_bytes()) {
        return Ok(forbidden(lang));
    }
    let (family, given, middle, contact) = (
        field(form, "family_name"),
        field(form, "given_name"),
        field(form, "middle_name"),
        field(form, "contact"),
    );
    let values = [
        ("family_name", family),
        ("given_name", given),
        ("middle_name", middle),
        ("contact", contact),
    ];
    let again = |code: &str| {
        render(
            lang,
            StatusCode::BAD_REQUEST,
            RegisterStep::Start,
            &csrf,
            None,
            &values,
            None,
            Some(code),
            None,
        )
    };
    let bad_name = |n: &str| n.chars().count() > 100 || n.chars().any(char::is_control);
    if family.is_empty()
        || given.is_empty()
        || bad_name(family)
        || bad_name(given)
        || bad_name(middle)
    {
        return Ok(again("missing_name"));
    }
    let (channel, normal) = match Identifier::parse(contact) {
        Ok(Identifier::Email(e)) => (CodeChannel::Email, e.as_str().to_string()),
        Ok(Identifier::Phone(p)) => (CodeChannel::Sms, p.as_str().to_string()),
        _ => return Ok(again("bad_contact")),
    };
    // Whether an account uses the contact (as its login or a confirmed contact) is not
    // told here: the owner gets a notice instead of a code, and the page is the same.
    let started = std::time::Instant::now();
    let n2 = normal.clone();
    let taken = !state
        .store
        .call(move |s| s.find_subjects_by_contact(&n2))
        .await?
        .is_empty();
    let r = Registration {
        v: 1,
        id: tokens::new_id()?,
        bid_hash: keys::sha256_b64url(bid.as_bytes()),
        csrf: keys::random_token(24).map_err(OAuthError::server)?,
        family_name: family.to_string(),
        given_name: given.to_string(),
        middle_name: (!middle.is_empty()).then(|| middle.to_string()),
        contact: normal.clone(),
        email: channel == CodeChannel::Email,
        confirmed: false,
        taken,
        created_at: state.now(),
    };
    let who = state
        .store
        .vault()?
        .blind_index(&format!("register:{normal}"));
    let code = match super::otp::codes(state)?
        .issue(
            &format!("register:{}", r.id),
            &who,
            channel,
            &normal,
            state.now(),
        )
        .await?
    {
        Ok(c) => c,
        Err(_) => return Ok(again("throttled")),
    };
    let message = if taken {
        audit(
            state,
            req,
            "register.refused",
            None,
            serde_json::json!({"reason": "taken", "notified": true}),
        )
        .await?;
        taken_notice(state, channel, &normal, lang)
    } else {
        code_message(state, channel, &normal, lang, &code)
    };
    let now = state.now();
    state.store.call(move |s| s.enqueue(&message, now)).await?;
    save(state, &r).await?;
    let masked = crate::authn::otp::mask(channel, &normal);
    pad(state, started).await;
    Ok(render(
        lang,
        StatusCode::OK,
        RegisterStep::Code,
        &r.csrf,
        Some(&r.id),
        &[],
        Some(&masked),
        None,
        None,
    ))
}

/// Answers no earlier than `otp.recovery_min_response_ms` after `started`, so a taken and a
/// free contact are answered after the same time.
pub(super) async fn pad(state: &AppState, started: std::time::Instant) {
    let min = std::time::Duration::from_millis(state.cfg.otp.recovery_min_response_ms);
    if let Some(rest) = min.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

/// To the owner of a contact someone tried to register with: no code, how to sign in.
fn taken_notice(state: &AppState, channel: CodeChannel, to: &str, lang: Lang) -> NewMessage {
    let (login, activate) = (state.endpoint("/login"), state.endpoint("/activate"));
    let (subject, text) = match lang {
        Lang::Ru => (
            "Попытка регистрации",
            format!("Кто-то пытался зарегистрироваться в Пропуске с этим контактом, но у вас уже есть учётная запись. Войдите как обычно: {login}. Если вы забыли пароль, нажмите «Забыли пароль?» на странице входа; если учётную запись создали для вас в центре обслуживания, активируйте её: {activate}. Если это были не вы, ничего не делайте."),
        ),
        Lang::En => (
            "Registration attempt",
            format!("Someone tried to register with Propusk using this contact, but you already have an account. Sign in as usual: {login}. If you forgot the password, use \"Forgot password?\" on the sign-in page; if the account was created for you at a service centre, activate it: {activate}. If it was not you, ignore this message."),
        ),
    };
    NewMessage::new(channel.notify(), to.to_string(), "register_taken", text)
        .with_subject(subject)
        .with_locale(lang.code())
}

fn code_message(
    state: &AppState,
    channel: CodeChannel,
    to: &str,
    lang: Lang,
    code: &str,
) -> NewMessage {
    let minutes = (state.cfg.otp.code_ttl_secs / 60).max(1);
    let (subject, text) = match lang {
        Lang::Ru => (
            "Код регистрации",
            format!("Код для регистрации в Пропуске: {code}. Действует {minutes} мин. Никому его не сообщайте."),
        ),
        Lang::En => (
            "Registration code",
            format!("Propusk registration code: {code}. Valid for {minutes} min. Do not tell it to anyone."),
        ),
    };
    NewMessage::new(channel.notify(), to.to_string(), "register", text)
        .with_subject(subject)
        .with_locale(lang.code())
}

/// The code step of a self-service flow: the code is checked under `scope`; a failure is
/// audited as `audit_kind`, and a code that can no longer be right drops the step kept
/// under `step_key`.
pub(super) struct CodeCheck<'a> {
    pub(super) scope: String,
    pub(super) step_key: String,
    pub(super) audit_kind: &'a str,
    pub(super) subject_id: Option<String>,
    /// False when no code was sent (an unknown account, a taken contact): none is right.
    pub(super) may_be_right: bool,
}

/// The answer to a code step.
pub(super) enum CodeAnswer {
    Right,
    /// Wrong (or no code can be right): the code page again.
    Wrong,
    /// Used up or expired: the first step again.
    Void,
}

impl CodeCheck<'_> {
    pub(super) async fn run(
        self,
        state: &AppState,
        req: &HttpRequest,
        code: &str,
    ) -> Result<CodeAnswer, OAuthError> {
        let verdict = super::otp::codes(state)?
            .verify(&self.scope, code, state.now())
            .await?;
        let (answer, detail) = match verdict {
            Verdict::Right if self.may_be_right => return Ok(CodeAnswer::Right),
            Verdict::Right | Verdict::Wrong { .. } | Verdict::Malformed => {
                (CodeAnswer::Wrong, serde_json::json!({}))
            }
            Verdict::Exhausted | Verdict::Expired | Verdict::Used => {
                (CodeAnswer::Void, serde_json::json!({ "void": true }))
            }
        };
        audit(state, req, self.audit_kind, self.subject_id, detail).await?;
        if matches!(answer, CodeAnswer::Void) {
            let _ = state.eph.delete(&self.step_key).await;
        }
        Ok(answer)
    }
}

/// The registration of a step's form, with its CSRF token checked.
async fn registration(
    state: &AppState,
    req: &HttpRequest,
    form: &Params,
) -> Result<Option<Registration>, OAuthError> {
    let Some(r) = load(state, req, field(form, "reg")).await? else {
        return Ok(None);
    };
    Ok(keys::constant_time_eq(field(form, "csrf").as_bytes(), r.csrf.as_bytes()).then_some(r))
}

fn expired(lang: Lang) -> HttpResponse {
    render(
        lang,
        StatusCode::BAD_REQUEST,
        RegisterStep::Start,
        "",
        None,
        &[],
        None,
        Some("code_expired"),
        None,
    )
}

async fn code(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let Some(mut r) = registration(state, req, form).await? else {
        return Ok(expired_start(state, req, lang));
    };
    let channel = if r.email {
        CodeChannel::Email
    } else {
        CodeChannel::Sms
    };
    let masked = crate::authn::otp::mask(channel, &r.contact);
    let check = CodeCheck {
        scope: format!("register:{}", r.id),
        step_key: key(&r.id),
        audit_kind: "register.code_failure",
        subject_id: None,
        // A taken contact's registration never confirms (its owner got no code).
        may_be_right: !r.taken,
    };
    match check.run(state, req, field(form, "code")).await? {
        CodeAnswer::Right => {
            r.confirmed = true;
            save(state, &r).await?;
            Ok(render(
                lang,
                StatusCode::OK,
                RegisterStep::Password,
                &r.csrf,
                Some(&r.id),
                &[],
                None,
                None,
                None,
            ))
        }
        CodeAnswer::Wrong => Ok(render(
            lang,
            StatusCode::BAD_REQUEST,
            RegisterStep::Code,
            &r.csrf,
            Some(&r.id),
            &[],
            Some(&masked),
            Some("wrong_code"),
            None,
        )),
        CodeAnswer::Void => Ok(expired_start(state, req, lang)),
    }
}

/// The first step again, with "the code is no longer valid".
fn expired_start(state: &AppState, req: &HttpRequest, lang: Lang) -> HttpResponse {
    match cookies::read(req, &cookies::bid_name(state)) {
        Some(bid) => {
            let csrf = start_csrf(state, FLOW, &bid);
            render(
                lang,
                StatusCode::BAD_REQUEST,
                RegisterStep::Start,
                &csrf,
                None,
                &[],
                None,
                Some("code_expired"),
                None,
            )
        }
        None => expired(lang),
    }
}

async fn password(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let Some(r) = registration(state, req, form)
        .await?
        .filter(|r| r.confirmed && !r.taken)
    else {
        return Ok(expired_start(state, req, lang));
    };
    let now = state.now();
    let (new, confirm) = (
        form.get("password").ok().flatten().unwrap_or(""),
        form.get("password2").ok().flatten().unwrap_or(""),
    );
    let profile = Profile {
        given_name: Some(r.given_name.clone()),
        family_name: Some(r.family_name.clone()),
        middle_name: r.middle_name.clone(),
        email: r.email.then(|| r.contact.clone()),
        email_verified: r.email,
        phone_number: (!r.email).then(|| r.contact.clone()),
        phone_number_verified: !r.email,
        ..Profile::default()
    };
    let mut subject = Subject {
        id: uuid::Uuid::new_v4().to_string(),
        oid: 0,
        login: r.contact.clone(),
        password_hash: String::new(),
        profile,
        created_at: now,
        updated_at: now,
    };
    let problems = super::password::check_new(state, &subject, new, confirm);
    if !problems.is_empty() {
        let text = consent_ui::password_problems_text(&problems, lang);
        return Ok(render(
            lang,
            StatusCode::BAD_REQUEST,
            RegisterStep::Password,
            &r.csrf,
            Some(&r.id),
            &[],
            None,
            Some("password"),
            Some(text),
        ));
    }
    subject.password_hash = super::password::hash(state, new.to_string()).await?;
    // The registration is spent before the account is created: a replayed form cannot
    // create a second one.
    if state.eph.take(&key(&r.id)).await?.is_none() {
        return Ok(expired_start(state, req, lang));
    }
    let (session, cookie_value) = new_session(state, &subject.id, now)?;
    let event = AuditEvent {
        at: now,
        kind: "user.registered".into(),
        subject_id: Some(subject.id.clone()),
        client_id: None,
        ip: super::client_ip(state, req),
        detail: serde_json::json!({ "level": "simplified", "contact": if r.email { "email" } else { "phone" } }),
    };
    let s2 = subject.clone();
    let sid = session.sid.clone();
    let created = state
        .store
        .call(move |s| {
            match s.insert_subject(&s2) {
                Err(StoreError::Conflict) => return Ok(false),
                other => other?,
            };
            // The session and the registration's event together.
            s.open_session(&session, None, &event)?;
            Ok(true)
        })
        .await?;
    if !created {
        let (_, csrf) = browser_csrf(state, req, FLOW);
        return Ok(render(
            lang,
            StatusCode::BAD_REQUEST,
            RegisterStep::Start,
            &csrf,
            None,
            &[],
            None,
            Some("taken"),
            None,
        ));
    }
    signed_in(state, &sid, cookie_value).await
}

/// A new password-only SSO session of `subject_id`, and the value of its cookie.
pub(super) fn new_session(
    state: &AppState,
    subject_id: &str,
    now: DateTime<Utc>,
) -> Result<(SsoSession, String), OAuthError> {
    let cookie_value = keys::random_token(32).map_err(OAuthError::server)?;
    let session = SsoSession {
        id_hash: keys::sha256_b64url(cookie_value.as_bytes()),
        sid: tokens::new_id()?,
        subject_id: subject_id.to_string(),
        auth_time: now,
        acr: crate::authn::ACR_ONE_FACTOR.into(),
        amr: vec!["pwd".into()],
        remember: false,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(state.cfg.session.ttl_secs as i64),
        ended_at: None,
    };
    Ok((session, cookie_value))
}

/// The browser, now signed in to the stored session `sid`: its cookie set, on to the profile.
pub(super) async fn signed_in(
    state: &AppState,
    sid: &str,
    cookie_value: String,
) -> Result<HttpResponse, OAuthError> {
    // A session without "remember me" ends after idle time: start its clock.
    super::login::touch_idle(state, sid).await?;
    let mut resp = see_other("/account/profile");
    let _ = resp.add_cookie(&cookies::build(
        state,
        cookies::session_name(state),
        cookie_value,
        None,
    ));
    Ok(resp)
}
