//! The second-factor step of a sign-in: authenticator-app codes and recovery codes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{Factor, FactorError, Lang, LoginError, SecondFactorPage};

use super::error::{html, lang_of, page_failure};
use super::login::{
    audit, expired, load_tx, render_login, see_other, signed_in, throttle, tx_form, tx_lang,
    tx_param,
};
use crate::authn::login::{self, Pending, MAX_CODE_FAILURES};
use crate::authn::transaction::LoginTx;
use crate::authn::{recovery, totp};
use crate::domain::{Credential, CredentialKind};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::CredentialStore;

async fn credentials(state: &AppState, subject_id: &str) -> Result<Vec<Credential>, OAuthError> {
    let sub = subject_id.to_string();
    Ok(state.store.call(move |s| s.list_credentials(&sub)).await?)
}

/// The second factors a subject can use now, in the order they are offered.
fn factors(creds: &[Credential]) -> Vec<Factor> {
    let mut out = Vec::new();
    let has = |k: CredentialKind| creds.iter().any(|c| c.kind == k && c.usable());
    if has(CredentialKind::Totp) {
        out.push(Factor::Totp);
    }
    if has(CredentialKind::Recovery) {
        out.push(Factor::RecoveryCode);
    }
    out
}

/// Whether the subject has set up a second factor (an app; recovery codes alone do not
/// turn two-factor sign-in on, they back it up).
pub async fn has_second_factor(state: &AppState, subject_id: &str) -> Result<bool, OAuthError> {
    let creds = credentials(state, subject_id).await?;
    Ok(creds
        .iter()
        .any(|c| c.kind == CredentialKind::Totp && c.usable()))
}

async fn render(
    state: &AppState,
    lang: Lang,
    tx: &LoginTx,
    pending: &Pending,
    error: Option<FactorError>,
) -> HttpResponse {
    let creds = match credentials(state, &pending.subject_id).await {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &e),
    };
    let factors = factors(&creds);
    let body = SecondFactorPage {
        lang,
        action: "/login/second-factor",
        tx: &tx.id,
        csrf: &tx.csrf,
        factors: &factors,
        error,
    }
    .render();
    html(StatusCode::OK, body)
}

pub async fn page_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    let tx = match load_tx(&state, &req, &tx_param(&req)).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return expired(lang),
        Err(e) => return page_failure(lang, &e),
    };
    let Some(pending) = tx.pending.clone() else {
        return expired(lang);
    };
    let step_up = pending.amr.iter().any(|a| a == "pwd") && pending.failures == 0;
    let lang = tx_lang(&req, &tx);
    let note =
        (step_up && tx.auth.is_none() && !login::strong_enough(&tx.request, "urn:propusk:acr:1"))
            .then_some(FactorError::StepUp);
    render(&state, lang, &tx, &pending, note).await
}

enum Checked {
    Right,
    Wrong(FactorError),
}

async fn check_code(
    state: &AppState,
    pending: &Pending,
    factor: Factor,
    code: &str,
) -> Result<Checked, OAuthError> {
    let now = state.now();
    match factor {
        Factor::Totp => {
            let creds = credentials(state, &pending.subject_id).await?;
            let Some(app) = creds
                .iter()
                .find(|c| c.kind == CredentialKind::Totp && c.usable())
            else {
                return Ok(Checked::Wrong(FactorError::WrongCode));
            };
            let Some(secret) = &app.secret else {
                return Ok(Checked::Wrong(FactorError::WrongCode));
            };
            if code.chars().filter(|c| !c.is_whitespace()).count() != totp::DIGITS {
                return Ok(Checked::Wrong(FactorError::Malformed));
            }
            let Some(step) = totp::check(secret.expose(), code, now) else {
                return Ok(Checked::Wrong(FactorError::WrongCode));
            };
            let id = app.id.clone();
            // Atomic: of two requests with the same code (or a replay) only one wins.
            let fresh = state
                .store
                .call(move |s| s.use_totp_step(&id, step))
                .await?;
            Ok(if fresh {
                Checked::Right
            } else {
                Checked::Wrong(FactorError::UsedCode)
            })
        }
        Factor::RecoveryCode => {
            let Some(normal) = recovery::normalize(code) else {
                return Ok(Checked::Wrong(FactorError::Malformed));
            };
            let hash = recovery::hash(state.store.vault()?, &normal);
            let sub = pending.subject_id.clone();
            let spent = state
                .store
                .call(move |s| s.use_recovery_code(&sub, &hash, now))
                .await?;
            Ok(if spent {
                Checked::Right
            } else {
                Checked::Wrong(FactorError::WrongCode)
            })
        }
    }
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, mut tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(mut pending) = tx.pending.clone() else {
        return expired(lang);
    };
    let ip = super::login::ip_of(&state, &req).unwrap_or_default();
    match throttle(&state).ip_attempt(&ip).await {
        Ok(true) => {}
        Ok(false) => return render_login(&state, &req, &tx, None, Some(LoginError::Locked)).await,
        Err(e) => return page_failure(lang, &e.into()),
    }
    let factor = form
        .get("method")
        .ok()
        .flatten()
        .and_then(Factor::from_value);
    let code = form.get("code").ok().flatten().unwrap_or("");
    let (Some(factor), true) = (factor, (1..=64).contains(&code.len())) else {
        return render(&state, lang, &tx, &pending, Some(FactorError::Malformed)).await;
    };
    let checked = match check_code(&state, &pending, factor, code).await {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &e),
    };
    let method = factor.value();
    let subject = Some(pending.subject_id.clone());
    let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
    match checked {
        Checked::Right => {
            let kind = if factor == Factor::RecoveryCode {
                let alert = super::alerts::Alert::RecoveryCodeUsed;
                if let Err(e) = super::alerts::alert_owner(&state, &pending.subject_id, alert).await
                {
                    return page_failure(lang, &e);
                }
                "recovery_code.used"
            } else {
                "login.second_factor"
            };
            let detail = serde_json::json!({ "method": method });
            if let Err(e) = audit(&state, &req, &tx, kind, subject, detail).await {
                return page_failure(lang, &e);
            }
            let (acr, amr) = login::after_second_factor(&pending, "otp");
            tx.pending = None;
            let (sub, remember) = (pending.subject_id.clone(), pending.remember);
            signed_in(&state, &req, lang, tx, &sub, acr, amr, remember).await
        }
        Checked::Wrong(err) => {
            let detail = serde_json::json!({ "method": method, "reason": format!("{err:?}") });
            if let Err(e) = audit(
                &state,
                &req,
                &tx,
                "login.second_factor_failure",
                subject,
                detail,
            )
            .await
            {
                return page_failure(lang, &e);
            }
            pending.failures += 1;
            if pending.failures >= MAX_CODE_FAILURES {
                // After the third wrong code the password must be entered again.
                tx.pending = None;
                if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                    return page_failure(lang, &e.into());
                }
                return see_other(&format!("/login?tx={}&notice=codes", tx.id));
            }
            tx.pending = Some(pending.clone());
            if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                return page_failure(lang, &e.into());
            }
            render(&state, lang, &tx, &pending, Some(err)).await
        }
    }
}
