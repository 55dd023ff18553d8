//! Sign-in pages of a login transaction (consent: `consent.rs`).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{ErrorKind, Lang, LoginError, LoginPage};

use super::authorize::{current_session, redirect_error, respond};
use super::cookies;
use super::error::{html, lang_of, page, page_failure};
use super::level::Standing;
use crate::audit::AuditEvent;
use crate::authn::login::{self, AfterFirstFactor, Factors, Next};
use crate::authn::throttle::{Attempt, Throttle};
use crate::authn::transaction::{AuthContext, LoginTx};
use crate::domain::identifier::{normalize_login, Identifier, IdentifierError};
use crate::domain::SsoSession;
use crate::protocol::params::Params;
use crate::protocol::{code, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, SessionStore, SigninAtClient, SubjectAtClient, SubjectStore};

/// The `tx` query parameter.
pub(super) fn tx_param(req: &HttpRequest) -> String {
    Params::parse(req.query_string().as_bytes())
        .get("tx")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string()
}

pub(super) fn expired(lang: Lang) -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        lang,
        ErrorKind::SessionExpired,
        None,
    )
}

/// Loads the transaction and checks it belongs to this browser.
pub(super) async fn load_tx(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<Option<LoginTx>, OAuthError> {
    let Some(tx) = LoginTx::load(state.eph.as_ref(), id).await? else {
        return Ok(None);
    };
    let bid = cookies::read(req, &cookies::bid_name(state)).unwrap_or_default();
    let bid_hash = keys::sha256_b64url(bid.as_bytes());
    Ok(keys::constant_time_eq(bid_hash.as_bytes(), tx.bid_hash.as_bytes()).then_some(tx))
}

pub(super) fn tx_lang(req: &HttpRequest, tx: &LoginTx) -> Lang {
    lang_of(req, tx.request.ui_locales.as_deref())
}

pub(super) async fn client_name(state: &AppState, id: &str) -> String {
    if id == super::account::ACCOUNT_CLIENT {
        return "Пропуск: безопасность / Propusk: security".into();
    }
    // Through the per-node client cache, as the token endpoint reads clients.
    match state.clients.find(&state.store, id).await {
        Ok(Some(c)) => c.name.clone(),
        _ => id.to_string(),
    }
}

pub(super) async fn render_login(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    identifier: Option<&str>,
    err: Option<LoginError>,
) -> HttpResponse {
    let name = client_name(state, &tx.request.client_id).await;
    let page = LoginPage {
        lang: tx_lang(req, tx),
        client_name: &name,
        action: "/login",
        tx: &tx.id,
        csrf: &tx.csrf,
        identifier: identifier.or(tx.request.login_hint.as_deref()),
        error: err,
    };
    // A portal that needs a passkey: the page leads with it.
    let body = match login::needs_passkey(&tx.request) {
        true => page.render_passkey_first(),
        false => page.render(),
    };
    html(StatusCode::OK, body)
}

pub async fn login_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    let id = tx_param(&req);
    // After three wrong second-factor codes the user is sent back here to start over.
    let notice = Params::parse(req.query_string().as_bytes())
        .get("notice")
        .ok()
        .flatten()
        .and_then(|n| match n {
            "codes" => Some(LoginError::TooManyCodes),
            // After a forgotten password was replaced (http/recovery.rs).
            "reset" => Some(LoginError::PasswordReset),
            _ => None,
        });
    match load_tx(&state, &req, &id).await {
        Ok(Some(tx)) => render_login(&state, &req, &tx, None, notice).await,
        Ok(None) => expired(lang),
        Err(e) => page_failure(lang, &e),
    }
}

/// Checks the CSRF token of a form against the transaction's (constant time).
pub(super) fn csrf_ok(form: &Params, tx: &LoginTx) -> bool {
    let sent = form.get("csrf").ok().flatten().unwrap_or("");
    keys::constant_time_eq(sent.as_bytes(), tx.csrf.as_bytes())
}

/// A form posted within a login transaction: the body parsed, the transaction of this
/// browser loaded, its CSRF token checked; or the page to answer with.
pub(super) async fn tx_form(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(Params, LoginTx, Lang), HttpResponse> {
    let lang = lang_of(req, None);
    let Ok(form) = super::token::form_body(req, body) else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            lang,
            ErrorKind::BadRequest,
            None,
        ));
    };
    let id = form.get("tx").ok().flatten().unwrap_or("").to_string();
    let tx = match load_tx(state, req, &id).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return Err(expired(lang)),
        Err(e) => return Err(page_failure(lang, &e)),
    };
    let lang = tx_lang(req, &tx);
    if !csrf_ok(&form, &tx) {
        return Err(page(
            StatusCode::FORBIDDEN,
            lang,
            ErrorKind::BadRequest,
            None,
        ));
    }
    Ok((form, tx, lang))
}

pub(super) fn ip_of(state: &AppState, req: &HttpRequest) -> Option<String> {
    super::client_ip(state, req)
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (form, tx, lang) = match tx_form(&state, &req, &body).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let identifier = form
        .get("identifier")
        .ok()
        .flatten()
        .unwrap_or("")
        .trim()
        .to_string();
    let password = form
        .get("password")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    if identifier.is_empty()
        || password.is_empty()
        || identifier.len() > 256
        || password.len() > 1024
    {
        return render_login(
            &state,
            &req,
            &tx,
            Some(&identifier),
            Some(LoginError::MissingFields),
        )
        .await;
    }
    let remember = form.get("remember").ok().flatten() == Some("on");
    match password_step(&state, &req, &tx, &identifier, password).await {
        Ok(PasswordOutcome::Right(subject_id, found)) => {
            let found = *found;
            // A blocked or pending account: a readable page, no session (issue 5).
            if let Some(person) = &found.at.standing {
                let cid = &tx.request.client_id;
                let refusal = super::level::refuse_inactive(&state, lang, cid, &subject_id, person);
                if let Some(r) = refusal.await {
                    return r;
                }
            }
            after_password(&state, &req, lang, tx, subject_id, remember, found).await
        }
        Ok(PasswordOutcome::Wrong) => {
            let err = LoginError::InvalidCredentials;
            render_login(&state, &req, &tx, Some(&identifier), Some(err)).await
        }
        Ok(PasswordOutcome::Locked) => {
            let err = LoginError::Locked;
            render_login(&state, &req, &tx, Some(&identifier), Some(err)).await
        }
        Ok(PasswordOutcome::BadIdentifier(e)) => {
            use crate::domain::identifier::IdentifierKind as K;
            let err = match e {
                IdentifierError::Malformed(K::Snils)
                | IdentifierError::WrongLength(K::Snils)
                | IdentifierError::BadChecksum(K::Snils) => LoginError::BadSnils,
                IdentifierError::Malformed(K::Inn)
                | IdentifierError::WrongLength(K::Inn)
                | IdentifierError::BadChecksum(K::Inn) => LoginError::BadInn,
                IdentifierError::Malformed(K::Phone)
                | IdentifierError::WrongLength(K::Phone)
                | IdentifierError::BadChecksum(K::Phone)
                | IdentifierError::NotRussianPhone => LoginError::BadPhone,
                _ => LoginError::BadIdentifier,
            };
            render_login(&state, &req, &tx, Some(&identifier), Some(err)).await
        }
        Err(e) => page_failure(lang, &e),
    }
}

pub(super) enum PasswordOutcome {
    /// The subject, with everything the rest of the sign-in decides on.
    Right(String, Box<SigninAtClient>),
    Wrong,
    /// Not a phone, e-mail, SNILS or INN.
    BadIdentifier(IdentifierError),
    /// Too many attempts from this address, or password sign-in to this identifier is
    /// locked (the same answer whether or not an account has it).
    Locked,
}

pub(super) fn throttle(state: &AppState) -> Throttle<'_> {
    Throttle {
        eph: state.eph.as_ref(),
        cfg: &state.cfg.lockout,
    }
}

pub(super) async fn audit(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    kind: &str,
    subject_id: Option<String>,
    detail: serde_json::Value,
) -> Result<(), OAuthError> {
    let event = AuditEvent {
        at: state.now(),
        kind: kind.into(),
        subject_id,
        client_id: Some(tx.request.client_id.clone()),
        ip: ip_of(state, req),
        detail,
    };
    state.store.call(move |s| s.append_audit(&event)).await?;
    Ok(())
}

/// Checks the password under the lockout and rate limits (equal time for unknown accounts:
/// a dummy hash is verified instead).
async fn password_step(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    identifier: &str,
    password: String,
) -> Result<PasswordOutcome, OAuthError> {
    let t = throttle(state);
    let ip = ip_of(state, req).unwrap_or_default();
    let login = normalize_login(identifier);
    let account = state
        .store
        .vault()
        .map_err(OAuthError::from)?
        .blind_index(&format!("lockout:{login}"));
    // The address's attempt is counted and the account's lock read in one round trip.
    let attempt = t.password_attempt(&ip, &account).await?;
    if let Attempt::Refused { first } = attempt.ip {
        // The window's first refusal is audited; the rest of a flood writes nothing.
        if first {
            audit(
                state,
                req,
                tx,
                "login.throttled",
                None,
                serde_json::json!({}),
            )
            .await?;
        }
        return Ok(PasswordOutcome::Locked);
    }
    // Checksums and formats are checked before any lookup (requirements: signing in).
    let candidates = match Identifier::candidates(identifier) {
        Ok(c) => c,
        Err(e) => return Ok(PasswordOutcome::BadIdentifier(e)),
    };
    if attempt.locked {
        audit(
            state,
            req,
            tx,
            "login.refused_locked",
            None,
            serde_json::json!({"method": "pwd"}),
        )
        .await?;
        return Ok(PasswordOutcome::Locked);
    }
    let logins: Vec<String> = candidates.iter().map(|c| c.as_str().to_string()).collect();
    let cid = tx.request.client_id.clone();
    // With the subject, what the rest of a right sign-in decides on (its grant, standing,
    // factors), in the same trip to the database: read for nothing after a wrong
    // password, which costs less than a second trip after every right one.
    let subject = state
        .store
        .call(move |s| {
            for l in &logins {
                if let Some(found) = s.find_subject_by_login(l)? {
                    let at = s.find_signin_at(&found.id, &cid)?;
                    return Ok(Some((found, at)));
                }
            }
            Ok(None)
        })
        .await?;
    let hash = subject.as_ref().map(|(s, _)| s.password_hash.clone());
    let ok = state
        .passwords
        .verify(hash, password)
        .await
        .map_err(OAuthError::server)?;
    match subject {
        Some((s, at)) if ok => {
            t.password_ok(&account, &attempt).await?;
            Ok(PasswordOutcome::Right(s.id, Box::new(at)))
        }
        other => {
            let subject_id = other.map(|(s, _)| s.id);
            audit(
                state,
                req,
                tx,
                "login.failure",
                subject_id.clone(),
                serde_json::json!({"method": "pwd"}),
            )
            .await?;
            if t.password_failed(&account).await? {
                if let Some(sub) = &subject_id {
                    let minutes = state.cfg.lockout.lock_secs / 60;
                    super::alerts::alert_owner(
                        state,
                        sub,
                        super::alerts::Alert::Locked { minutes },
                    )
                    .await?;
                }
                audit(
                    state,
                    req,
                    tx,
                    "login.locked",
                    subject_id,
                    serde_json::json!({"method": "pwd", "secs": state.cfg.lockout.lock_secs}),
                )
                .await?;
                return Ok(PasswordOutcome::Locked);
            }
            Ok(PasswordOutcome::Wrong)
        }
    }
}

/// What the person has set up, as [`login::after_password`] needs it for this request,
/// from what the sign-in read (`found`).
async fn factors_for(
    state: &AppState,
    request: &crate::protocol::authorize::AuthRequest,
    subject_id: &str,
    found: &SigninAtClient,
) -> Result<Factors, OAuthError> {
    if login::needs_passkey(request) {
        return Ok(Factors {
            second: false,
            passkey: found.passkey,
        });
    }
    // An authenticator app or a security key turns two-factor sign-in on.
    let mut second = found.totp || found.security_key;
    // A portal asking for two factors can also be satisfied by a code to a confirmed phone
    // or e-mail; such codes do not turn two-factor sign-in on by themselves.
    if !second && login::required_acr(request) != crate::authn::ACR_ONE_FACTOR {
        second = super::otp::has_code_channel(state, subject_id).await?;
    }
    Ok(Factors {
        second,
        passkey: false,
    })
}

/// After a right password: a second factor or a passkey, a session, the page that explains
/// a missing passkey, or a refusal the portal hears about.
async fn after_password(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    mut tx: LoginTx,
    subject_id: String,
    remember: bool,
    found: SigninAtClient,
) -> HttpResponse {
    let factors = match factors_for(state, &tx.request, &subject_id, &found).await {
        Ok(f) => f,
        Err(e) => return page_failure(lang, &e),
    };
    let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
    match login::after_password(&tx.request, &subject_id, remember, factors) {
        AfterFirstFactor::Done { acr, amr } => {
            let found = Some(found);
            signed_in(state, req, lang, tx, &subject_id, acr, amr, remember, found).await
        }
        AfterFirstFactor::Second(p) | AfterFirstFactor::Passkey(p) => {
            let path = match p.needs_passkey() {
                true => super::step_up::PAGE,
                false => "/login/second-factor",
            };
            tx.pending = Some(p);
            if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                return page_failure(lang, &e.into());
            }
            see_other(&format!("{path}?tx={}", tx.id))
        }
        AfterFirstFactor::NoPasskey => {
            let detail = serde_json::json!({ "acr": crate::authn::ACR_PHISHING_RESISTANT });
            let sub = Some(subject_id.clone());
            if let Err(e) = audit(state, req, &tx, "login.passkey_needed", sub, detail).await {
                return page_failure(lang, &e);
            }
            tx.pending = None;
            if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                return page_failure(lang, &e.into());
            }
            see_other(&format!("{}?tx={}", super::step_up::NO_PASSKEY_PAGE, tx.id))
        }
        AfterFirstFactor::Refuse(e) => {
            let _ = LoginTx::take(state.eph.as_ref(), &tx.id).await;
            redirect_error(state, &tx.request.target, &e)
        }
    }
}

pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// All factors done: opens the session, sets its cookie and goes on to consent or the code.
/// `found` is what the sign-in read about the person at this portal when it was read in
/// this request ([`SessionStore::find_signin_at`](crate::store::SessionStore)); without it,
/// it is read here.
#[allow(clippy::too_many_arguments)]
pub(super) async fn signed_in(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    tx: LoginTx,
    subject_id: &str,
    acr: &str,
    amr: Vec<String>,
    remember: bool,
    found: Option<SigninAtClient>,
) -> HttpResponse {
    let mut tx = tx;
    // A temporary password is replaced before anything else (issue 4).
    let must_change = match &found {
        Some(f) => Ok(f.password_must_change),
        None => super::password::must_change(state, subject_id).await,
    };
    match must_change {
        Ok(true) => {
            tx.pending = None;
            tx.password_due = Some(crate::authn::transaction::PasswordDue {
                subject_id: subject_id.to_string(),
                acr: acr.to_string(),
                amr,
                remember,
            });
            let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
            if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                return page_failure(lang, &e.into());
            }
            return see_other(&format!("/login/new-password?tx={}", tx.id));
        }
        Ok(false) => {}
        Err(e) => return page_failure(lang, &e),
    }
    match open_session(state, req, &tx, subject_id, acr, amr, remember).await {
        Ok((auth, cookie_value)) => {
            let at = found.map(|f| f.at);
            let mut resp = continue_after_login(state, lang, tx, auth, at).await;
            let max_age = remember.then_some(state.cfg.session.remember_ttl_secs as i64);
            let _ = resp.add_cookie(&cookies::build(
                state,
                cookies::session_name(state),
                cookie_value,
                max_age,
            ));
            resp
        }
        Err(e) => page_failure(lang, &e),
    }
}

/// Opens a new SSO session (a fresh id at every sign-in, the previous one ended) with an
/// audit event in the same transaction.
async fn open_session(
    state: &AppState,
    req: &HttpRequest,
    tx: &LoginTx,
    subject_id: &str,
    acr: &str,
    amr: Vec<String>,
    remember: bool,
) -> Result<(AuthContext, String), OAuthError> {
    let now = state.now();
    let cookie_value = keys::random_token(32).map_err(OAuthError::server)?;
    let ttl = if remember {
        state.cfg.session.remember_ttl_secs
    } else {
        state.cfg.session.ttl_secs
    };
    let session = SsoSession {
        id_hash: keys::sha256_b64url(cookie_value.as_bytes()),
        sid: crate::protocol::tokens::new_id()?,
        subject_id: subject_id.to_string(),
        auth_time: now,
        acr: acr.into(),
        amr,
        remember,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(ttl as i64),
        ended_at: None,
    };
    let previous = current_session(state, req).await?;
    let auth = login::context_of(&session);
    let event = AuditEvent {
        at: now,
        kind: "login.success".into(),
        subject_id: Some(subject_id.to_string()),
        client_id: Some(tx.request.client_id.clone()),
        ip: ip_of(state, req),
        detail: serde_json::json!({ "amr": session.amr, "acr": session.acr, "sid": session.sid }),
    };
    // The previous session's end, the new one and its audit event: one transaction.
    state
        .store
        .call(move |s| s.open_session(&session, previous.as_ref().map(|p| p.sid.as_str()), &event))
        .await?;
    if !remember {
        touch_idle(state, &auth.sid).await?;
    }
    Ok((auth, cookie_value))
}

fn idle_key(sid: &str) -> String {
    format!("sso:idle:{}", keys::sha256_b64url(sid.as_bytes()))
}

/// How long a session without "remember me" stays usable without use.
fn idle_ttl(state: &AppState) -> std::time::Duration {
    std::time::Duration::from_secs(state.cfg.session.idle_timeout_secs.max(1))
}

/// Starts or extends the idle period of a session without "remember me".
pub(super) async fn touch_idle(state: &AppState, sid: &str) -> Result<(), OAuthError> {
    state.eph.put(&idle_key(sid), b"1", idle_ttl(state)).await?;
    Ok(())
}

/// The key of a session's idle period and the TTL each use gives it; `None` for a
/// "remember me" session, which has none.
pub(super) fn idle_period(
    state: &AppState,
    s: &SsoSession,
) -> Option<(String, std::time::Duration)> {
    (!s.remember).then(|| (idle_key(&s.sid), idle_ttl(state)))
}

/// Whether a live session may still serve single sign-on: a "remember me" session until it
/// expires (30 days); any other only while used within `idle_timeout_secs`, each use
/// extending it. An idle one is ended, with an audit event.
pub(super) async fn still_active(state: &AppState, s: &SsoSession) -> Result<bool, OAuthError> {
    let Some((key, ttl)) = idle_period(state, s) else {
        return Ok(true);
    };
    if state.eph.touch(&key, ttl).await? {
        return Ok(true);
    }
    end_idle(state, s).await?;
    Ok(false)
}

/// Ends a session found idle, with an audit event (once, however many requests find it).
pub(super) async fn end_idle(state: &AppState, s: &SsoSession) -> Result<(), OAuthError> {
    let (sid, sub, now) = (s.sid.clone(), s.subject_id.clone(), state.now());
    let event = AuditEvent {
        at: now,
        kind: "session.idle_timeout".into(),
        subject_id: Some(sub),
        client_id: None,
        ip: None,
        detail: serde_json::json!({ "sid": sid }),
    };
    state
        .store
        .call(move |st| {
            if st.end_session(&sid, now)? {
                st.append_audit(&event)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// `at`: the subject at the portal, when the sign-in has read it already.
pub(super) async fn continue_after_login(
    state: &AppState,
    lang: Lang,
    mut tx: LoginTx,
    auth: AuthContext,
    at: Option<SubjectAtClient>,
) -> HttpResponse {
    // A sign-in for the account pages ends there: no consent, no code.
    if super::account::is_account_tx(&tx) {
        return super::account::after_sign_in(state, lang, &tx).await;
    }
    // The grant, and what the code's gate needs (the person's standing, the client's
    // minimum level), in one query.
    let at = match at {
        Some(at) => at,
        None => {
            let (sub, cid) = (auth.subject_id.clone(), tx.request.client_id.clone());
            match state
                .store
                .call(move |s| s.find_signin_at(&sub, &cid))
                .await
            {
                Ok(found) => found.at,
                Err(e) => return page_failure(lang, &e.into()),
            }
        }
    };
    let known = Standing {
        subject_id: auth.subject_id.clone(),
        person: at.standing,
        client_min_level: at.client_min_level,
    };
    match login::after_login(&tx.request, auth, at.grant.as_ref()) {
        Next::Consent(auth) => {
            tx.auth = Some(auth);
            let ttl = std::time::Duration::from_secs(state.cfg.session.login_ttl_secs);
            if let Err(e) = tx.save(state.eph.as_ref(), ttl).await {
                return page_failure(lang, &e.into());
            }
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/consent?tx={}", tx.id)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Next::Finish(auth) => complete(state, lang, &tx, &auth, Some(known)).await,
        Next::Fail(e) => redirect_error(state, &tx.request.target, &e),
        Next::Login | Next::SecondFactor(_) | Next::Passkey(_) | Next::NoPasskey => expired(lang),
    }
}

/// Ends the transaction (once) and issues the code; `known` as [`finish`] takes it. The
/// code is stored in the same step that takes the transaction, so of two completions of
/// one transaction only one gets a code; a refusal by the gate ends the transaction too.
pub(super) async fn complete(
    state: &AppState,
    lang: Lang,
    tx: &LoginTx,
    auth: &AuthContext,
    known: Option<Standing>,
) -> HttpResponse {
    let eph = state.eph.as_ref();
    let request = match super::level::gate(state, lang, &tx.request, auth, known).await {
        Ok(r) => r,
        Err(refusal) => {
            return match LoginTx::take(eph, &tx.id).await {
                Ok(Some(_)) => refusal,
                Ok(None) => expired(lang),
                Err(e) => page_failure(lang, &e.into()),
            }
        }
    };
    let ttl = state.cfg.tokens.code_ttl_secs;
    let tie = code::Tie::Taking(&LoginTx::key(&tx.id));
    match code::issue_tied(eph, tie, &request, auth, ttl).await {
        Ok(Some(c)) => respond(state, &request.target, &[("code", c.as_str())]),
        Ok(None) => expired(lang),
        Err(e) => page_failure(lang, &e),
    }
}
