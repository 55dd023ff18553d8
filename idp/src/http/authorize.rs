//! The authorization endpoint and the shared steps of the browser flow.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{ErrorKind, FormPostPage, Lang};

use super::cookies;
use super::error::{html, lang_of, page, page_failure};
use super::level::{self, Standing};
use crate::authn::login::{self, Factors, Next};
use crate::authn::throttle::LoginStart;
use crate::authn::transaction::{AuthContext, LoginTx};
use crate::domain::SsoSession;
use crate::protocol::authorize::{
    self as az, error_fields, response_fields, response_url, AuthRequest, AuthorizeError,
    PageError, ResponseMode, ResponseTarget,
};
use crate::protocol::params::Params;
use crate::protocol::{code, tokens, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, SessionAtClient, SessionStore};

pub async fn get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let params = Params::parse(req.query_string().as_bytes());
    authorize(&state, &req, params).await
}

/// OIDC Core §3.1.2.1: the authorization endpoint accepts POST with a form body.
pub async fn post(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match super::token::form_body(&req, &body) {
        Ok(params) => authorize(&state, &req, params).await,
        Err(_) => page(
            StatusCode::BAD_REQUEST,
            lang_of(&req, None),
            ErrorKind::BadRequest,
            None,
        ),
    }
}

#[tracing::instrument(skip_all, fields(client_id))]
async fn authorize(state: &AppState, req: &HttpRequest, params: Params) -> HttpResponse {
    let lang = lang_of(req, params.get("ui_locales").ok().flatten());
    let client_id = match params.get("client_id") {
        Ok(Some(id)) if id.len() <= 256 => id.to_string(),
        Ok(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                lang,
                ErrorKind::InvalidClient,
                None,
            )
        }
        Err(e) => {
            tracing::info!(
                detail = e.describe(),
                "authorization request refused with a page"
            );
            return page(StatusCode::BAD_REQUEST, lang, ErrorKind::BadRequest, None);
        }
    };
    tracing::Span::current().record("client_id", client_id.as_str());
    let client = match state.clients.find(&state.store, &client_id).await {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &e.into()),
    };
    let redirect_uri = match az::check_client_and_redirect(&params, client.as_deref()) {
        Ok(r) => r,
        Err(e) => return authorize_error(state, lang, e),
    };
    let Some(client) = client else {
        return page(
            StatusCode::BAD_REQUEST,
            lang,
            ErrorKind::InvalidClient,
            None,
        );
    };
    let keyset = state.keyring.snapshot();
    let hint = |h: &str| {
        tokens::check_own_id_token(&keyset, &state.issuer, h)
            .and_then(|v| v.get("sub").and_then(|s| s.as_str()).map(str::to_string))
    };
    let request = match az::check_request(&params, &client, redirect_uri, hint) {
        Ok(r) => r,
        Err(e) => return authorize_error(state, lang, e),
    };
    proceed(state, req, lang, request).await
}

/// After a valid authorization request (here or in the ESIA dialect, `http/esia.rs`): the
/// browser's session, the person's grant and factors decide what comes next
/// ([`login::on_arrival`]), which is then started.
pub(super) async fn proceed(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    request: AuthRequest,
) -> HttpResponse {
    let Arrival {
        next,
        standing,
        unchecked,
    } = match arrival(state, req, &request).await {
        Ok(a) => a,
        Err(e) => return page_failure(lang, &e),
    };
    match next {
        Next::Fail(e) => redirect_error(state, &request.target, &e),
        Next::Finish(auth) => match unchecked {
            Some(s) => finish_sso(state, req, lang, request, &auth, standing, &s).await,
            None => finish(state, lang, &request, &auth, standing).await,
        },
        Next::Login => start_tx(state, req, lang, request, TxStart::Login).await,
        Next::SecondFactor(p) | Next::Passkey(p) => {
            start_tx(state, req, lang, request, TxStart::SecondFactor(p)).await
        }
        Next::NoPasskey => start_tx(state, req, lang, request, TxStart::NoPasskey).await,
        Next::Consent(auth) => start_tx(state, req, lang, request, TxStart::Consent(auth)).await,
    }
}

/// The decision on arrival, with what carrying it out needs.
struct Arrival {
    next: Next,
    /// The standing of the session's person, read with the session (for the gate before a
    /// code is issued).
    standing: Option<Standing>,
    /// The session a code is to come from, its idle period not checked yet: storing the
    /// code checks and extends it in the same round trip ([`finish_sso`]).
    unchecked: Option<SsoSession>,
}

/// The decision on arrival, with what it needs read from the stores.
async fn arrival(
    state: &AppState,
    req: &HttpRequest,
    request: &AuthRequest,
) -> Result<Arrival, OAuthError> {
    let Some(found) = session_at_client(state, req, &request.client_id).await? else {
        return Ok(signed_out(state, request));
    };
    let SessionAtClient {
        session,
        grant,
        standing,
        client_min_level,
    } = found;
    // Only a session too weak for the request needs to know its factors.
    let factors = if login::strong_enough(request, &session.acr) {
        Factors::default()
    } else {
        Factors {
            second: super::second_factor::has_second_factor(state, &session.subject_id).await?,
            passkey: login::needs_passkey(request)
                && super::passkey::has_passkey(state, &session.subject_id).await?,
        }
    };
    let next = login::on_arrival(
        request,
        Some(&session),
        grant.as_ref(),
        factors,
        state.now(),
    );
    let standing = Some(Standing {
        subject_id: session.subject_id.clone(),
        person: standing,
        client_min_level,
    });
    // Without "remember me" a session also ends after idle time (http/login.rs). A code is
    // stored only while the session's idle period lives; any other decision checks it now.
    if matches!(next, Next::Finish(_)) {
        return Ok(Arrival {
            next,
            standing,
            unchecked: Some(session),
        });
    }
    if !super::login::still_active(state, &session).await? {
        return Ok(signed_out(state, request));
    }
    Ok(Arrival {
        next,
        standing,
        unchecked: None,
    })
}

/// The decision for a browser without a live session: a sign-in, or `login_required`
/// for `prompt=none`.
fn signed_out(state: &AppState, request: &AuthRequest) -> Arrival {
    Arrival {
        next: login::on_arrival(request, None, None, Factors::default(), state.now()),
        standing: None,
        unchecked: None,
    }
}

/// The code from a live SSO session. Without "remember me" it is stored only while the
/// session's idle period lives, extending it in the same round trip; a session found idle
/// is ended and the request handled as if there were none. A refusal by the gate is given
/// only while the session is still active, for the same reason.
async fn finish_sso(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    request: AuthRequest,
    auth: &AuthContext,
    known: Option<Standing>,
    session: &SsoSession,
) -> HttpResponse {
    let Some((idle_key, idle_ttl)) = super::login::idle_period(state, session) else {
        return finish(state, lang, &request, auth, known).await;
    };
    let gated = match level::gate(state, lang, &request, auth, known).await {
        Ok(r) => r,
        Err(refusal) => {
            return match super::login::still_active(state, session).await {
                Ok(true) => refusal,
                Ok(false) => without_session(state, req, lang, request).await,
                Err(e) => page_failure(lang, &e),
            }
        }
    };
    let ttl = state.cfg.tokens.code_ttl_secs;
    let tie = code::Tie::WhileLive(&idle_key, idle_ttl);
    match code::issue_tied(state.eph.as_ref(), tie, &gated, auth, ttl).await {
        Ok(Some(c)) => respond(state, &gated.target, &[("code", c.as_str())]),
        Ok(None) => match super::login::end_idle(state, session).await {
            Ok(()) => without_session(state, req, lang, request).await,
            Err(e) => page_failure(lang, &e),
        },
        Err(e) => page_failure(lang, &e),
    }
}

/// Carries out the request as if the browser had no session (its session was just found
/// idle): a sign-in, or `login_required` for `prompt=none`.
async fn without_session(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    request: AuthRequest,
) -> HttpResponse {
    match signed_out(state, &request).next {
        Next::Fail(e) => redirect_error(state, &request.target, &e),
        // Without a session the only other decision is a sign-in.
        _ => start_tx(state, req, lang, request, TxStart::Login).await,
    }
}

fn authorize_error(state: &AppState, lang: Lang, e: AuthorizeError) -> HttpResponse {
    match e {
        AuthorizeError::Page { kind, detail } => {
            tracing::info!(
                detail = detail.as_str(),
                "authorization request refused with a page"
            );
            let kind = match kind {
                PageError::InvalidClient => ErrorKind::InvalidClient,
                PageError::InvalidRedirectUri => ErrorKind::InvalidRedirectUri,
                PageError::BadRequest => ErrorKind::BadRequest,
            };
            // The detail is English developer text: it goes to the log, the page speaks the
            // user's language.
            page(StatusCode::BAD_REQUEST, lang, kind, None)
        }
        AuthorizeError::Redirect { target, error } => redirect_error(state, &target, &error),
    }
}

/// The browser's live SSO session, if any.
pub async fn current_session(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<SsoSession>, OAuthError> {
    let Some(hash) = session_hash(state, req) else {
        return Ok(None);
    };
    let now = state.now();
    let found = state
        .store
        .call(move |s| s.find_live_session(&hash, now))
        .await?;
    // Without "remember me" a session also ends after idle time (http/login.rs).
    match found {
        Some(s) if super::login::still_active(state, &s).await? => Ok(Some(s)),
        _ => Ok(None),
    }
}

/// The browser's unexpired SSO session with its person's grant and standing for
/// `client_id`, read in one query (the SSO path: one hop to the database for everything up
/// to the code).
async fn session_at_client(
    state: &AppState,
    req: &HttpRequest,
    client_id: &str,
) -> Result<Option<SessionAtClient>, OAuthError> {
    let Some(hash) = session_hash(state, req) else {
        return Ok(None);
    };
    let (now, cid) = (state.now(), client_id.to_string());
    // Its idle period (no "remember me") is checked by the caller, [`arrival`].
    Ok(state
        .store
        .call(move |s| s.find_live_session_at(&hash, now, &cid))
        .await?)
}

/// The stored hash of the browser's session cookie, if it sent one.
fn session_hash(state: &AppState, req: &HttpRequest) -> Option<String> {
    let value = cookies::read(req, &cookies::session_name(state))?;
    Some(keys::sha256_b64url(value.as_bytes()))
}

/// Where a new login transaction begins.
pub(super) enum TxStart {
    Login,
    /// A second factor or, when `pending` needs one, a passkey.
    SecondFactor(login::Pending),
    /// The portal needs a passkey and the person of the session has none.
    NoPasskey,
    Consent(AuthContext),
}

/// Starts a login transaction bound to this browser and sends the user to its first page.
pub(super) async fn start_tx(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    request: AuthRequest,
    start: TxStart,
) -> HttpResponse {
    let (path, auth, pending) = match start {
        TxStart::Login => ("/login", None, None),
        TxStart::SecondFactor(p) if p.needs_passkey() => (super::step_up::PAGE, None, Some(p)),
        TxStart::SecondFactor(p) => ("/login/second-factor", None, Some(p)),
        TxStart::NoPasskey => (super::step_up::NO_PASSKEY_PAGE, None, None),
        TxStart::Consent(a) => ("/consent", Some(a), None),
    };
    let run = async {
        let (bid, new_bid) = match cookies::read(req, &cookies::bid_name(state)) {
            Some(b) => (b, false),
            None => (keys::random_token(32).map_err(OAuthError::server)?, true),
        };
        let tx = LoginTx {
            v: 1,
            id: tokens::new_id()?,
            bid_hash: keys::sha256_b64url(bid.as_bytes()),
            csrf: keys::random_token(24).map_err(OAuthError::server)?,
            request,
            auth,
            pending,
            password_due: None,
            created_at: state.now(),
        };
        // Stored only within the address's limit of login starts (anyone can make this
        // request, and each keeps a record for `login_ttl_secs`).
        let ip = super::login::ip_of(state, req).unwrap_or_default();
        let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
        let started = super::login::throttle(state)
            .start_login(&ip, &LoginTx::key(&tx.id), &tx.to_bytes(), ttl)
            .await?;
        Ok::<_, OAuthError>(match started {
            LoginStart::Stored => Ok((tx.id, new_bid.then_some(bid))),
            LoginStart::Throttled { first } => Err((first, tx.request.client_id)),
        })
    };
    match run.await {
        Ok(Err((first, client_id))) => throttled(state, req, lang, first, client_id).await,
        Ok(Ok((id, new_bid))) => {
            let mut r = HttpResponse::SeeOther();
            r.insert_header((header::LOCATION, format!("{path}?tx={id}")));
            r.insert_header((header::CACHE_CONTROL, "no-store"));
            if let Some(b) = new_bid {
                r.cookie(cookies::build(state, cookies::bid_name(state), b, None));
            }
            r.finish()
        }
        Err(e) => page_failure(lang, &e),
    }
}

/// The answer to a login start over its address's limit: a page in the person's language
/// (429, `Retry-After`); the first one of a window is audited (`login.start_throttled`),
/// the rest of a flood writes nothing.
async fn throttled(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    first: bool,
    client_id: String,
) -> HttpResponse {
    if first {
        let event = crate::audit::AuditEvent {
            at: state.now(),
            kind: "login.start_throttled".into(),
            subject_id: None,
            client_id: Some(client_id),
            ip: super::login::ip_of(state, req),
            detail: serde_json::json!({ "limit": state.cfg.lockout.login_tx_ip_max }),
        };
        if let Err(e) = state.store.call(move |s| s.append_audit(&event)).await {
            tracing::error!(error = %e, "cannot write the audit event of throttled login starts");
        }
    }
    let mut r = page(
        StatusCode::TOO_MANY_REQUESTS,
        lang,
        ErrorKind::TooManyRequests,
        None,
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(state.cfg.lockout.login_tx_window_secs),
    );
    r
}

/// Issues the code and delivers it to the client; `known` is the person's standing when it
/// was just read (see [`level::gate`]).
pub(super) async fn finish(
    state: &AppState,
    lang: Lang,
    request: &AuthRequest,
    auth: &AuthContext,
    known: Option<Standing>,
) -> HttpResponse {
    // Account status, the client's minimum level, scopes by level (issue 5).
    let request = &match level::gate(state, lang, request, auth, known).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    match code::issue(
        state.eph.as_ref(),
        request,
        auth,
        state.cfg.tokens.code_ttl_secs,
    )
    .await
    {
        Ok(c) => respond(state, &request.target, &[("code", c.as_str())]),
        Err(e) => page_failure(lang, &e),
    }
}

pub fn redirect_error(state: &AppState, target: &ResponseTarget, e: &OAuthError) -> HttpResponse {
    tracing::info!(
        error = e.code.as_str(),
        detail = e.detail.as_deref().unwrap_or(""),
        "authorization error"
    );
    let [(k1, v1), (k2, v2)] = error_fields(e);
    respond(state, target, &[(k1, v1.as_str()), (k2, v2.as_str())])
}

/// Delivers an authorization response by redirect or by form_post.
pub(super) fn respond(
    state: &AppState,
    target: &ResponseTarget,
    fields: &[(&str, &str)],
) -> HttpResponse {
    match target.mode {
        ResponseMode::Query => HttpResponse::SeeOther()
            .insert_header((
                header::LOCATION,
                response_url(target, &state.issuer, fields),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        ResponseMode::FormPost => {
            let owned = response_fields(target, &state.issuer, fields);
            let refs: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            html(
                StatusCode::OK,
                FormPostPage {
                    action: &target.redirect_uri,
                    fields: &refs,
                }
                .render(),
            )
        }
    }
}
