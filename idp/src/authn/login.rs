//! The steps of a sign-in, as pure decisions: given the request, what the browser already
//! has (session), what the user already agreed to (grant) and `now`, what comes next.

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use super::transaction::AuthContext;
use super::{ACR_ONE_FACTOR, ACR_TWO_FACTORS, ACR_VALUES};
use crate::domain::{Grant, SsoSession};
use crate::protocol::authorize::AuthRequest;
use crate::protocol::error::{ErrorCode, OAuthError};

/// Wrong second-factor codes allowed in one sign-in; then the password must be entered again.
pub const MAX_CODE_FAILURES: u8 = 3;

/// A sign-in whose first factor is done, waiting for the second (kept in the transaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub subject_id: String,
    pub remember: bool,
    /// amr of the first factor (`pwd`), or of the session being stepped up.
    pub amr: Vec<String>,
    /// Wrong codes so far.
    #[serde(default)]
    pub failures: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Show the sign-in page.
    Login,
    /// Ask for a second factor (step-up of a session, or after the password).
    SecondFactor(Pending),
    /// Show the consent page.
    Consent(AuthContext),
    /// Issue the code.
    Finish(AuthContext),
    /// Tell the client (prompt=none could not be honoured).
    Fail(OAuthError),
}

/// The acr a request needs: the strongest of its `acr_values` we know, else one factor.
pub fn required_acr(req: &AuthRequest) -> &'static str {
    ACR_VALUES
        .iter()
        .rev()
        .find(|a| req.acr_values.iter().any(|v| v == *a))
        .copied()
        .unwrap_or(ACR_ONE_FACTOR)
}

fn acr_rank(acr: &str) -> usize {
    ACR_VALUES.iter().position(|a| *a == acr).unwrap_or(0)
}

/// Whether an existing session is the right person, recent enough, and not refused by
/// `prompt=login`: it can serve the request, at most after a step-up.
fn session_fits(req: &AuthRequest, s: &SsoSession, now: DateTime<Utc>) -> bool {
    if req.prompt_has("login") {
        return false;
    }
    if let Some(max_age) = req.max_age {
        if (now - s.auth_time).num_seconds() > max_age {
            return false;
        }
    }
    req.hint_sub.as_deref().is_none_or(|h| h == s.subject_id)
}

/// Whether the session is strong enough for the request as it is.
pub fn strong_enough(req: &AuthRequest, acr: &str) -> bool {
    acr_rank(acr) >= acr_rank(required_acr(req))
}

pub fn context_of(s: &SsoSession) -> AuthContext {
    AuthContext {
        subject_id: s.subject_id.clone(),
        sid: s.sid.clone(),
        auth_time: s.auth_time,
        acr: s.acr.clone(),
        amr: s.amr.clone(),
    }
}

/// Whether the user must (again) agree to share data.
pub fn consent_needed(req: &AuthRequest, grant: Option<&Grant>) -> bool {
    if req.prompt_has("consent") {
        return true;
    }
    match grant {
        Some(g) => req.scopes.iter().any(|s| !g.scopes.contains(s)),
        None => true,
    }
}

/// First decision on arrival at /authorize. `has_second_factor`: whether the session's
/// subject has a usable second factor (ignored without a session).
pub fn on_arrival(
    req: &AuthRequest,
    session: Option<&SsoSession>,
    grant: Option<&Grant>,
    has_second_factor: bool,
    now: DateTime<Utc>,
) -> Next {
    let fits = session.filter(|s| session_fits(req, s, now));
    let none = req.prompt_has("none");
    match fits {
        Some(s) if strong_enough(req, &s.acr) => after_login(req, context_of(s), grant),
        // The right person, but the portal wants more: ask for the second factor only.
        Some(_) if none => Next::Fail(OAuthError::new(
            ErrorCode::InteractionRequired,
            "the request needs a stronger sign-in than the current one",
        )),
        Some(s) if has_second_factor && step_up_possible(req) => Next::SecondFactor(Pending {
            subject_id: s.subject_id.clone(),
            remember: s.remember,
            amr: s.amr.clone(),
            failures: 0,
        }),
        _ if none => Next::Fail(OAuthError::new(
            ErrorCode::LoginRequired,
            "the user is not signed in",
        )),
        _ => Next::Login,
    }
}

/// Whether a second factor can reach what the request needs (a passkey or certificate
/// sign-in is needed for the phishing-resistant level).
fn step_up_possible(req: &AuthRequest) -> bool {
    acr_rank(required_acr(req)) <= acr_rank(ACR_TWO_FACTORS)
}

/// What follows a right password.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterFirstFactor {
    /// Ask for the second factor.
    Second(Pending),
    /// Signed in with one factor.
    Done { acr: &'static str, amr: Vec<String> },
    /// The portal needs more than this person can give (no second factor set up).
    Refuse(OAuthError),
}

/// After a right password: the second factor when the person has one (they enabled it),
/// one factor otherwise, unless the portal asked for more.
pub fn after_password(
    req: &AuthRequest,
    subject_id: &str,
    remember: bool,
    has_second_factor: bool,
) -> AfterFirstFactor {
    if !step_up_possible(req) {
        return AfterFirstFactor::Refuse(OAuthError::new(
            ErrorCode::AccessDenied,
            "the portal requires a passkey or electronic-signature sign-in",
        ));
    }
    if has_second_factor {
        return AfterFirstFactor::Second(Pending {
            subject_id: subject_id.to_string(),
            remember,
            amr: vec!["pwd".into()],
            failures: 0,
        });
    }
    if required_acr(req) != ACR_ONE_FACTOR {
        return AfterFirstFactor::Refuse(OAuthError::new(
            ErrorCode::AccessDenied,
            "the portal requires two-factor sign-in, and the user has not set up a second factor",
        ));
    }
    AfterFirstFactor::Done {
        acr: ACR_ONE_FACTOR,
        amr: vec!["pwd".into()],
    }
}

/// The acr and amr after a right second factor (`method_amr`: `otp` for app and recovery
/// codes, RFC 8176).
pub fn after_second_factor(p: &Pending, method_amr: &str) -> (&'static str, Vec<String>) {
    let mut amr = p.amr.clone();
    for m in [method_amr, "mfa"] {
        if !amr.iter().any(|a| a == m) {
            amr.push(m.to_string());
        }
    }
    (ACR_TWO_FACTORS, amr)
}

/// After the user signed in (or had a session).
pub fn after_login(req: &AuthRequest, auth: AuthContext, grant: Option<&Grant>) -> Next {
    if consent_needed(req, grant) {
        if req.prompt_has("none") {
            return Next::Fail(OAuthError::new(
                ErrorCode::ConsentRequired,
                "the user has not agreed to share this data",
            ));
        }
        return Next::Consent(auth);
    }
    Next::Finish(auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::authorize::{ResponseMode, ResponseTarget};

    fn req(prompt: &[&str], max_age: Option<i64>) -> AuthRequest {
        AuthRequest {
            client_id: "c".into(),
            target: ResponseTarget {
                redirect_uri: "https://rp/cb".into(),
                state: None,
                mode: ResponseMode::Query,
            },
            scopes: vec!["openid".into(), "profile".into()],
            nonce: None,
            code_challenge: "x".into(),
            prompt: prompt.iter().map(|s| s.to_string()).collect(),
            max_age,
            login_hint: None,
            hint_sub: None,
            acr_values: vec![],
            ui_locales: None,
            claims: None,
        }
    }

    fn session(auth_time: DateTime<Utc>) -> SsoSession {
        SsoSession {
            id_hash: "h".into(),
            sid: "sid".into(),
            subject_id: "u".into(),
            auth_time,
            acr: ACR_ONE_FACTOR.into(),
            amr: vec!["pwd".into()],
            remember: false,
            created_at: auth_time,
            expires_at: auth_time + chrono::Duration::hours(8),
            ended_at: None,
        }
    }

    fn grant(scopes: &[&str]) -> Grant {
        let t = Utc::now();
        Grant {
            subject_id: "u".into(),
            client_id: "c".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn decisions() {
        let now = Utc::now();
        let s = session(now - chrono::Duration::seconds(100));
        let g = grant(&["openid", "profile"]);
        assert_eq!(
            on_arrival(&req(&[], None), None, None, false, now),
            Next::Login
        );
        assert!(
            matches!(on_arrival(&req(&["none"], None), None, None, false, now), Next::Fail(e) if e.code == ErrorCode::LoginRequired)
        );
        assert!(matches!(
            on_arrival(&req(&[], None), Some(&s), Some(&g), false, now),
            Next::Finish(_)
        ));
        assert!(matches!(
            on_arrival(&req(&[], None), Some(&s), None, false, now),
            Next::Consent(_)
        ));
        assert!(
            matches!(on_arrival(&req(&["none"], None), Some(&s), None, false, now), Next::Fail(e) if e.code == ErrorCode::ConsentRequired)
        );
        assert_eq!(
            on_arrival(&req(&["login"], None), Some(&s), Some(&g), false, now),
            Next::Login
        );
        assert_eq!(
            on_arrival(&req(&[], Some(10)), Some(&s), Some(&g), false, now),
            Next::Login
        );
        assert!(matches!(
            on_arrival(&req(&[], Some(1000)), Some(&s), Some(&g), false, now),
            Next::Finish(_)
        ));
        assert!(matches!(
            on_arrival(&req(&["consent"], None), Some(&s), Some(&g), false, now),
            Next::Consent(_)
        ));
        let mut stronger = req(&[], None);
        stronger.acr_values = vec![crate::authn::ACR_TWO_FACTORS.into()];
        assert_eq!(
            on_arrival(&stronger, Some(&s), Some(&g), false, now),
            Next::Login
        );
    }
}
