//! Signing in for the account pages: a login transaction of the built-in account client
//! that ends back on the page instead of with a code.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::Lang;

use crate::authn::transaction::LoginTx;
use crate::http::cookies;
use crate::http::error::{lang_of, page_failure};
use crate::http::login::see_other;
use crate::protocol::authorize::{AuthRequest, ResponseMode, ResponseTarget};
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;

use super::{ACCOUNT_CLIENT, PAGE};

/// Starts a sign-in whose end comes back to the security page (`force`: even with a live
/// session, to confirm by signing in again).
pub(super) async fn start_sign_in(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    force: bool,
) -> HttpResponse {
    let run = async {
        let (bid, new_bid) = match cookies::read(req, &cookies::bid_name(state)) {
            Some(b) => (b, false),
            None => (keys::random_token(32).map_err(OAuthError::server)?, true),
        };
        let request = AuthRequest {
            client_id: ACCOUNT_CLIENT.into(),
            target: ResponseTarget {
                redirect_uri: state.endpoint(PAGE),
                state: None,
                mode: ResponseMode::Query,
            },
            scopes: vec!["openid".into()],
            nonce: None,
            code_challenge: keys::random_token(32).map_err(OAuthError::server)?,
            prompt: if force { vec!["login".into()] } else { vec![] },
            max_age: None,
            login_hint: None,
            hint_sub: None,
            acr_values: vec![],
            ui_locales: Some(lang.code().into()),
            claims: None,
        };
        let tx = LoginTx {
            v: 1,
            id: tokens::new_id()?,
            bid_hash: keys::sha256_b64url(bid.as_bytes()),
            csrf: keys::random_token(24).map_err(OAuthError::server)?,
            request,
            auth: None,
            pending: None,
            password_due: None,
            created_at: state.now(),
        };
        let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
        tx.save(state.eph.as_ref(), ttl).await?;
        Ok::<_, OAuthError>((tx.id, new_bid.then_some(bid)))
    };
    match run.await {
        Ok((id, new_bid)) => {
            let mut r = HttpResponse::SeeOther();
            r.insert_header((header::LOCATION, format!("/login?tx={id}")));
            r.insert_header((header::CACHE_CONTROL, "no-store"));
            if let Some(b) = new_bid {
                r.cookie(cookies::build(state, cookies::bid_name(state), b, None));
            }
            r.finish()
        }
        Err(e) => page_failure(lang, &e),
    }
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
    start_sign_in(&state, &req, lang, true).await
}
