//! `/activate`: a citizen activates the account an operator created for them
//! (`idp users add --pending`, issue 5). Identifier -> a one-time code to the phone or e-mail
//! on file -> their own password -> the account is active and the browser signed in.
//!
//! Nothing tells whether a pending account uses the identifier: for any other identifier a
//! code is generated and dropped (same cooldown, budget and audit writes), the code page is
//! the same, any code is "wrong", and the first answer is padded to
//! `otp.recovery_min_response_ms`. The activation in progress is ephemeral (`act:<id>`),
//! bound to the browser cookie; the account changes only at the last step, in one
//! transaction conditional on the status still being pending.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ui::{ActivatePage, ErrorKind, Lang, RegisterStep};
use serde::{Deserialize, Serialize};

use super::error::{html, lang_of, page, page_failure};
use super::register::{self, audit, field, CodeAnswer, CodeCheck};
use crate::audit::AuditEvent;
use crate::authn::otp::CodeChannel;
use crate::domain::identifier::Identifier;
use crate::domain::person::AccountStatus;
use crate::notify::{NewMessage, OutboxStore};
use crate::protocol::params::Params;
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;
use crate::store::{PersonEditStore, PersonStore, SubjectStore};

/// An activation in progress (ephemeral, `act:<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Activation {
    v: u8,
    id: String,
    bid_hash: String,
    csrf: String,
    /// The pending account, if the identifier named one; `None` answers like one.
    subject_id: Option<String>,
    /// Where the code went (normalised).
    contact: String,
    confirmed: bool,
    created_at: DateTime<Utc>,
}

const FLOW: &str = "activate";

fn key(id: &str) -> String {
    format!("act:{id}")
}

fn scope(id: &str) -> String {
    format!("activate:{id}")
}

/// The first step (`identifier`: what was typed).
fn start_page(
    lang: Lang,
    status: StatusCode,
    csrf: &str,
    identifier: &str,
    error: Option<&str>,
) -> HttpResponse {
    let step = RegisterStep::Start;
    render(
        lang,
        status,
        View {
            step,
            csrf,
            act: None,
            identifier,
            error,
            error_text: None,
        },
    )
}

/// A later step of the activation `a`.
fn step_page(
    lang: Lang,
    status: StatusCode,
    step: RegisterStep,
    a: &Activation,
    error: Option<&str>,
    error_text: Option<String>,
) -> HttpResponse {
    let act = Some(a.id.as_str());
    let csrf = &a.csrf;
    render(
        lang,
        status,
        View {
            step,
            csrf,
            act,
            identifier: "",
            error,
            error_text,
        },
    )
}

struct View<'a> {
    step: RegisterStep,
    csrf: &'a str,
    act: Option<&'a str>,
    identifier: &'a str,
    error: Option<&'a str>,
    error_text: Option<String>,
}

fn render(lang: Lang, status: StatusCode, v: View<'_>) -> HttpResponse {
    html(
        status,
        ActivatePage {
            lang,
            step: v.step,
            csrf: v.csrf,
            act: v.act,
            identifier: v.identifier,
            error: v.error,
            error_text: v.error_text,
        }
        .render(),
    )
}

/// `GET /activate`.
pub async fn page_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    register::first_page(&state, &req, lang, FLOW, |csrf| {
        start_page(lang, StatusCode::OK, csrf, "", None)
    })
}

/// `POST /activate` (`step` = start | code | password).
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let lang = lang_of(&req, None);
    let Ok(form) = super::token::form_body(&req, &body) else {
        return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None);
    };
    let res = match form.get("step").ok().flatten() {
        Some("start") => start(&state, &req, lang, &form).await,
        Some("code") => code(&state, &req, lang, &form).await,
        Some("password") => password(&state, &req, lang, &form).await,
        _ => Ok(page(
            StatusCode::BAD_REQUEST,
            lang,
            ErrorKind::BadRequest,
            None,
        )),
    };
    res.unwrap_or_else(|e| page_failure(lang, &e))
}

/// The pending account an identifier names and where its code goes, if any.
async fn pending_account(
    state: &AppState,
    identifier: &str,
) -> Result<Option<(String, String, bool)>, OAuthError> {
    let Ok(id) = Identifier::parse(identifier) else {
        return Ok(None);
    };
    let login = id.as_str().to_string();
    Ok(state
        .store
        .call(move |s| {
            let Some(subject) = s.find_subject_by_login(&login)? else {
                return Ok(None);
            };
            let pending = s
                .find_person(&subject.id)?
                .is_some_and(|p| p.status == AccountStatus::PendingConfirmation);
            Ok(pending
                .then(|| subject.activation_contact())
                .flatten()
                .map(|(to, email)| (subject.id.clone(), to, email)))
        })
        .await?)
}

async fn start(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let started = std::time::Instant::now();
    let (bid, csrf) = register::browser_csrf(state, req, FLOW);
    if bid.is_empty() || !keys::constant_time_eq(field(form, "csrf").as_bytes(), csrf.as_bytes()) {
        return Ok(page(
            StatusCode::FORBIDDEN,
            lang,
            ErrorKind::BadRequest,
            None,
        ));
    }
    let identifier = field(form, "identifier");
    let again = |code: &'static str| {
        start_page(lang, StatusCode::BAD_REQUEST, &csrf, identifier, Some(code))
    };
    if identifier.chars().count() > 200 || Identifier::parse(identifier).is_err() {
        return Ok(again("bad_identifier"));
    }
    let found = pending_account(state, identifier).await?;
    let a = Activation {
        v: 1,
        id: tokens::new_id()?,
        bid_hash: keys::sha256_b64url(bid.as_bytes()),
        csrf: keys::random_token(24).map_err(OAuthError::server)?,
        subject_id: found.as_ref().map(|f| f.0.clone()),
        contact: found.as_ref().map(|f| f.1.clone()).unwrap_or_default(),
        confirmed: false,
        created_at: state.now(),
    };
    let (channel, to) = match &found {
        Some((_, to, true)) => (CodeChannel::Email, to.clone()),
        Some((_, to, false)) => (CodeChannel::Sms, to.clone()),
        None => (CodeChannel::Sms, identifier.to_string()),
    };
    // The budget is per typed identifier, known or not.
    let who = state
        .store
        .vault()?
        .blind_index(&format!("activate:{identifier}"));
    let code = match super::otp::codes(state)?
        .issue(&scope(&a.id), &who, channel, &to, state.now())
        .await?
    {
        Ok(c) => c,
        Err(_) => {
            register::pad(state, started).await;
            return Ok(again("throttled"));
        }
    };
    audit(
        state,
        req,
        "activation.requested",
        a.subject_id.clone(),
        serde_json::json!({ "known": found.is_some() }),
    )
    .await?;
    if found.is_some() {
        let minutes = (state.cfg.otp.code_ttl_secs / 60).max(1);
        let (subject, text) = match lang {
            Lang::Ru => ("Код активации", format!("Код для активации учётной записи Пропуска: {code}. Действует {minutes} мин. Никому его не сообщайте.")),
            Lang::En => ("Activation code", format!("Propusk account activation code: {code}. Valid for {minutes} min. Do not tell it to anyone.")),
        };
        let message = NewMessage::new(channel.notify(), to, "activation", text)
            .with_subject(subject)
            .with_locale(lang.code());
        let now = state.now();
        state.store.call(move |s| s.enqueue(&message, now)).await?;
    }
    register::keep(state, &key(&a.id), &a).await?;
    register::pad(state, started).await;
    Ok(step_page(
        lang,
        StatusCode::OK,
        RegisterStep::Code,
        &a,
        None,
        None,
    ))
}

/// The activation of a step's form: this browser's, with its CSRF token.
async fn activation(
    state: &AppState,
    req: &HttpRequest,
    form: &Params,
) -> Result<Option<Activation>, OAuthError> {
    let a = register::kept::<Activation>(state, key, field(form, "reg")).await?;
    Ok(a.filter(|a| {
        register::same_browser(state, req, &a.bid_hash)
            && keys::constant_time_eq(field(form, "csrf").as_bytes(), a.csrf.as_bytes())
    }))
}

/// The first step again with "the code is no longer valid".
fn expired_start(state: &AppState, req: &HttpRequest, lang: Lang) -> HttpResponse {
    let (_, csrf) = register::browser_csrf(state, req, FLOW);
    start_page(
        lang,
        StatusCode::BAD_REQUEST,
        &csrf,
        "",
        Some("code_expired"),
    )
}

async fn code(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let Some(mut a) = activation(state, req, form).await? else {
        return Ok(expired_start(state, req, lang));
    };
    let check = CodeCheck {
        scope: scope(&a.id),
        step_key: key(&a.id),
        audit_kind: "activation.code_failure",
        subject_id: a.subject_id.clone(),
        // No account: no code was sent, so none is right.
        may_be_right: a.subject_id.is_some(),
    };
    match check.run(state, req, field(form, "code")).await? {
        CodeAnswer::Right => {
            a.confirmed = true;
            register::keep(state, &key(&a.id), &a).await?;
            let step = RegisterStep::Password;
            Ok(step_page(lang, StatusCode::OK, step, &a, None, None))
        }
        CodeAnswer::Wrong => {
            let (step, error) = (RegisterStep::Code, Some("wrong_code"));
            Ok(step_page(
                lang,
                StatusCode::BAD_REQUEST,
                step,
                &a,
                error,
                None,
            ))
        }
        CodeAnswer::Void => Ok(expired_start(state, req, lang)),
    }
}

async fn password(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let Some(a) = activation(state, req, form).await?.filter(|a| a.confirmed) else {
        return Ok(expired_start(state, req, lang));
    };
    let Some(sub) = a.subject_id.clone() else {
        return Ok(expired_start(state, req, lang));
    };
    let s2 = sub.clone();
    let Some(subject) = state.store.call(move |s| s.find_subject(&s2)).await? else {
        return Ok(expired_start(state, req, lang));
    };
    let (new, confirm) = (
        form.get("password").ok().flatten().unwrap_or(""),
        form.get("password2").ok().flatten().unwrap_or(""),
    );
    let problems = super::password::check_new(state, &subject, new, confirm);
    if !problems.is_empty() {
        return Ok(step_page(
            lang,
            StatusCode::BAD_REQUEST,
            RegisterStep::Password,
            &a,
            Some("password"),
            Some(consent_ui::password_problems_text(&problems, lang)),
        ));
    }
    let hash = super::password::hash(state, new.to_string()).await?;
    // Spent before the account changes: a replayed form cannot activate twice.
    if state.eph.take(&key(&a.id)).await?.is_none() {
        return Ok(expired_start(state, req, lang));
    }
    let now = state.now();
    let (session, cookie_value) = register::new_session(state, &sub, now)?;
    let event = AuditEvent {
        at: now,
        kind: "user.activated".into(),
        subject_id: Some(sub.clone()),
        client_id: None,
        ip: super::client_ip(state, req),
        detail: serde_json::json!({ "contact": if a.contact.contains('@') { "email" } else { "phone" } }),
    };
    let sid = session.sid.clone();
    let contact = a.contact.clone();
    let activated = state
        .store
        .call(move |s| s.activate_pending(&sub, &hash, &contact, &event, &session))
        .await?;
    if !activated {
        return Ok(expired_start(state, req, lang));
    }
    register::signed_in(state, &sid, cookie_value).await
}
