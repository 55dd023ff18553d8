//! One-time codes by SMS, voice call and e-mail as the second factor of a sign-in: the
//! "send me a code" action of the second-factor page, and the check of an entered code.
//! Codes go out through the notification outbox; the challenge (a keyed hash) is in the
//! ephemeral store under the scope `login:<tx>` (`authn/otp.rs`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{Factor, FactorError, Lang};

use super::error::page_failure;
use super::login::{audit, expired, see_other, tx_form};
use crate::authn::otp::{self, CodeChannel, Codes, Purpose, Refused, Verdict};
use crate::authn::transaction::LoginTx;
use crate::domain::Subject;
use crate::notify::{NewMessage, OutboxStore};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{SigninStore, SubjectStore};

/// The code service of this node.
pub(super) fn codes(state: &AppState) -> Result<Codes<'_>, OAuthError> {
    Ok(Codes {
        eph: state.eph.as_ref(),
        cfg: &state.cfg.otp,
        vault: state.store.vault()?,
    })
}

/// Scope of the codes of one sign-in.
pub(super) fn login_scope(tx: &LoginTx) -> String {
    format!("login:{}", tx.id)
}

/// The factor of a code channel, and back.
pub fn factor_of(c: CodeChannel) -> Option<Factor> {
    match c {
        CodeChannel::Sms => Some(Factor::Sms),
        CodeChannel::Voice => Some(Factor::Voice),
        CodeChannel::Email => Some(Factor::Email),
        CodeChannel::Push => None,
    }
}

pub fn channel_of(f: Factor) -> Option<CodeChannel> {
    match f {
        Factor::Sms => Some(CodeChannel::Sms),
        Factor::Voice => Some(CodeChannel::Voice),
        Factor::Email => Some(CodeChannel::Email),
        _ => None,
    }
}

/// Where a code of `channel` goes for this person: the confirmed phone (SMS, voice) or the
/// confirmed e-mail. Push needs a registered device, which the profile does not hold yet.
pub fn contact(subject: &Subject, channel: CodeChannel) -> Option<String> {
    let p = &subject.profile;
    match channel {
        CodeChannel::Sms | CodeChannel::Voice => {
            p.phone_number.clone().filter(|_| p.phone_number_verified)
        }
        CodeChannel::Email => p.email.clone().filter(|_| p.email_verified),
        CodeChannel::Push => None,
    }
}

/// The code channels this person can use, each with its masked contact.
pub fn channels(subject: &Subject) -> Vec<(CodeChannel, String)> {
    [CodeChannel::Sms, CodeChannel::Voice, CodeChannel::Email]
        .into_iter()
        .filter_map(|c| contact(subject, c).map(|to| (c, otp::mask(c, &to))))
        .collect()
}

pub(super) async fn find_subject(
    state: &AppState,
    subject_id: &str,
) -> Result<Option<Subject>, OAuthError> {
    let sub = subject_id.to_string();
    Ok(state.store.call(move |s| s.find_subject(&sub)).await?)
}

/// Whether the person can confirm a sign-in with a code by SMS, voice or e-mail.
pub async fn has_code_channel(state: &AppState, subject_id: &str) -> Result<bool, OAuthError> {
    Ok(find_subject(state, subject_id)
        .await?
        .is_some_and(|s| !channels(&s).is_empty()))
}

/// The second factor the person used last (`None` when none was recorded).
pub async fn last_factor(state: &AppState, subject_id: &str) -> Result<Option<Factor>, OAuthError> {
    let sub = subject_id.to_string();
    let st = state.store.call(move |s| s.signin_state(&sub)).await?;
    Ok(st.last_factor.as_deref().and_then(Factor::from_value))
}

/// Records the factor used, so that it is offered first next time.
pub async fn remember_factor(
    state: &AppState,
    subject_id: &str,
    factor: Factor,
) -> Result<(), OAuthError> {
    let (sub, now) = (subject_id.to_string(), state.now());
    let value = factor.value();
    state
        .store
        .call(move |s| s.set_last_factor(&sub, value, now))
        .await?;
    Ok(())
}

/// Queues a message with `code` to `to` (the outbox seals recipient and text).
pub(super) async fn send(
    state: &AppState,
    channel: CodeChannel,
    to: String,
    code: &str,
    purpose: Purpose,
    lang: Lang,
) -> Result<(), OAuthError> {
    let locale = lang.code();
    let text = otp::message_text(code, purpose, locale, state.cfg.otp.code_ttl_secs);
    let subject = match (purpose, lang) {
        (Purpose::SignIn, Lang::Ru) => "Код для входа",
        (Purpose::SignIn, Lang::En) => "Sign-in code",
        (Purpose::Recovery, Lang::Ru) => "Код для восстановления пароля",
        (Purpose::Recovery, Lang::En) => "Password reset code",
    };
    let message = NewMessage::new(channel.notify(), to, "otp", text)
        .with_subject(subject)
        .with_locale(locale);
    let now = state.now();
    state.store.call(move |s| s.enqueue(&message, now)).await?;
    Ok(())
}

/// `POST /login/otp/send` (`tx`, `csrf`, `channel` = sms | voice | email; other fields of
/// the second-factor form are ignored): sends a code to
/// the person's confirmed contact, unless one was sent less than a minute ago or the hourly
/// budget is used up (a precise answer and an audit event either way).
pub async fn send_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(pending) = tx.pending.clone() else {
        return expired(lang);
    };
    let render = |error: FactorError, status: StatusCode| {
        let (state, tx, pending) = (&state, &tx, &pending);
        async move {
            super::second_factor::render_status(state, lang, tx, pending, Some(error), status).await
        }
    };
    let channel = form
        .get("channel")
        .ok()
        .flatten()
        .and_then(Factor::from_value)
        .and_then(channel_of);
    let subject = match find_subject(&state, &pending.subject_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return expired(lang),
        Err(e) => return page_failure(lang, &e),
    };
    let Some((channel, to)) = channel.and_then(|c| contact(&subject, c).map(|to| (c, to))) else {
        return render(FactorError::Malformed, StatusCode::BAD_REQUEST).await;
    };
    let result = async {
        let issued = codes(&state)?
            .issue(
                &login_scope(&tx),
                &format!("sub:{}", pending.subject_id),
                channel,
                &to,
                state.now(),
            )
            .await?;
        let sub = Some(pending.subject_id.clone());
        match issued {
            Ok(code) => {
                send(&state, channel, to, &code, Purpose::SignIn, lang).await?;
                let detail = serde_json::json!({ "channel": channel.as_str() });
                audit(&state, &req, &tx, "otp.sent", sub, detail).await?;
                Ok(None)
            }
            Err(refused) => {
                let (reason, err) = match refused {
                    Refused::TooSoon { wait_secs } => ("too_soon", FactorError::TooSoon(wait_secs)),
                    Refused::TooMany => ("too_many", FactorError::TooManySends),
                };
                let detail = serde_json::json!({ "channel": channel.as_str(), "reason": reason });
                audit(&state, &req, &tx, "otp.send_refused", sub, detail).await?;
                Ok::<_, OAuthError>(Some(err))
            }
        }
    };
    match result.await {
        Ok(None) => see_other(&format!("/login/second-factor?tx={}", tx.id)),
        Ok(Some(err)) => render(err, StatusCode::TOO_MANY_REQUESTS).await,
        Err(e) => page_failure(lang, &e),
    }
}

/// Checks a code sent for this sign-in: the channel it went through, or why not.
pub(super) async fn check(
    state: &AppState,
    tx: &LoginTx,
    code: &str,
) -> Result<Result<CodeChannel, FactorError>, OAuthError> {
    let codes = codes(state)?;
    let scope = login_scope(tx);
    let channel = codes.current(&scope).await?.map(|c| c.channel);
    Ok(match codes.verify(&scope, code, state.now()).await? {
        Verdict::Right => channel.ok_or(FactorError::UsedCode),
        Verdict::Wrong { left } => Err(FactorError::WrongLeft(left)),
        Verdict::Exhausted => Err(FactorError::WrongLeft(0)),
        Verdict::Expired => Err(FactorError::Expired),
        Verdict::Used => Err(FactorError::UsedCode),
        Verdict::Malformed => Err(FactorError::Malformed),
    })
}
