//! Step-up to the phishing-resistant level (acr 3): a portal that needs a passkey gets one,
//! asked for right after the password or over a weaker SSO session; a person without a
//! passkey gets a page that says how to add one and returns to the portal with
//! `access_denied`. The decisions are in `authn/login.rs` (`Need::Passkey`, `NoPasskey`).
//!
//! The ceremony is `start_passkey_authentication` over the person's own passkeys (not a
//! discoverable one: the person is known), kept like every ceremony in the ephemeral store
//! and bound to the login transaction.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{PasskeyNeededPage, PasskeyStepUpPage, WebauthnProblem};

use super::authorize::redirect_error;
use super::error::{html, lang_of, page_failure};
use super::login::{audit, client_name, expired, load_tx, signed_in, tx_form, tx_lang, tx_param};
use super::passkey::{
    count_attempt, credential_field, json_refusal, problem, start_for_pending, take_ceremony,
    verify_own_passkey, KeyFailure,
};
use crate::authn::login::{self, Pending};
use crate::authn::transaction::LoginTx;
use crate::authn::webauthn as wa;
use crate::domain::credential::WebauthnKind;
use crate::state::AppState;

/// The "confirm with your passkey" page.
pub const PAGE: &str = "/login/passkey-step-up";
const START: &str = "/login/passkey-step-up/start";
const FINISH: &str = "/login/passkey-step-up/finish";
/// The "this portal needs a passkey" page (GET), and its "return to the portal" (POST).
pub const NO_PASSKEY_PAGE: &str = "/login/passkey-needed";
/// Where a person adds a passkey.
const SECURITY_PAGE: &str = "/account/security";

fn binding(tx: &LoginTx) -> String {
    format!("tx:{}", tx.id)
}

/// The pending sign-in of `tx` when it waits for a passkey.
fn waiting(tx: &LoginTx) -> Option<Pending> {
    tx.pending.clone().filter(Pending::needs_passkey)
}

async fn render(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    error: Option<WebauthnProblem>,
) -> HttpResponse {
    let name = client_name(state, &tx.request.client_id).await;
    let body = PasskeyStepUpPage {
        lang: tx_lang(req, tx),
        client_name: &name,
        action: FINISH,
        start: START,
        cancel_action: NO_PASSKEY_PAGE,
        tx: &tx.id,
        csrf: &tx.csrf,
        error,
    }
    .render();
    html(StatusCode::OK, body)
}

/// `GET /login/passkey-step-up?tx=...`
pub async fn page_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    match load_tx(&state, &req, &tx_param(&req)).await {
        Ok(Some(tx)) if waiting(&tx).is_some() => render(&state, &req, &tx, None).await,
        Ok(_) => expired(lang),
        Err(e) => page_failure(lang, &e),
    }
}

/// `POST /login/passkey-step-up/start`: options for an assertion by one of the person's
/// passkeys (JSON, like the other ceremony starts; rate limited there).
pub async fn start(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let tx = match super::passkey::start_tx(&state, &req, &body).await {
        Ok(tx) => tx,
        Err(r) => return r,
    };
    let Some(pending) = waiting(&tx) else {
        return json_refusal(StatusCode::BAD_REQUEST, "expired");
    };
    start_for_pending(
        &state,
        &tx,
        &pending.subject_id,
        WebauthnKind::Passkey,
        "no_passkey",
    )
    .await
}

/// `POST /login/passkey-step-up/finish`: the assertion; a right one completes the sign-in
/// at acr 3 with the amr of what came before and the passkey's own.
pub async fn finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, mut tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let Some(pending) = waiting(&tx) else {
        return expired(lang);
    };
    if let Err(r) = count_attempt(&state, &req, &tx, lang).await {
        return r;
    }
    let run = async {
        match take_ceremony(&state, &form, &binding(&tx)).await? {
            Ok(c) => {
                verify_own_passkey(&state, c, &pending.subject_id, credential_field(&form)).await
            }
            Err(r) => Ok(Err(r)),
        }
    };
    let outcome = match run.await {
        Ok(o) => o,
        Err(e) => return page_failure(lang, &e),
    };
    let subject = Some(pending.subject_id.clone());
    match outcome {
        Ok(key) => {
            let detail = serde_json::json!({ "method": "passkey", "name": key.name });
            if let Err(e) = audit(&state, &req, &tx, "login.passkey_step_up", subject, detail).await
            {
                return page_failure(lang, &e);
            }
            let (_, passkey_amr) = wa::passkey_acr_amr(key.backup_eligible);
            let (acr, amr) = login::after_passkey(&pending, &passkey_amr);
            tx.pending = None;
            let (sub, remember) = (pending.subject_id.clone(), pending.remember);
            signed_in(&state, &req, lang, tx, &sub, acr, amr, remember, None).await
        }
        Err(refusal) => {
            let failure = KeyFailure {
                kind: "login.passkey_failure",
                method: "passkey",
                refusal,
            };
            if let Err(r) = failure.record(&state, &req, lang, &mut tx, pending).await {
                return r;
            }
            render(&state, &req, &tx, Some(problem(refusal))).await
        }
    }
}

/// `GET /login/passkey-needed?tx=...`: the portal needs a passkey, the person has none.
pub async fn needed_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    let tx = match load_tx(&state, &req, &tx_param(&req)).await {
        Ok(Some(tx)) if login::needs_passkey(&tx.request) => tx,
        Ok(_) => return expired(lang),
        Err(e) => return page_failure(lang, &e),
    };
    let name = client_name(&state, &tx.request.client_id).await;
    let body = PasskeyNeededPage {
        lang: tx_lang(&req, &tx),
        client_name: &name,
        security_url: SECURITY_PAGE,
        action: NO_PASSKEY_PAGE,
        tx: &tx.id,
        csrf: &tx.csrf,
    }
    .render();
    html(StatusCode::OK, body)
}

/// `POST /login/passkey-needed`: back to the portal with `access_denied` (the transaction
/// ends; the portal can try again later, when the person has a passkey).
pub async fn give_up(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (_, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if !login::needs_passkey(&tx.request) {
        return expired(lang);
    }
    match LoginTx::take(state.eph.as_ref(), &tx.id).await {
        Ok(Some(_)) => {}
        Ok(None) => return expired(lang),
        Err(e) => return page_failure(lang, &e.into()),
    }
    let subject = tx.pending.as_ref().map(|p| p.subject_id.clone());
    let detail = serde_json::json!({ "acr": crate::authn::ACR_PHISHING_RESISTANT });
    if let Err(e) = audit(&state, &req, &tx, "login.passkey_declined", subject, detail).await {
        return page_failure(lang, &e);
    }
    redirect_error(&state, &tx.request.target, &login::no_passkey_error())
}
