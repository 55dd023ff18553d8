//! One-time codes by SMS, voice call, e-mail and push (to the person's registered mobile
//! app) as the second factor of a sign-in: the "send me a code" action of the second-factor
//! page, and the check of an entered code. Codes go out through the notification outbox; the
//! challenge (a keyed hash) is in the ephemeral store under the scope `login:<tx>`
//! (`authn/otp.rs`). A code by push goes to one device, the one used last (else the newest),
//! with its token as the recipient (`docs/design/push.md`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{Factor, FactorError, Lang};

use super::error::page_failure;
use super::login::{audit, expired, see_other, tx_form};
use crate::authn::otp::{self, CodeChannel, Codes, Purpose, Refused, Shown, Verdict};
use crate::authn::transaction::LoginTx;
use crate::domain::Subject;
use crate::notify::{push_recipient, NewMessage, OutboxStore};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{PushDevice, PushDeviceStore, SigninStore, SubjectStore};

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
        CodeChannel::Push => Some(Factor::Push),
    }
}

pub fn channel_of(f: Factor) -> Option<CodeChannel> {
    match f {
        Factor::Sms => Some(CodeChannel::Sms),
        Factor::Voice => Some(CodeChannel::Voice),
        Factor::Email => Some(CodeChannel::Email),
        Factor::Push => Some(CodeChannel::Push),
        _ => None,
    }
}

/// Where a code of `channel` goes for this person: the confirmed phone (SMS, voice) or the
/// confirmed e-mail. Push goes to a registered device ([`push_device`]), not to a contact.
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

/// The device a code by push goes to: the person's device used last, else the newest.
pub async fn push_device(
    state: &AppState,
    subject_id: &str,
) -> Result<Option<PushDevice>, OAuthError> {
    let sub = subject_id.to_string();
    let devices = state.store.call(move |s| s.list_push_devices(&sub)).await?;
    Ok(PushDevice::preferred(&devices).cloned())
}

/// The code channels of [`channels`], and push when the person has a device (shown by its
/// name).
pub async fn code_channels(
    state: &AppState,
    subject: &Subject,
) -> Result<Vec<(CodeChannel, String)>, OAuthError> {
    let mut out = channels(subject);
    if let Some(d) = push_device(state, &subject.id).await? {
        out.push((CodeChannel::Push, d.name));
    }
    Ok(out)
}

/// Whether the person can confirm a sign-in with a code by SMS, voice, e-mail or push.
pub async fn has_code_channel(state: &AppState, subject_id: &str) -> Result<bool, OAuthError> {
    match find_subject(state, subject_id).await? {
        Some(s) => Ok(!code_channels(state, &s).await?.is_empty()),
        None => Ok(false),
    }
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

/// `POST /login/otp/send` (`tx`, `csrf`, `channel` = sms | voice | email | push; other fields of
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
    // No code is sent for a sign-in that needs a passkey (none could finish it).
    if pending.needs_passkey() {
        return super::login::see_other(&format!("{}?tx={}", super::step_up::PAGE, tx.id));
    }
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
    let target = match channel {
        Some(CodeChannel::Push) => match push_device(&state, &pending.subject_id).await {
            Ok(d) => d.map(|d| {
                let shown = Shown {
                    masked_to: d.name,
                    device: Some(d.id),
                };
                let to = push_recipient(d.platform.as_str(), d.token.expose());
                (CodeChannel::Push, to, shown)
            }),
            Err(e) => return page_failure(lang, &e),
        },
        Some(c) => contact(&subject, c).map(|to| {
            let shown = Shown {
                masked_to: otp::mask(c, &to),
                device: None,
            };
            (c, to, shown)
        }),
        None => None,
    };
    let Some((channel, to, shown)) = target else {
        return render(FactorError::Malformed, StatusCode::BAD_REQUEST).await;
    };
    let result = async {
        let issued = codes(&state)?
            .issue_shown(
                &login_scope(&tx),
                &format!("sub:{}", pending.subject_id),
                channel,
                shown,
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
    let waiting = codes.current(&scope).await?;
    let channel = waiting.as_ref().map(|c| c.channel);
    Ok(match codes.verify(&scope, code, state.now()).await? {
        Verdict::Right => {
            // The device's "last used" on the security page.
            if let Some(id) = waiting.and_then(|c| c.device) {
                let now = state.now();
                state
                    .store
                    .call(move |s| s.touch_push_device(&id, now))
                    .await?;
            }
            channel.ok_or(FactorError::UsedCode)
        }
        Verdict::Wrong { left } => Err(FactorError::WrongLeft(left)),
        Verdict::Exhausted => Err(FactorError::WrongLeft(0)),
        Verdict::Expired => Err(FactorError::Expired),
        Verdict::Used => Err(FactorError::UsedCode),
        Verdict::Malformed => Err(FactorError::Malformed),
    })
}
