//! Signing in for the account pages: a login transaction of the built-in account client
//! that ends back on the page instead of with a code.

use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::Lang;

use crate::authn::transaction::LoginTx;
use crate::http::authorize::{start_tx, TxStart};
use crate::http::error::{lang_of, page_failure};
use crate::http::login::see_other;
use crate::protocol::authorize::{AuthRequest, ResponseMode, ResponseTarget};
use crate::protocol::OAuthError;
use crate::state::AppState;

use super::{ACCOUNT_CLIENT, PAGE};

/// Starts a sign-in (a login transaction of the built-in account client) whose end comes
/// back to `page`, an account page (`force`: even with a live session, to confirm by signing
/// in again).
pub(in crate::http) async fn start_sign_in(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    page: &str,
    force: bool,
) -> HttpResponse {
    let code_challenge = match keys::random_token(32) {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &OAuthError::server(e)),
    };
    let request = AuthRequest {
        client_id: ACCOUNT_CLIENT.into(),
        target: ResponseTarget {
            redirect_uri: state.endpoint(page),
            state: None,
            mode: ResponseMode::Query,
        },
        scopes: vec!["openid".into()],
        nonce: None,
        code_challenge,
        prompt: if force { vec!["login".into()] } else { vec![] },
        max_age: None,
        login_hint: None,
        hint_sub: None,
        acr_values: vec![],
        ui_locales: Some(lang.code().into()),
        claims: None,
    };
    start_tx(state, req, lang, request, TxStart::Login).await
}

/// Whether a login transaction is one of the account pages (it ends here, not with a code).
pub fn is_account_tx(tx: &LoginTx) -> bool {
    tx.request.client_id == ACCOUNT_CLIENT
}

/// The end of an account sign-in: the transaction is spent and the browser, now with its
/// session cookie, goes back to the page.
pub async fn after_sign_in(state: &AppState, lang: Lang, tx: &LoginTx) -> HttpResponse {
    match LoginTx::take(state.eph.as_ref(), &tx.id).await {
        // The profile page (issue 5) signs in through this client too.
        Ok(_) if tx.request.target.redirect_uri.ends_with("/account/profile") => {
            see_other("/account/profile")
        }
        Ok(_) => see_other(PAGE),
        Err(e) => page_failure(lang, &e.into()),
    }
}

/// `GET /account/security/signin`: confirm by signing in again.
pub async fn sign_in_again(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    start_sign_in(&state, &req, lang, PAGE, true).await
}
