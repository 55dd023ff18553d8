//! Forgot password and forgot login, inside a login transaction (the links of the sign-in
//! page): the person types a phone or e-mail; the answer is the same, after the same time,
//! whether or not an account uses it (`otp.recovery_min_response_ms`), so only someone who
//! controls the contact learns anything.
//!
//! Forgot password: contact -> code (6 digits, 5 min, 3 attempts, resend after 60 s) ->
//! new password (policy) -> every session of the person ends, every refresh token is
//! revoked, the owner is alerted -> back to the sign-in page. Forgot login: contact -> the
//! login is sent to that contact. Both are rate-limited (per address with the sign-in
//! throttle, per typed contact with the code budget) and audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{
    Forgot, ForgotError, ForgotPage, ForgotStep, Lang, Notice, NoticePage, PasswordPage,
    PasswordProblem, PasswordPurpose,
};
use serde::{Deserialize, Serialize};

use super::error::{html, lang_of, page_failure};
use super::login::{audit, expired, load_tx, see_other, throttle, tx_form, tx_lang, tx_param};
use crate::authn::otp::{CodeChannel, Purpose, Refused, Verdict};
use crate::authn::throttle::Attempt;
use crate::authn::transaction::LoginTx;
use crate::domain::identifier::{Identifier, IdentifierKind};
use crate::domain::Subject;
use crate::notify::{NewMessage, OutboxStore};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{SigninStore, SubjectStore};

/// A forgot-password flow of one transaction, under `rec:<tx>`. Holds no contact in clear.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recovery {
    v: u8,
    /// The account using the typed contact; `None` when there is none (the pages look the same).
    subject_id: Option<String>,
    channel: CodeChannel,
    /// Blind index of the typed contact: the key of its send budget.
    contact_index: String,
    /// Set once the code was right.
    verified: bool,
}

fn rec_key(tx: &LoginTx) -> String {
    format!("rec:{}", tx.id)
}

fn scope(tx: &LoginTx) -> String {
    format!("recover:{}", tx.id)
}

async fn load(state: &AppState, tx: &LoginTx) -> Result<Option<Recovery>, OAuthError> {
    Ok(state
        .eph
        .get(&rec_key(tx))
        .await?
        .and_then(|b| serde_json::from_slice::<Recovery>(&b).ok())
        .filter(|r| r.v == 1))
}

async fn save(state: &AppState, tx: &LoginTx, r: &Recovery) -> Result<(), OAuthError> {
    let bytes = serde_json::to_vec(r).unwrap_or_default();
    let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
    state.eph.put(&rec_key(tx), &bytes, ttl).await?;
    Ok(())
}

/// A typed contact: the normalised phone or e-mail and its channel.
fn parse_contact(raw: &str) -> Option<(String, CodeChannel)> {
    let id = Identifier::parse(raw).ok()?;
    let channel = match id.kind() {
        IdentifierKind::Phone => CodeChannel::Sms,
        IdentifierKind::Email => CodeChannel::Email,
        _ => return None,
    };
    Some((id.as_str().to_string(), channel))
}

/// Answers no earlier than `min_response_ms` after `started`, so known and unknown contacts
/// take the same time.
async fn pad(state: &AppState, started: std::time::Instant) {
    let min = std::time::Duration::from_millis(state.cfg.otp.recovery_min_response_ms);
    if let Some(rest) = min.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

fn flow_of(path: &str) -> Forgot {
    if path.starts_with("/recover/login") {
        Forgot::Login
    } else {
        Forgot::Password
    }
}

#[allow(clippy::too_many_arguments)]
fn forgot_page(
    lang: Lang,
    flow: Forgot,
    step: ForgotStep,
    tx: &LoginTx,
    contact: &str,
    error: Option<ForgotError>,
    status: StatusCode,
) -> HttpResponse {
    let back = format!("/login?tx={}", tx.id);
    let action = match (flow, step) {
        (Forgot::Login, _) => "/recover/login",
        (Forgot::Password, ForgotStep::Contact) => "/recover/password",
        (Forgot::Password, ForgotStep::Code) => "/recover/password/code",
    };
    let body = ForgotPage {
        lang,
        flow,
        step,
        action,
        resend_action: "/recover/password/resend",
        tx: &tx.id,
        csrf: &tx.csrf,
        contact,
        error,
        back: &back,
    }
    .render();
    html(status, body)
}

/// The login transaction named by `?tx=` and its language, or the page to answer with.
async fn query_tx(state: &AppState, req: &HttpRequest) -> Result<(LoginTx, Lang), HttpResponse> {
    let lang = lang_of(req, None);
    match load_tx(state, req, &tx_param(req)).await {
        Ok(Some(tx)) => {
            let lang = tx_lang(req, &tx);
            Ok((tx, lang))
        }
        Ok(None) => Err(expired(lang)),
        Err(e) => Err(page_failure(lang, &e)),
    }
}

/// `GET /recover/password?tx=`, `GET /recover/login?tx=`: the contact form.
pub async fn contact_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (tx, lang) = match query_tx(&state, &req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let flow = flow_of(req.path());
    forgot_page(
        lang,
        flow,
        ForgotStep::Contact,
        &tx,
        "",
        None,
        StatusCode::OK,
    )
}

/// Reads the contact field, or the page that says what is wrong with it.
fn contact_field(form: &crate::protocol::params::Params) -> Result<(String, CodeChannel), String> {
    let raw = form.get("contact").ok().flatten().unwrap_or("").trim();
    if raw.len() > 256 {
        return Err(String::new());
    }
    parse_contact(raw).ok_or_else(|| raw.to_string())
}

/// The accounts using `contact` (as login or as a confirmed contact), its own login first.
async fn accounts_of(state: &AppState, contact: &str) -> Result<Vec<Subject>, OAuthError> {
    let c = contact.to_string();
    Ok(state
        .store
        .call(move |s| s.find_subjects_by_contact(&c))
        .await?)
}

/// The one account a password reset by `contact` is for: the account whose login it is, or
/// the only account with it as a confirmed contact. A contact shared by several accounts
/// and the login of none is answered like an unknown one (documented).
async fn account_of(state: &AppState, contact: &str) -> Result<Option<String>, OAuthError> {
    let found = accounts_of(state, contact).await?;
    Ok(match found.as_slice() {
        [only] => Some(only.id.clone()),
        [first, ..] if first.login == contact => Some(first.id.clone()),
        _ => None,
    })
}

/// The contact of `subject` whose blind index is `index` (for "send again").
fn contact_by_index(state: &AppState, subject: &Subject, index: &str) -> Option<String> {
    let vault = state.store.vault().ok()?;
    let p = &subject.profile;
    [
        Some(subject.login.clone()),
        p.email.clone().filter(|_| p.email_verified),
        p.phone_number.clone().filter(|_| p.phone_number_verified),
    ]
    .into_iter()
    .flatten()
    .find(|c| {
        let k = vault.blind_index(&format!("recover:{c}"));
        keys::constant_time_eq(k.as_bytes(), index.as_bytes())
    })
}

/// `POST /recover/password` (`tx`, `csrf`, `contact`): a code to the contact if an account
/// uses it; the same answer, after the same time, if none does.
pub async fn password_request(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    contact_request(Forgot::Password, &state, &req, &body).await
}

/// `POST /recover/login` (`tx`, `csrf`, `contact`): the login is sent to the contact if an
/// account uses it; the same answer, after the same time, if none does.
pub async fn login_request(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    contact_request(Forgot::Login, &state, &req, &body).await
}

/// What the step of a flow did with a typed contact, for the audit event and the answer.
struct Requested {
    refused: Option<ForgotError>,
    /// The account the audit event names.
    subject_id: Option<String>,
    /// The forgot-password flow to keep when nothing was refused.
    recovery: Option<Recovery>,
}

/// Both contact forms: the typed contact, the per-address throttle, the flow's step, the
/// audit event, and the answer padded to the same time whether or not an account uses it.
async fn contact_request(
    flow: Forgot,
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> HttpResponse {
    let started = std::time::Instant::now();
    let (form, tx, lang) = match tx_form(state, req, body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let (contact, channel) = match contact_field(&form) {
        Ok(v) => v,
        Err(typed) => {
            return forgot_page(
                lang,
                flow,
                ForgotStep::Contact,
                &tx,
                &typed,
                Some(ForgotError::BadContact),
                StatusCode::BAD_REQUEST,
            )
        }
    };
    let run = async {
        let ip = super::login::ip_of(state, req).unwrap_or_default();
        if let Attempt::Refused { first } = throttle(state).ip_attempt_counted(&ip).await? {
            // The window's first refusal is audited; the rest of a flood writes nothing.
            if first {
                audit(
                    state,
                    req,
                    &tx,
                    "recovery.throttled",
                    None,
                    serde_json::json!({}),
                )
                .await?;
            }
            return Ok(Some(ForgotError::TooMany));
        }
        let index = state
            .store
            .vault()?
            .blind_index(&format!("recover:{contact}"));
        let done = match flow {
            Forgot::Password => send_code(state, &tx, contact, channel, index, lang).await?,
            Forgot::Login => send_login(state, contact, channel, index, lang).await?,
        };
        let detail = serde_json::json!({
            "flow": match flow {
                Forgot::Password => "password",
                Forgot::Login => "login",
            },
            "channel": channel.as_str(),
            "refused": done.refused.map(|r| format!("{r:?}")),
        });
        audit(
            state,
            req,
            &tx,
            "recovery.requested",
            done.subject_id,
            detail,
        )
        .await?;
        if let (None, Some(rec)) = (done.refused, &done.recovery) {
            save(state, &tx, rec).await?;
        }
        Ok::<_, OAuthError>(done.refused)
    };
    let result = run.await;
    pad(state, started).await;
    match result {
        Ok(None) => match flow {
            Forgot::Password => see_other(&format!("/recover/password/code?tx={}", tx.id)),
            Forgot::Login => {
                let link = format!("/login?tx={}", tx.id);
                let body = NoticePage {
                    lang,
                    notice: Notice::LoginSent,
                    link: Some(&link),
                }
                .render();
                html(StatusCode::OK, body)
            }
        },
        Ok(Some(err)) => forgot_page(
            lang,
            flow,
            ForgotStep::Contact,
            &tx,
            "",
            Some(err),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(e) => page_failure(lang, &e),
    }
}

/// Forgot password: a code to the contact when an account uses it (see [`issue_and_send`]).
async fn send_code(
    state: &AppState,
    tx: &LoginTx,
    contact: String,
    channel: CodeChannel,
    contact_index: String,
    lang: Lang,
) -> Result<Requested, OAuthError> {
    let subject_id = account_of(state, &contact).await?;
    let rec = Recovery {
        v: 1,
        subject_id: subject_id.clone(),
        channel,
        contact_index,
        verified: false,
    };
    let refused = issue_and_send(state, tx, &rec, Some(contact), lang).await?;
    Ok(Requested {
        refused,
        subject_id,
        recovery: Some(rec),
    })
}

/// Forgot login: the logins of the accounts using the contact, sent to it.
async fn send_login(
    state: &AppState,
    contact: String,
    channel: CodeChannel,
    index: String,
    lang: Lang,
) -> Result<Requested, OAuthError> {
    // The same cooldown and budget as codes: one message a minute, five an hour.
    let issued = super::otp::codes(state)?
        .issue(
            &format!("forgot-login:{index}"),
            &format!("contact:{index}"),
            channel,
            &contact,
            state.now(),
        )
        .await?;
    let refused = issued.err().map(refusal);
    let subjects = accounts_of(state, &contact).await?;
    if let (None, false) = (refused, subjects.is_empty()) {
        let logins: Vec<&str> = subjects.iter().map(|s| s.login.as_str()).collect();
        let logins = logins.join(", ");
        let text = match lang {
            Lang::En => format!(
                "Your Propusk login: {logins}. You can also sign in with your confirmed phone, e-mail, SNILS or INN."
            ),
            Lang::Ru => format!(
                "Ваш логин в Пропуске: {logins}. Войти можно также по подтверждённым телефону, почте, СНИЛС или ИНН."
            ),
        };
        let m = NewMessage::new(channel.notify(), contact, "forgot_login", text)
            .with_subject(match lang {
                Lang::En => "Your login",
                Lang::Ru => "Ваш логин",
            })
            .with_locale(lang.code());
        let now = state.now();
        state.store.call(move |st| st.enqueue(&m, now)).await?;
    }
    Ok(Requested {
        refused,
        subject_id: subjects.into_iter().next().map(|s| s.id),
        recovery: None,
    })
}

/// The page's words for a refused code or message.
fn refusal(r: Refused) -> ForgotError {
    match r {
        Refused::TooSoon { wait_secs } => ForgotError::TooSoon(wait_secs),
        Refused::TooMany => ForgotError::TooMany,
    }
}

/// Makes a code (cooldown and budget per typed contact) and sends it when the account
/// exists; for no account the code is made and dropped, so both cost the same.
async fn issue_and_send(
    state: &AppState,
    tx: &LoginTx,
    rec: &Recovery,
    contact: Option<String>,
    lang: Lang,
) -> Result<Option<ForgotError>, OAuthError> {
    let to = contact.unwrap_or_default();
    let issued = super::otp::codes(state)?
        .issue(
            &scope(tx),
            &format!("contact:{}", rec.contact_index),
            rec.channel,
            &to,
            state.now(),
        )
        .await?;
    match issued {
        Ok(code) => {
            if rec.subject_id.is_some() {
                super::otp::send(state, rec.channel, to, &code, Purpose::Recovery, lang).await?;
            }
            Ok(None)
        }
        Err(r) => Ok(Some(refusal(r))),
    }
}

/// `GET /recover/password/code?tx=`.
pub async fn code_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (tx, lang) = match query_tx(&state, &req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match load(&state, &tx).await {
        Ok(Some(_)) => forgot_page(
            lang,
            Forgot::Password,
            ForgotStep::Code,
            &tx,
            "",
            None,
            StatusCode::OK,
        ),
        Ok(None) => expired(lang),
        Err(e) => page_failure(lang, &e),
    }
}

/// `POST /recover/password/resend` (`tx`, `csrf`): another code, after the cooldown.
pub async fn resend(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let started = std::time::Instant::now();
    let (_, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let run = async {
        let Some(rec) = load(&state, &tx).await? else {
            return Ok(None);
        };
        let contact = match &rec.subject_id {
            Some(sub) => {
                let sub = sub.clone();
                state
                    .store
                    .call(move |s| s.find_subject(&sub))
                    .await?
                    .and_then(|s| contact_by_index(&state, &s, &rec.contact_index))
            }
            None => None,
        };
        let refused = issue_and_send(&state, &tx, &rec, contact, lang).await?;
        let kind = if refused.is_some() {
            "recovery.resend_refused"
        } else {
            "recovery.resent"
        };
        let detail = serde_json::json!({ "refused": refused.map(|r| format!("{r:?}")) });
        audit(&state, &req, &tx, kind, rec.subject_id.clone(), detail).await?;
        Ok::<_, OAuthError>(Some(refused))
    };
    let result = run.await;
    pad(&state, started).await;
    match result {
        Ok(None) => expired(lang),
        Ok(Some(None)) => see_other(&format!("/recover/password/code?tx={}", tx.id)),
        Ok(Some(Some(err))) => forgot_page(
            lang,
            Forgot::Password,
            ForgotStep::Code,
            &tx,
            "",
            Some(err),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(e) => page_failure(lang, &e),
    }
}

/// `POST /recover/password/code` (`tx`, `csrf`, `code`).
pub async fn code_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let code = form.get("code").ok().flatten().unwrap_or("").to_string();
    let run = async {
        let Some(mut rec) = load(&state, &tx).await? else {
            return Ok(Err(None));
        };
        let ip = super::login::ip_of(&state, &req).unwrap_or_default();
        if !throttle(&state).ip_attempt(&ip).await? {
            return Ok(Err(Some(ForgotError::TooMany)));
        }
        let verdict = if code.len() > 64 {
            Verdict::Malformed
        } else {
            super::otp::codes(&state)?
                .verify(&scope(&tx), &code, state.now())
                .await?
        };
        // For a contact no account uses, no code can be right.
        let verdict = match (verdict, &rec.subject_id) {
            (Verdict::Right, None) => Verdict::Expired,
            (v, _) => v,
        };
        let err = match verdict {
            Verdict::Right => None,
            Verdict::Wrong { left } => Some(ForgotError::WrongCode(left)),
            Verdict::Exhausted | Verdict::Expired => Some(ForgotError::Expired),
            Verdict::Used => Some(ForgotError::Used),
            Verdict::Malformed => Some(ForgotError::Malformed),
        };
        let sub = rec.subject_id.clone();
        match err {
            None => {
                rec.verified = true;
                save(&state, &tx, &rec).await?;
                let detail = serde_json::json!({ "flow": "password" });
                audit(&state, &req, &tx, "recovery.code_confirmed", sub, detail).await?;
                Ok(Ok(()))
            }
            Some(e) => {
                let detail = serde_json::json!({ "flow": "password", "reason": format!("{e:?}") });
                audit(&state, &req, &tx, "recovery.code_failure", sub, detail).await?;
                Ok::<_, OAuthError>(Err(Some(e)))
            }
        }
    };
    match run.await {
        Ok(Ok(())) => see_other(&format!("/recover/password/new?tx={}", tx.id)),
        Ok(Err(None)) => expired(lang),
        Ok(Err(Some(err))) => {
            let status = match err {
                ForgotError::TooMany => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            };
            forgot_page(
                lang,
                Forgot::Password,
                ForgotStep::Code,
                &tx,
                "",
                Some(err),
                status,
            )
        }
        Err(e) => page_failure(lang, &e),
    }
}

fn reset_page(lang: Lang, tx: &LoginTx, problems: &[PasswordProblem]) -> HttpResponse {
    let body = PasswordPage {
        lang,
        purpose: PasswordPurpose::Reset,
        action: "/recover/password/new",
        hidden: &[("tx", &tx.id)],
        csrf: &tx.csrf,
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

/// The verified recovery of this transaction, with its account.
async fn verified(state: &AppState, tx: &LoginTx) -> Result<Option<String>, OAuthError> {
    Ok(load(state, tx)
        .await?
        .filter(|r| r.verified)
        .and_then(|r| r.subject_id))
}

/// `GET /recover/password/new?tx=`.
pub async fn new_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let (tx, lang) = match query_tx(&state, &req).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match verified(&state, &tx).await {
        Ok(Some(_)) => reset_page(lang, &tx, &[]),
        Ok(None) => expired(lang),
        Err(e) => page_failure(lang, &e),
    }
}

/// `POST /recover/password/new` (`tx`, `csrf`, `new_password`, `confirm`): every session
/// ends, every refresh token is revoked, the owner is alerted; then sign in again.
pub async fn new_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let field = |n: &str| form.get(n).ok().flatten().unwrap_or("").to_string();
    let (new, confirm) = (field("new_password"), field("confirm"));
    let run = async {
        let Some(sub) = verified(&state, &tx).await? else {
            return Ok(Err(None));
        };
        let Some(subject) = state.store.call(move |s| s.find_subject(&sub)).await? else {
            return Ok(Err(None));
        };
        let problems = super::password::check_new(&state, &subject, &new, &confirm);
        if !problems.is_empty() {
            return Ok(Err(Some(problems)));
        }
        // The flow is spent before the password is written: a second submit finds nothing.
        if state.eph.take(&rec_key(&tx)).await?.is_none() {
            return Ok(Err(None));
        }
        super::password::save(
            &state,
            &req,
            &subject,
            new.clone(),
            None,
            "password.reset",
            Some(tx.request.client_id.clone()),
            serde_json::json!({ "by": "recovery" }),
        )
        .await?;
        Ok::<_, OAuthError>(Ok(()))
    };
    match run.await {
        Ok(Ok(())) => see_other(&format!("/login?tx={}&notice=reset", tx.id)),
        Ok(Err(Some(problems))) => reset_page(lang, &tx, &problems),
        Ok(Err(None)) => expired(lang),
        Err(e) => page_failure(lang, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_phones_or_emails() {
        assert_eq!(
            parse_contact("+7 (900) 123-45-67"),
            Some(("+79001234567".into(), CodeChannel::Sms))
        );
        assert_eq!(
            parse_contact(" Ivan@Example.RU "),
            Some(("ivan@example.ru".into(), CodeChannel::Email))
        );
        assert_eq!(
            parse_contact("112-233-445 95"),
            None,
            "a SNILS is no contact"
        );
        assert_eq!(parse_contact("nonsense"), None);
        assert_eq!(flow_of("/recover/login"), Forgot::Login);
    }
}
