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
//!
//! By flow: `signin` (signing in for the page), `page` (the page and its factor list),
//! `confirm` (the recent confirmation), `totp`, `recovery_codes`, `webauthn` (enrolment of
//! keys), `remove`, and `push` (the mobile app registering a push device, by bearer token).

mod confirm;
mod page;
mod push;
mod recovery_codes;
mod remove;
mod signin;
mod totp;
mod webauthn;

pub use confirm::{confirm, confirm_key, confirm_key_start};
pub use page::security_page;
pub use push::register as register_push_device;
pub use recovery_codes::recovery_codes;
pub use remove::remove;
pub use signin::{after_sign_in, is_account_tx, sign_in_again};
pub use totp::{totp_confirm, totp_start};
pub use webauthn::{webauthn_finish, webauthn_start};

pub(super) use confirm::{elevated, verify_key_assertion};
use signin::start_sign_in;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{ErrorKind, Lang};

use super::cookies;
use super::error::{lang_of, page, page_failure};
use super::passkey::json_refusal;
use crate::audit::AuditEvent;
use crate::domain::SsoSession;
use crate::notify::{Channel, NewMessage, OutboxStore};
use crate::protocol::params::Params;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{AuditStore, SubjectStore};

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

/// The CSRF token of a signed-in page's forms: a keyed hash of the session cookie under the
/// page's label (`account`, `profile`); stateless, and a page of another site cannot know it.
fn csrf_token(state: &AppState, req: &HttpRequest, label: &str) -> Option<String> {
    let value = cookies::read(req, &cookies::session_name(state))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, state.csrf_secret.as_ref());
    let tag = ring::hmac::sign(&key, format!("{label}:{value}").as_bytes());
    Some(keys::sha256_b64url(tag.as_ref()))
}

/// An audit event of the signed-in person `sub`.
pub(in crate::http) fn event(
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

/// The signed-in person of this request, with the page's CSRF token; or the answer to give.
pub(in crate::http) struct Ctx {
    pub(in crate::http) session: SsoSession,
    pub(in crate::http) csrf: String,
    pub(in crate::http) lang: Lang,
}

/// Which signed-in page asks: its CSRF label and where a sign-in for it comes back to.
#[derive(Clone, Copy)]
pub(in crate::http) struct SignedInPage {
    pub(in crate::http) csrf_label: &'static str,
    pub(in crate::http) path: &'static str,
}

/// The security page.
const SECURITY: SignedInPage = SignedInPage {
    csrf_label: "account",
    path: PAGE,
};

/// The context of a signed-in page; without a session, a sign-in that comes back to it.
pub(in crate::http) async fn signed_in_context(
    state: &AppState,
    req: &HttpRequest,
    on: SignedInPage,
) -> Result<Ctx, HttpResponse> {
    let lang = lang_of(req, None);
    let session = match current_session(state, req).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(start_sign_in(state, req, lang, on.path, false).await),
        Err(e) => return Err(page_failure(lang, &e)),
    };
    let Some(csrf) = csrf_token(state, req, on.csrf_label) else {
        return Err(start_sign_in(state, req, lang, on.path, false).await);
    };
    Ok(Ctx {
        session,
        csrf,
        lang,
    })
}

/// The context of a signed-in page's form post: the session, and the form with its CSRF
/// token checked.
pub(in crate::http) async fn signed_in_form(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
    on: SignedInPage,
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
    let ctx = signed_in_context(state, req, on).await?;
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

async fn context(state: &AppState, req: &HttpRequest) -> Result<Ctx, HttpResponse> {
    signed_in_context(state, req, SECURITY).await
}

/// The context of a form post of the security page.
async fn form_context(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(Ctx, Params), HttpResponse> {
    signed_in_form(state, req, body, SECURITY).await
}

/// The per-address and per-session limit on WebAuthn ceremony starts (the sign-in pages'
/// limit, `[lockout] ceremony_*`), counted in the ephemeral store.
async fn ceremony_allowed(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
) -> Result<(), HttpResponse> {
    let binding = format!("sid:{}", ctx.session.sid);
    super::passkey::start_allowed(state, req, ctx.lang, &binding, None).await
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
    let csrf = csrf_token(state, req, SECURITY.csrf_label).unwrap_or_default();
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
