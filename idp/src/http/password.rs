//! Passwords: `/account/password` (change, knowing the current one: every other session
//! ends, refresh tokens of other sessions are revoked, the owner is alerted) and
//! `/login/new-password` (a temporary password set by an operator must be replaced before
//! the sign-in goes on). The shared pieces (policy, hashing, the one-transaction write) are
//! used by the recovery flow too.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{Lang, Notice, NoticePage, PasswordPage, PasswordProblem, PasswordPurpose};

use super::error::{html, lang_of, page, page_failure};
use super::login::{expired, ip_of, load_tx, signed_in, tx_form, tx_lang, tx_param};
use crate::audit::AuditEvent;
use crate::authn::password_policy::{self, PolicyContext, PolicyViolation};
use crate::domain::{SsoSession, Subject};
use crate::notify::{Channel, NewMessage};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{AuditStore, PasswordChange, PasswordChanged, SigninStore, SubjectStore};

fn problem_of(v: PolicyViolation) -> PasswordProblem {
    use PasswordProblem as P;
    match v {
        PolicyViolation::TooShort { min } => P::TooShort(min),
        PolicyViolation::TooLong { max } => P::TooLong(max),
        PolicyViolation::NoLowercase => P::NoLowercase,
        PolicyViolation::NoUppercase => P::NoUppercase,
        PolicyViolation::NoDigit => P::NoDigit,
        PolicyViolation::NoSpecial => P::NoSpecial,
        PolicyViolation::Sequence => P::Sequence,
        PolicyViolation::Repeated => P::Repeated,
        PolicyViolation::ContainsName => P::ContainsName,
        PolicyViolation::ContainsBirthDate => P::ContainsBirthDate,
        PolicyViolation::ContainsPhone => P::ContainsPhone,
        PolicyViolation::Breached => P::Breached,
    }
}

/// The new password typed twice, checked against the policy with the person's own data.
pub(super) fn check_new(
    state: &AppState,
    subject: &Subject,
    new: &str,
    confirm: &str,
) -> Vec<PasswordProblem> {
    if new.is_empty() || confirm.is_empty() {
        return vec![PasswordProblem::Missing];
    }
    let p = &subject.profile;
    let birthdate = p
        .birthdate
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let ctx = PolicyContext {
        min_length: state.cfg.password.min_length,
        given_name: p.given_name.as_deref(),
        family_name: p.family_name.as_deref(),
        middle_name: p.middle_name.as_deref(),
        birthdate,
        phone: p.phone_number.as_deref(),
    };
    let mut problems: Vec<PasswordProblem> = match password_policy::check(new, &ctx) {
        Ok(()) => Vec::new(),
        Err(v) => v.into_iter().map(problem_of).collect(),
    };
    if new != confirm {
        problems.push(PasswordProblem::Mismatch);
    }
    problems
}

/// argon2id on a blocking thread.
pub(super) async fn hash(state: &AppState, password: String) -> Result<String, OAuthError> {
    let hasher = state.passwords.clone();
    tokio::task::spawn_blocking(move || hasher.hash_blocking(&password))
        .await
        .map_err(OAuthError::server)?
        .map_err(OAuthError::server)
}

/// "Your password was changed" for the owner: to the confirmed e-mail, else by SMS.
pub(super) fn changed_alert(subject: &Subject) -> Option<NewMessage> {
    let p = &subject.profile;
    let text = "Пароль от вашей учётной записи Пропуска изменён. Если это были не вы, \
                восстановите доступ по ссылке «Забыли пароль?» и обратитесь в поддержку.";
    let m = match (&p.email, &p.phone_number) {
        (Some(e), _) if p.email_verified => {
            NewMessage::new(Channel::Email, e.clone(), "alert.password_changed", text)
                .with_subject("Пароль изменён")
        }
        (_, Some(ph)) if p.phone_number_verified => {
            NewMessage::new(Channel::Sms, ph.clone(), "alert.password_changed", text)
        }
        _ => return None,
    };
    Some(m.with_locale("ru"))
}

/// Writes the new password with its audit event and the owner's alert, ending sessions
/// (all but `keep_sid`) and revoking refresh tokens, in one transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn save(
    state: &AppState,
    req: &HttpRequest,
    subject: &Subject,
    new: String,
    keep_sid: Option<String>,
    kind: &str,
    client_id: Option<String>,
    detail: serde_json::Value,
) -> Result<PasswordChanged, OAuthError> {
    let password_hash = hash(state, new).await?;
    let now = state.now();
    let event = AuditEvent {
        at: now,
        kind: kind.into(),
        subject_id: Some(subject.id.clone()),
        client_id,
        ip: ip_of(state, req),
        detail,
    };
    let alert = changed_alert(subject);
    let sub = subject.id.clone();
    Ok(state
        .store
        .call(move |s| {
            s.set_password(&PasswordChange {
                subject_id: &sub,
                password_hash: &password_hash,
                must_change: false,
                keep_sid: keep_sid.as_deref(),
                event: &event,
                alert: alert.as_ref(),
                now,
            })
        })
        .await?)
}

// ---- /account/password ----

/// CSRF token of the change form: a keyed hash of the session cookie hash.
fn account_csrf(state: &AppState, session: &SsoSession) -> String {
    let mut data = state.csrf_secret.to_vec();
    data.extend_from_slice(b"password:");
    data.extend_from_slice(session.id_hash.as_bytes());
    keys::sha256_b64url(&data)
}

fn sign_in_first(lang: Lang) -> HttpResponse {
    let body = NoticePage {
        lang,
        notice: Notice::SignInFirst,
        link: Some("/account/security/signin"),
    }
    .render();
    html(StatusCode::UNAUTHORIZED, body)
}

fn change_page(
    state: &AppState,
    lang: Lang,
    session: &SsoSession,
    problems: &[PasswordProblem],
    status: StatusCode,
) -> HttpResponse {
    let csrf = account_csrf(state, session);
    let body = PasswordPage {
        lang,
        purpose: PasswordPurpose::Change,
        action: "/account/password",
        hidden: &[],
        csrf: &csrf,
        problems,
    }
    .render();
    html(status, body)
}

/// `GET /account/password`: the form, for a live SSO session.
pub async fn change_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    match super::authorize::current_session(&state, &req).await {
        Ok(Some(s)) => change_page(&state, lang, &s, &[], StatusCode::OK),
        Ok(None) => sign_in_first(lang),
        Err(e) => page_failure(lang, &e),
    }
}

/// `POST /account/password` (`csrf`, `current`, `new_password`, `confirm`).
pub async fn change_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let lang = lang_of(&req, None);
    let session = match super::authorize::current_session(&state, &req).await {
        Ok(Some(s)) => s,
        Ok(None) => return sign_in_first(lang),
        Err(e) => return page_failure(lang, &e),
    };
    let Ok(form) = super::token::form_body(&req, &body) else {
        return page(
            StatusCode::BAD_REQUEST,
            lang,
            consent_ui::ErrorKind::BadRequest,
            None,
        );
    };
    let field = |n: &str| form.get(n).ok().flatten().unwrap_or("").to_string();
    let sent = field("csrf");
    if !keys::constant_time_eq(sent.as_bytes(), account_csrf(&state, &session).as_bytes()) {
        return page(
            StatusCode::FORBIDDEN,
            lang,
            consent_ui::ErrorKind::BadRequest,
            None,
        );
    }
    let (current, new, confirm) = (field("current"), field("new_password"), field("confirm"));
    let bad = |problems: Vec<PasswordProblem>, status| {
        change_page(&state, lang, &session, &problems, status)
    };
    if current.is_empty() || current.len() > 1024 || new.len() > 1024 {
        return bad(vec![PasswordProblem::Missing], StatusCode::BAD_REQUEST);
    }
    let run = async {
        let ip = ip_of(&state, &req).unwrap_or_default();
        if !super::login::throttle(&state).ip_attempt(&ip).await? {
            return Ok(Err((
                vec![PasswordProblem::Throttled],
                StatusCode::TOO_MANY_REQUESTS,
            )));
        }
        let sub = session.subject_id.clone();
        let Some(subject) = state.store.call(move |s| s.find_subject(&sub)).await? else {
            return Ok(Err((
                vec![PasswordProblem::Missing],
                StatusCode::BAD_REQUEST,
            )));
        };
        let ok = state
            .passwords
            .verify(Some(subject.password_hash.clone()), current.clone())
            .await
            .map_err(OAuthError::server)?;
        if !ok {
            let event = AuditEvent {
                at: state.now(),
                kind: "password.change_failed".into(),
                subject_id: Some(subject.id.clone()),
                client_id: None,
                ip: ip_of(&state, &req),
                detail: serde_json::json!({ "reason": "wrong_current" }),
            };
            state.store.call(move |s| s.append_audit(&event)).await?;
            return Ok(Err((
                vec![PasswordProblem::WrongCurrent],
                StatusCode::BAD_REQUEST,
            )));
        }
        let mut problems = check_new(&state, &subject, &new, &confirm);
        if problems.is_empty() && new == current {
            problems.push(PasswordProblem::SameAsCurrent);
        }
        if !problems.is_empty() {
            return Ok(Err((problems, StatusCode::BAD_REQUEST)));
        }
        let done = save(
            &state,
            &req,
            &subject,
            new.clone(),
            Some(session.sid.clone()),
            "password.changed",
            None,
            serde_json::json!({ "by": "owner", "sid": session.sid }),
        )
        .await?;
        Ok::<_, OAuthError>(Ok(done))
    };
    match run.await {
        Ok(Ok(done)) => {
            let body = NoticePage {
                lang,
                notice: Notice::PasswordChanged(done.sessions_ended),
                link: None,
            }
            .render();
            html(StatusCode::OK, body)
        }
        Ok(Err((problems, status))) => bad(problems, status),
        Err(e) => page_failure(lang, &e),
    }
}

// ---- /login/new-password: temporary password ----

fn forced_page(lang: Lang, tx_id: &str, csrf: &str, problems: &[PasswordProblem]) -> HttpResponse {
    let body = PasswordPage {
        lang,
        purpose: PasswordPurpose::Temporary,
        action: "/login/new-password",
        hidden: &[("tx", tx_id)],
        csrf,
        problems,
    }
    .render();
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(status, body)
}

/// Whether the person signs in with a temporary password that must be replaced first.
pub(super) async fn must_change(state: &AppState, subject_id: &str) -> Result<bool, OAuthError> {
    let sub = subject_id.to_string();
    Ok(state
        .store
        .call(move |s| s.signin_state(&sub))
        .await?
        .password_must_change)
}

/// `GET /login/new-password?tx=`.
pub async fn forced_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    let tx = match load_tx(&state, &req, &tx_param(&req)).await {
        Ok(Some(tx)) if tx.password_due.is_some() => tx,
        Ok(_) => return expired(lang),
        Err(e) => return page_failure(lang, &e),
    };
    forced_page(tx_lang(&req, &tx), &tx.id, &tx.csrf, &[])
}

/// `POST /login/new-password` (`tx`, `csrf`, `new_password`, `confirm`): saves the new
/// password, then the sign-in goes on (session, consent, code).
pub async fn forced_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, mut tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(due) = tx.password_due.clone() else {
        return expired(lang);
    };
    let field = |n: &str| form.get(n).ok().flatten().unwrap_or("").to_string();
    let (new, confirm) = (field("new_password"), field("confirm"));
    let sub = due.subject_id.clone();
    let subject = match state.store.call(move |s| s.find_subject(&sub)).await {
        Ok(Some(s)) => s,
        Ok(None) => return expired(lang),
        Err(e) => return page_failure(lang, &e.into()),
    };
    let mut problems = check_new(&state, &subject, &new, &confirm);
    if problems.is_empty() {
        // The temporary password cannot stay.
        match state
            .passwords
            .verify(Some(subject.password_hash.clone()), new.clone())
            .await
        {
            Ok(true) => problems.push(PasswordProblem::SameAsCurrent),
            Ok(false) => {}
            Err(e) => return page_failure(lang, &OAuthError::server(e)),
        }
    }
    if !problems.is_empty() {
        return forced_page(lang, &tx.id, &tx.csrf, &problems);
    }
    let saved = save(
        &state,
        &req,
        &subject,
        new,
        None,
        "password.changed",
        Some(tx.request.client_id.clone()),
        serde_json::json!({ "by": "owner", "temporary": true }),
    )
    .await;
    if let Err(e) = saved {
        return page_failure(lang, &e);
    }
    tx.password_due = None;
    signed_in(
        &state,
        &req,
        lang,
        tx,
        &due.subject_id,
        &due.acr,
        due.amr,
        due.remember,
        None,
    )
    .await
}
