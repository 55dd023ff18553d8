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

use super::cookies;
use super::error::{html, lang_of, page, page_failure};
use super::login::see_other;
use crate::audit::AuditEvent;
use crate::authn::otp::{CodeChannel, Codes, Verdict};
use crate::domain::identifier::Identifier;
use crate::domain::person::AccountStatus;
use crate::domain::SsoSession;
use crate::notify::{NewMessage, OutboxStore};
use crate::protocol::params::Params;
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, PersonEditStore, PersonStore, SessionStore, SubjectStore};

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

const TTL_SECS: u64 = 15 * 60;

fn key(id: &str) -> String {
    format!("act:{id}")
}

fn scope(id: &str) -> String {
    format!("activate:{id}")
}

fn codes(state: &AppState) -> Result<Codes<'_>, OAuthError> {
    Ok(Codes {
        eph: state.eph.as_ref(),
        cfg: &state.cfg.otp,
        vault: state.store.vault()?,
    })
}

fn field<'a>(form: &'a Params, k: &str) -> &'a str {
    form.get(k).ok().flatten().unwrap_or("").trim()
}

/// CSRF token of the first form: a keyed hash of the browser cookie.
fn start_csrf(state: &AppState, bid: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, state.csrf_secret.as_ref());
    let tag = ring::hmac::sign(&key, format!("activate:{bid}").as_bytes());
    keys::sha256_b64url(tag.as_ref())
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

async fn audit(
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

/// `GET /activate`.
pub async fn page_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    let (bid, new_bid) = match cookies::read(&req, &cookies::bid_name(&state)) {
        Some(b) => (b, false),
        None => match keys::random_token(32) {
            Ok(b) => (b, true),
            Err(e) => return page_failure(lang, &OAuthError::server(e)),
        },
    };
    let csrf = start_csrf(&state, &bid);
    let mut resp = render(
        lang,
        StatusCode::OK,
        View {
            step: RegisterStep::Start,
            csrf: &csrf,
            act: None,
            identifier: "",
            error: None,
            error_text: None,
        },
    );
    if new_bid {
        let _ = resp.add_cookie(&cookies::build(
            &state,
            cookies::bid_name(&state),
            bid,
            None,
        ));
    }
    resp
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
    let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
    let csrf = start_csrf(state, &bid);
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
        render(
            lang,
            StatusCode::BAD_REQUEST,
            View {
                step: RegisterStep::Start,
                csrf: &csrf,
                act: None,
                identifier,
                error: Some(code),
                error_text: None,
            },
        )
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
    let code = match codes(state)?
        .issue(&scope(&a.id), &who, channel, &to, state.now())
        .await?
    {
        Ok(c) => c,
        Err(_) => {
            super::register::pad(state, started).await;
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
    let bytes = serde_json::to_vec(&a).map_err(OAuthError::server)?;
    state
        .eph
        .put(
            &key(&a.id),
            &bytes,
            std::time::Duration::from_secs(TTL_SECS),
        )
        .await?;
    super::register::pad(state, started).await;
    Ok(render(
        lang,
        StatusCode::OK,
        View {
            step: RegisterStep::Code,
            csrf: &a.csrf,
            act: Some(&a.id),
            identifier: "",
            error: None,
            error_text: None,
        },
    ))
}

/// The activation of a step's form: this browser's, with its CSRF token.
async fn activation(
    state: &AppState,
    req: &HttpRequest,
    form: &Params,
) -> Result<Option<Activation>, OAuthError> {
    let id = field(form, "reg");
    if id.is_empty() || id.len() > 100 {
        return Ok(None);
    }
    let Some(bytes) = state.eph.get(&key(id)).await? else {
        return Ok(None);
    };
    let Ok(a) = serde_json::from_slice::<Activation>(&bytes) else {
        return Ok(None);
    };
    let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
    let ok = keys::constant_time_eq(
        keys::sha256_b64url(bid.as_bytes()).as_bytes(),
        a.bid_hash.as_bytes(),
    ) && keys::constant_time_eq(field(form, "csrf").as_bytes(), a.csrf.as_bytes());
    Ok(ok.then_some(a))
}

/// The first step again with "the code is no longer valid".
fn expired_start(state: &AppState, req: &HttpRequest, lang: Lang) -> HttpResponse {
    let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
    let csrf = start_csrf(state, &bid);
    render(
        lang,
        StatusCode::BAD_REQUEST,
        View {
            step: RegisterStep::Start,
            csrf: &csrf,
            act: None,
            identifier: "",
            error: Some("code_expired"),
            error_text: None,
        },
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
    let verdict = codes(state)?
        .verify(&scope(&a.id), field(form, "code"), state.now())
        .await?;
    match verdict {
        Verdict::Right if a.subject_id.is_some() => {
            a.confirmed = true;
            let bytes = serde_json::to_vec(&a).map_err(OAuthError::server)?;
            state
                .eph
                .put(
                    &key(&a.id),
                    &bytes,
                    std::time::Duration::from_secs(TTL_SECS),
                )
                .await?;
            Ok(render(
                lang,
                StatusCode::OK,
                View {
                    step: RegisterStep::Password,
                    csrf: &a.csrf,
                    act: Some(&a.id),
                    identifier: "",
                    error: None,
                    error_text: None,
                },
            ))
        }
        // No account: no code was sent, so none is right.
        Verdict::Right | Verdict::Wrong { .. } | Verdict::Malformed => {
            audit(
                state,
                req,
                "activation.code_failure",
                a.subject_id.clone(),
                serde_json::json!({}),
            )
            .await?;
            Ok(render(
                lang,
                StatusCode::BAD_REQUEST,
                View {
                    step: RegisterStep::Code,
                    csrf: &a.csrf,
                    act: Some(&a.id),
                    identifier: "",
                    error: Some("wrong_code"),
                    error_text: None,
                },
            ))
        }
        Verdict::Exhausted | Verdict::Expired | Verdict::Used => {
            audit(
                state,
                req,
                "activation.code_failure",
                a.subject_id.clone(),
                serde_json::json!({ "void": true }),
            )
            .await?;
            let _ = state.eph.delete(&key(&a.id)).await;
            Ok(expired_start(state, req, lang))
        }
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
        return Ok(render(
            lang,
            StatusCode::BAD_REQUEST,
            View {
                step: RegisterStep::Password,
                csrf: &a.csrf,
                act: Some(&a.id),
                identifier: "",
                error: Some("password"),
                error_text: Some(consent_ui::password_problems_text(&problems, lang)),
            },
        ));
    }
    let hash = super::password::hash(state, new.to_string()).await?;
    // Spent before the account changes: a replayed form cannot activate twice.
    if state.eph.take(&key(&a.id)).await?.is_none() {
        return Ok(expired_start(state, req, lang));
    }
    let now = state.now();
    let cookie_value = keys::random_token(32).map_err(OAuthError::server)?;
    let session = SsoSession {
        id_hash: keys::sha256_b64url(cookie_value.as_bytes()),
        sid: tokens::new_id()?,
        subject_id: sub.clone(),
        auth_time: now,
        acr: crate::authn::ACR_ONE_FACTOR.into(),
        amr: vec!["pwd".into()],
        remember: false,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(state.cfg.session.ttl_secs as i64),
        ended_at: None,
    };
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
        .call(move |s| {
            if !s.activate_pending(&sub, &hash, &contact, &event)? {
                return Ok(false);
            }
            s.insert_session(&session)?;
            Ok(true)
        })
        .await?;
    if !activated {
        return Ok(expired_start(state, req, lang));
    }
    super::login::touch_idle(state, &sid).await?;
    let mut resp = see_other("/account/profile");
    let _ = resp.add_cookie(&cookies::build(
        state,
        cookies::session_name(state),
        cookie_value,
        None,
    ));
    Ok(resp)
}
