//! The second-factor step of a sign-in: authenticator-app codes and recovery codes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{Factor, FactorError, Lang, SecondFactorPage};

use super::error::{html, lang_of, page_failure};
use super::login::{audit, expired, load_tx, see_other, signed_in, tx_form, tx_lang, tx_param};
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
    if creds
        .iter()
        .any(|c| c.kind == CredentialKind::Totp && c.usable())
    {
        return Ok(true);
    }
    // A security key turns two-factor sign-in on as well.
    super::passkey::has_security_key(state, subject_id).await
}

pub(super) async fn render(
    state: &AppState,
    lang: Lang,
    tx: &LoginTx,
    pending: &Pending,
    error: Option<FactorError>,
) -> HttpResponse {
    render_status(state, lang, tx, pending, error, StatusCode::OK).await
}

/// The page with `status`: the person's factors, the last used first (or the channel a
/// code was just sent through), and "send me a code" buttons for their confirmed contacts.
pub(super) async fn render_status(
    state: &AppState,
    lang: Lang,
    tx: &LoginTx,
    pending: &Pending,
    error: Option<FactorError>,
    status: StatusCode,
) -> HttpResponse {
    let extra = async {
        let subject = super::otp::find_subject(state, &pending.subject_id).await?;
        let channels = match &subject {
            Some(s) => super::otp::code_channels(state, s).await?,
            None => Vec::new(),
        };
        let last = super::otp::last_factor(state, &pending.subject_id).await?;
        let waiting = super::otp::codes(state)?
            .current(&super::otp::login_scope(tx))
            .await?;
        Ok::<_, OAuthError>((channels, last, waiting))
    };
    let (channels, last, waiting) = match extra.await {
        Ok(v) => v,
        Err(e) => return page_failure(lang, &e),
    };
    let creds = match credentials(state, &pending.subject_id).await {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &e),
    };
    let mut factors = factors(&creds);
    match super::passkey::has_security_key(state, &pending.subject_id).await {
        Ok(true) => factors.push(Factor::SecurityKey),
        Ok(false) => {}
        Err(e) => return page_failure(lang, &e),
    }
    for (c, _) in &channels {
        factors.extend(super::otp::factor_of(*c));
    }
    // The channel a code is waiting on, else the factor used last, is offered first.
    let first = waiting
        .as_ref()
        .and_then(|w| super::otp::factor_of(w.channel))
        .or(last);
    if let Some(pos) = first.and_then(|f| factors.iter().position(|x| *x == f)) {
        let f = factors.remove(pos);
        factors.insert(0, f);
    }
    let senders: Vec<(Factor, &str)> = channels
        .iter()
        .filter_map(|(c, to)| super::otp::factor_of(*c).map(|f| (f, to.as_str())))
        .collect();
    let body = SecondFactorPage {
        lang,
        action: "/login/second-factor",
        tx: &tx.id,
        csrf: &tx.csrf,
        factors: &factors,
        error,
        send_action: "/login/otp/send",
        senders: &senders,
        sent_to: waiting.as_ref().map(|w| w.masked_to.as_str()),
    }
    .render();
    html(status, body)
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
    // A sign-in that needs a passkey has its own page.
    if pending.needs_passkey() {
        return see_other(&format!("{}?tx={}", super::step_up::PAGE, tx.id));
    }
    let step_up = pending.amr.iter().any(|a| a == "pwd") && pending.failures == 0;
    let lang = tx_lang(&req, &tx);
    let note =
        (step_up && tx.auth.is_none() && !login::strong_enough(&tx.request, "urn:propusk:acr:1"))
            .then_some(FactorError::StepUp);
    render(&state, lang, &tx, &pending, note).await
}

enum Checked {
    Right,
    /// A code sent through this channel was right.
    RightCode(crate::authn::otp::CodeChannel),
    Wrong(FactorError),
}

async fn check_code(
    state: &AppState,
    tx: &LoginTx,
    pending: &Pending,
    factor: Factor,
    code: &str,
) -> Result<Checked, OAuthError> {
    let now = state.now();
    match factor {
        Factor::Sms | Factor::Voice | Factor::Email | Factor::Push => {
            Ok(match super::otp::check(state, tx, code).await? {
                Ok(channel) => Checked::RightCode(channel),
                Err(e) => Checked::Wrong(e),
            })
        }
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
        // A security key is not a code: it has its own form (http/passkey.rs).
        Factor::SecurityKey => Ok(Checked::Wrong(FactorError::Malformed)),
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
    // No code finishes a sign-in that needs a passkey.
    if pending.needs_passkey() {
        return see_other(&format!("{}?tx={}", super::step_up::PAGE, tx.id));
    }
    if let Err(r) = super::passkey::count_attempt(&state, &req, &tx, lang).await {
        return r;
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
    let checked = match check_code(&state, &tx, &pending, factor, code).await {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &e),
    };
    let method = factor.value();
    let subject = Some(pending.subject_id.clone());
    let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
    // A code by SMS is confirmed by its channel (amr `sms`, `tel`, `otp`: RFC 8176).
    let (checked, code_amr) = match checked {
        Checked::RightCode(c) => (Checked::Right, c.amr()),
        other => (other, "otp"),
    };
    match checked {
        Checked::Right | Checked::RightCode(_) => {
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
            if factor != Factor::RecoveryCode {
                if let Err(e) =
                    super::otp::remember_factor(&state, &pending.subject_id, factor).await
                {
                    return page_failure(lang, &e);
                }
            }
            let (acr, amr) = login::after_second_factor(&pending, code_amr);
            tx.pending = None;
            let (sub, remember) = (pending.subject_id.clone(), pending.remember);
            signed_in(&state, &req, lang, tx, &sub, acr, amr, remember, None).await
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
            // No code waiting is not a guess: ask for a new one, nothing counted.
            if err == FactorError::Expired {
                return render(&state, lang, &tx, &pending, Some(err)).await;
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
