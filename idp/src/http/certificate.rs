//! `/account/profile/certificate`: a standard account becomes confirmed by a qualified
//! electronic signature (issue 5; `registry/certificate.rs` checks the signature). GET draws a
//! one-time challenge (ephemeral store, bound to the SSO session, 10 minutes) and shows it;
//! POST takes the challenge back (once), checks the detached CMS signature over it, and on
//! success raises the level with its record (`certificate`, issuer and serial), the audit
//! event in the same transaction, and a notice to the owner. Every refusal is audited
//! (`identity.certificate_refused` with the reason) and explained on the page.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{CertificatePage, CertificateState, Lang};

use super::alerts::{alert_owner, Alert};
use super::error::{html, page_failure};
use super::profile::{context, Ctx};
use crate::audit::AuditEvent;
use crate::domain::person::{AccountLevel, ConfirmMethod, Confirmation, Person};
use crate::domain::Subject;
use crate::protocol::params::Params;
use crate::protocol::OAuthError;
use crate::registry::certificate::{check_holder, CertRefusal, QualifiedRoots};
use crate::state::AppState;
use crate::store::{AuditStore, PersonStore, SubjectStore};

pub(super) const PAGE: &str = "/account/profile/certificate";

/// How long a challenge may be signed.
const CHALLENGE_TTL: Duration = Duration::from_secs(600);

fn challenge_key(sid: &str) -> String {
    format!("certc:{sid}")
}

/// The trusted roots, when this way is offered (read per use: a renewed bundle applies
/// without a restart; startup already checked that it parses).
fn roots(state: &AppState) -> Option<QualifiedRoots> {
    let path = state.cfg.identity.qualified_ca_file.as_ref()?;
    match QualifiedRoots::from_pem_file(path) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = e.as_str(), "identity.qualified_ca_file unreadable");
            None
        }
    }
}

/// Why the account cannot use this page now, if it cannot.
fn not_ready(person: &Person) -> Option<&'static str> {
    match person.level {
        AccountLevel::Confirmed => Some("already_confirmed"),
        AccountLevel::Simplified => Some("needs_standard"),
        AccountLevel::Standard if person.snils.is_none() => Some("needs_standard"),
        AccountLevel::Standard => None,
    }
}

async fn load(state: &AppState, ctx: &Ctx) -> Result<(Subject, Person), OAuthError> {
    let sub = ctx.session.subject_id.clone();
    let found = state
        .store
        .call(move |s| Ok((s.find_subject(&sub)?, s.find_person(&sub)?)))
        .await?;
    match found {
        (Some(s), Some(p)) => Ok((s, p)),
        _ => Err(OAuthError::invalid_request("the account no longer exists")),
    }
}

fn render(lang: Lang, status: StatusCode, csrf: &str, state: CertificateState<'_>) -> HttpResponse {
    html(status, CertificatePage { lang, csrf, state }.render())
}

/// A new challenge for this session, replacing any earlier one.
async fn new_challenge(
    state: &AppState,
    ctx: &Ctx,
    subject: &Subject,
) -> Result<String, OAuthError> {
    let nonce = keys::random_token(18).map_err(OAuthError::server)?;
    let text = format!(
        "Propusk: подтверждение личности / identity confirmation\nOID: {}\nNonce: {nonce}\nTime: {}\n",
        subject.oid,
        state.now().format("%Y-%m-%dT%H:%M:%SZ"),
    );
    state
        .eph
        .put(
            &challenge_key(&ctx.session.sid),
            text.as_bytes(),
            CHALLENGE_TTL,
        )
        .await?;
    Ok(text)
}

/// The form with a fresh challenge (and the reason the last attempt failed).
async fn form(
    state: &AppState,
    ctx: &Ctx,
    subject: &Subject,
    status: StatusCode,
    problem: Option<&str>,
) -> HttpResponse {
    match new_challenge(state, ctx, subject).await {
        Ok(challenge) => render(
            ctx.lang,
            status,
            &ctx.csrf,
            CertificateState::Form {
                challenge: &challenge,
                problem,
            },
        ),
        Err(e) => page_failure(ctx.lang, &e),
    }
}

/// `GET /account/profile/certificate`.
pub async fn page_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let ctx = match context(&state, &req).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (subject, person) = match load(&state, &ctx).await {
        Ok(v) => v,
        Err(e) => return page_failure(ctx.lang, &e),
    };
    if roots(&state).is_none() {
        return render(
            ctx.lang,
            StatusCode::OK,
            "",
            CertificateState::Unavailable("off"),
        );
    }
    if let Some(why) = not_ready(&person) {
        return render(
            ctx.lang,
            StatusCode::OK,
            "",
            CertificateState::Unavailable(why),
        );
    }
    form(&state, &ctx, &subject, StatusCode::OK, None).await
}

async fn audit_refusal(state: &AppState, subject_id: &str, reason: &str) -> Result<(), OAuthError> {
    let e = AuditEvent {
        at: state.now(),
        kind: "identity.certificate_refused".into(),
        subject_id: Some(subject_id.to_string()),
        client_id: None,
        ip: None,
        detail: serde_json::json!({ "reason": reason }),
    };
    state.store.call(move |s| s.append_audit(&e)).await?;
    Ok(())
}

/// A refused attempt: audited, then the form again with a new challenge and the reason.
async fn refuse(state: &AppState, ctx: &Ctx, subject: &Subject, reason: &str) -> HttpResponse {
    if let Err(e) = audit_refusal(state, &subject.id, reason).await {
        return page_failure(ctx.lang, &e);
    }
    form(state, ctx, subject, StatusCode::BAD_REQUEST, Some(reason)).await
}

/// `POST /account/profile/certificate` (`csrf`, `signature`).
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let ctx = match context(&state, &req).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let form_data = Params::parse(&body);
    let csrf = form_data.get("csrf").ok().flatten().unwrap_or("");
    if !keys::constant_time_eq(csrf.as_bytes(), ctx.csrf.as_bytes()) {
        return page_failure(
            lang,
            &OAuthError::invalid_request("the form is stale; open the page again"),
        );
    }
    let signature = form_data
        .get("signature")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let (subject, person) = match load(&state, &ctx).await {
        Ok(v) => v,
        Err(e) => return page_failure(lang, &e),
    };
    let Some(roots) = roots(&state) else {
        return render(
            lang,
            StatusCode::OK,
            "",
            CertificateState::Unavailable("off"),
        );
    };
    if let Some(why) = not_ready(&person) {
        return render(lang, StatusCode::OK, "", CertificateState::Unavailable(why));
    }
    // The challenge is spent by this attempt, right or wrong.
    let challenge = match state.eph.take(&challenge_key(&ctx.session.sid)).await {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &e.into()),
    };
    let Some(challenge) = challenge else {
        return refuse(&state, &ctx, &subject, "expired_challenge").await;
    };
    let checked = roots
        .verify(&challenge, &signature, state.now())
        .and_then(|holder| {
            let snils = person.snils.as_deref().ok_or(CertRefusal::NoSnils)?;
            check_holder(&holder, snils, subject.profile.family_name.as_deref())?;
            Ok(holder)
        });
    let holder = match checked {
        Ok(h) => h,
        Err(r) => return refuse(&state, &ctx, &subject, r.code()).await,
    };
    let now = state.now();
    let confirmation = Confirmation {
        by: format!("certificate: {}, serial {}", holder.issuer, holder.serial),
        method: ConfirmMethod::Certificate,
        at: now,
    };
    let event = AuditEvent {
        at: now,
        kind: "user.confirmed".into(),
        subject_id: Some(subject.id.clone()),
        client_id: None,
        ip: None,
        detail: serde_json::json!({
            "actor": "self",
            "method": ConfirmMethod::Certificate.as_str(),
            "issuer": holder.issuer,
            "serial": holder.serial,
        }),
    };
    let sub = subject.id.clone();
    let saved = state
        .store
        .call(move |s| s.set_level(&sub, AccountLevel::Confirmed, Some(&confirmation), &event))
        .await;
    if let Err(e) = saved {
        return page_failure(lang, &e.into());
    }
    if let Err(e) = alert_owner(&state, &subject.id, Alert::ConfirmedByCertificate).await {
        // The level is saved; a lost notice is logged, not shown as a failure.
        tracing::warn!(error = %e, "confirmation notice not queued");
    }
    render(lang, StatusCode::OK, "", CertificateState::Done)
}
