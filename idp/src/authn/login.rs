//! The steps of a sign-in, as pure decisions: given the request, what the browser already
//! has (session), what the user already agreed to (grant) and `now`, what comes next.

use chrono::{DateTime, Utc};

use super::transaction::AuthContext;
use super::{ACR_ONE_FACTOR, ACR_VALUES};
use crate::domain::{Grant, SsoSession};
use crate::protocol::authorize::AuthRequest;
use crate::protocol::error::{ErrorCode, OAuthError};

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Show the sign-in page.
    Login,
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

/// Whether an existing session can serve this request without signing in again.
fn session_usable(req: &AuthRequest, s: &SsoSession, now: DateTime<Utc>) -> bool {
    if req.prompt_has("login") {
        return false;
    }
    if let Some(max_age) = req.max_age {
        if (now - s.auth_time).num_seconds() > max_age {
            return false;
        }
    }
    if req.hint_sub.as_deref().is_some_and(|h| h != s.subject_id) {
        return false;
    }
    acr_rank(&s.acr) >= acr_rank(required_acr(req))
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

/// First decision on arrival at /authorize.
pub fn on_arrival(
    req: &AuthRequest,
    session: Option<&SsoSession>,
    grant: Option<&Grant>,
    now: DateTime<Utc>,
) -> Next {
    let usable = session.filter(|s| session_usable(req, s, now));
    let none = req.prompt_has("none");
    match usable {
        None if none => Next::Fail(OAuthError::new(
            ErrorCode::LoginRequired,
            "the user is not signed in",
        )),
        None => Next::Login,
        Some(s) => after_login(req, context_of(s), grant),
    }
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
        assert_eq!(on_arrival(&req(&[], None), None, None, now), Next::Login);
        assert!(
            matches!(on_arrival(&req(&["none"], None), None, None, now), Next::Fail(e) if e.code == ErrorCode::LoginRequired)
        );
        assert!(matches!(
            on_arrival(&req(&[], None), Some(&s), Some(&g), now),
            Next::Finish(_)
        ));
        assert!(matches!(
            on_arrival(&req(&[], None), Some(&s), None, now),
            Next::Consent(_)
        ));
        assert!(
            matches!(on_arrival(&req(&["none"], None), Some(&s), None, now), Next::Fail(e) if e.code == ErrorCode::ConsentRequired)
        );
        assert_eq!(
            on_arrival(&req(&["login"], None), Some(&s), Some(&g), now),
            Next::Login
        );
        assert_eq!(
            on_arrival(&req(&[], Some(10)), Some(&s), Some(&g), now),
            Next::Login
        );
        assert!(matches!(
            on_arrival(&req(&[], Some(1000)), Some(&s), Some(&g), now),
            Next::Finish(_)
        ));
        assert!(matches!(
            on_arrival(&req(&["consent"], None), Some(&s), Some(&g), now),
            Next::Consent(_)
        ));
        let mut stronger = req(&[], None);
        stronger.acr_values = vec![crate::authn::ACR_TWO_FACTORS.into()];
        assert_eq!(on_arrival(&stronger, Some(&s), Some(&g), now), Next::Login);
    }
}
