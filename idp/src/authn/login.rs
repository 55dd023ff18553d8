//! The steps of a sign-in, as pure decisions: given the request, what the browser already
//! has (session), what the user already agreed to (grant) and `now`, what comes next.

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

use super::transaction::AuthContext;
use super::{ACR_ONE_FACTOR, ACR_PHISHING_RESISTANT, ACR_TWO_FACTORS, ACR_VALUES};
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
    /// What must come next: a second factor (an app, a code, a security key) or, for a
    /// portal that needs a phishing-resistant sign-in, one of the person's passkeys. The
    /// second-factor endpoints refuse a pending sign-in that needs a passkey.
    #[serde(default)]
    pub need: Need,
}

/// What a pending sign-in waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    #[default]
    SecondFactor,
    Passkey,
}

impl Pending {
    fn new(subject_id: &str, remember: bool, amr: Vec<String>, need: Need) -> Self {
        Pending {
            subject_id: subject_id.to_string(),
            remember,
            amr,
            failures: 0,
            need,
        }
    }

    /// Whether only a passkey can finish this sign-in.
    pub fn needs_passkey(&self) -> bool {
        self.need == Need::Passkey
    }
}

/// What the person has set up, as far as a decision needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Factors {
    /// A factor that can confirm a sign-in as the second one (an app, a security key, or a
    /// code to a confirmed contact when the portal asks for two factors).
    pub second: bool,
    /// A passkey (the only factor that reaches the phishing-resistant level here).
    pub passkey: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Show the sign-in page.
    Login,
    /// Ask for a second factor (step-up of a session, or after the password).
    SecondFactor(Pending),
    /// Ask for one of the person's passkeys (step-up of a session to the
    /// phishing-resistant level).
    Passkey(Pending),
    /// The portal needs a passkey and the person of the session has none: explain, and let
    /// them return to the portal (`access_denied`).
    NoPasskey,
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

/// First decision on arrival at /authorize. `factors`: what the session's subject has set
/// up (ignored without a session, and needed only when the session is too weak).
pub fn on_arrival(
    req: &AuthRequest,
    session: Option<&SsoSession>,
    grant: Option<&Grant>,
    factors: Factors,
    now: DateTime<Utc>,
) -> Next {
    let fits = session.filter(|s| session_fits(req, s, now));
    let none = req.prompt_has("none");
    match fits {
        Some(s) if strong_enough(req, &s.acr) => after_login(req, context_of(s), grant),
        // The right person, but the portal wants more: ask for the missing factor only.
        Some(_) if none => Next::Fail(OAuthError::new(
            ErrorCode::InteractionRequired,
            "the request needs a stronger sign-in than the current one",
        )),
        Some(s) => match step_up(req, factors) {
            Some(need) => {
                let p = Pending::new(&s.subject_id, s.remember, s.amr.clone(), need);
                match need {
                    Need::Passkey => Next::Passkey(p),
                    Need::SecondFactor => Next::SecondFactor(p),
                }
            }
            None if needs_passkey(req) => Next::NoPasskey,
            None => Next::Login,
        },
        None if none => Next::Fail(OAuthError::new(
            ErrorCode::LoginRequired,
            "the user is not signed in",
        )),
        None => Next::Login,
    }
}

/// Whether the request needs the phishing-resistant level (a passkey).
pub fn needs_passkey(req: &AuthRequest) -> bool {
    acr_rank(required_acr(req)) >= acr_rank(ACR_PHISHING_RESISTANT)
}

/// What a step-up to the level the request needs asks for, if the person can give it:
/// a passkey for the phishing-resistant level, else a second factor.
fn step_up(req: &AuthRequest, factors: Factors) -> Option<Need> {
    if needs_passkey(req) {
        factors.passkey.then_some(Need::Passkey)
    } else {
        factors.second.then_some(Need::SecondFactor)
    }
}

/// What follows a right password.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterFirstFactor {
    /// Ask for the second factor.
    Second(Pending),
    /// Ask for one of the person's passkeys (the portal needs the phishing-resistant level).
    Passkey(Pending),
    /// Signed in with one factor.
    Done { acr: &'static str, amr: Vec<String> },
    /// The portal needs a passkey and the person has none: a page that explains how to add
    /// one, with a way back to the portal (`access_denied`).
    NoPasskey,
    /// The portal needs more than this person can give (no second factor set up).
    Refuse(OAuthError),
}

/// After a right password: a passkey when the portal needs the phishing-resistant level;
/// the second factor when the person has one (they enabled it); one factor otherwise,
/// unless the portal asked for two.
pub fn after_password(
    req: &AuthRequest,
    subject_id: &str,
    remember: bool,
    factors: Factors,
) -> AfterFirstFactor {
    let pwd = || vec!["pwd".to_string()];
    if needs_passkey(req) {
        return match factors.passkey {
            true => {
                AfterFirstFactor::Passkey(Pending::new(subject_id, remember, pwd(), Need::Passkey))
            }
            false => AfterFirstFactor::NoPasskey,
        };
    }
    if factors.second {
        return AfterFirstFactor::Second(Pending::new(
            subject_id,
            remember,
            pwd(),
            Need::SecondFactor,
        ));
    }
    if required_acr(req) != ACR_ONE_FACTOR {
        return AfterFirstFactor::Refuse(OAuthError::new(
            ErrorCode::AccessDenied,
            "the portal requires two-factor sign-in, and the user has not set up a second factor",
        ));
    }
    AfterFirstFactor::Done {
        acr: ACR_ONE_FACTOR,
        amr: pwd(),
    }
}

/// The refusal a portal hears when the person cannot give the passkey it needs (after the
/// page that explains it).
pub fn no_passkey_error() -> OAuthError {
    OAuthError::new(
        ErrorCode::AccessDenied,
        "the portal requires a passkey or electronic-signature sign-in, and the user has no passkey",
    )
}

fn with_methods(base: &[String], methods: &[String]) -> Vec<String> {
    let mut amr = base.to_vec();
    for m in methods {
        if !amr.contains(m) {
            amr.push(m.clone());
        }
    }
    amr
}

/// The acr and amr after a right passkey that stepped up `p` (a password, or a session):
/// the phishing-resistant level, and the amr of what came before followed by the passkey's
/// own (`hwk`/`swk`, `user`, `mfa`: the same as a passkey-first sign-in, `passkey_amr`).
pub fn after_passkey(p: &Pending, passkey_amr: &[String]) -> (&'static str, Vec<String>) {
    (ACR_PHISHING_RESISTANT, with_methods(&p.amr, passkey_amr))
}

/// The acr and amr after a right second factor (`method_amr`: `otp` for app and recovery
/// codes, RFC 8176).
pub fn after_second_factor(p: &Pending, method_amr: &str) -> (&'static str, Vec<String>) {
    let methods = [method_amr.to_string(), "mfa".to_string()];
    (ACR_TWO_FACTORS, with_methods(&p.amr, &methods))
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
            on_arrival(&req(&[], None), None, None, Factors::default(), now),
            Next::Login
        );
        assert!(
            matches!(on_arrival(&req(&["none"], None), None, None, Factors::default(), now), Next::Fail(e) if e.code == ErrorCode::LoginRequired)
        );
        assert!(matches!(
            on_arrival(&req(&[], None), Some(&s), Some(&g), Factors::default(), now),
            Next::Finish(_)
        ));
        assert!(matches!(
            on_arrival(&req(&[], None), Some(&s), None, Factors::default(), now),
            Next::Consent(_)
        ));
        assert!(
            matches!(on_arrival(&req(&["none"], None), Some(&s), None, Factors::default(), now), Next::Fail(e) if e.code == ErrorCode::ConsentRequired)
        );
        assert_eq!(
            on_arrival(
                &req(&["login"], None),
                Some(&s),
                Some(&g),
                Factors::default(),
                now
            ),
            Next::Login
        );
        assert_eq!(
            on_arrival(
                &req(&[], Some(10)),
                Some(&s),
                Some(&g),
                Factors::default(),
                now
            ),
            Next::Login
        );
        assert!(matches!(
            on_arrival(
                &req(&[], Some(1000)),
                Some(&s),
                Some(&g),
                Factors::default(),
                now
            ),
            Next::Finish(_)
        ));
        assert!(matches!(
            on_arrival(
                &req(&["consent"], None),
                Some(&s),
                Some(&g),
                Factors::default(),
                now
            ),
            Next::Consent(_)
        ));
        let mut stronger = req(&[], None);
        stronger.acr_values = vec![crate::authn::ACR_TWO_FACTORS.into()];
        assert_eq!(
            on_arrival(&stronger, Some(&s), Some(&g), Factors::default(), now),
            Next::Login
        );
    }

    fn wants(acr: &str, prompt: &[&str]) -> AuthRequest {
        let mut r = req(prompt, None);
        r.acr_values = vec![acr.into()];
        r
    }

    const PASSKEY: Factors = Factors {
        second: true,
        passkey: true,
    };

    #[test]
    fn a_password_steps_up_to_a_passkey_for_the_phishing_resistant_level() {
        let r = wants(ACR_PHISHING_RESISTANT, &[]);
        let AfterFirstFactor::Passkey(p) = after_password(&r, "u", true, PASSKEY) else {
            panic!("a person with a passkey is asked for it");
        };
        assert!(p.needs_passkey() && p.remember);
        assert_eq!(p.amr, ["pwd"]);
        let (acr, amr) = after_passkey(&p, &["hwk".into(), "user".into(), "mfa".into()]);
        assert_eq!(acr, ACR_PHISHING_RESISTANT);
        assert_eq!(amr, ["pwd", "hwk", "user", "mfa"]);
        // No passkey: the explaining page, whatever else the person has.
        let only_app = Factors {
            second: true,
            passkey: false,
        };
        assert_eq!(
            after_password(&r, "u", false, only_app),
            AfterFirstFactor::NoPasskey
        );
        assert_eq!(no_passkey_error().code, ErrorCode::AccessDenied);
        // Two factors still ask for the second factor, never a passkey.
        let r2 = wants(ACR_TWO_FACTORS, &[]);
        assert!(matches!(
            after_password(&r2, "u", false, PASSKEY),
            AfterFirstFactor::Second(p) if !p.needs_passkey()
        ));
        assert!(matches!(
            after_password(&r2, "u", false, Factors::default()),
            AfterFirstFactor::Refuse(e) if e.code == ErrorCode::AccessDenied
        ));
        assert!(matches!(
            after_password(&req(&[], None), "u", false, Factors::default()),
            AfterFirstFactor::Done {
                acr: ACR_ONE_FACTOR,
                ..
            }
        ));
    }

    #[test]
    fn a_session_steps_up_to_a_passkey() {
        let now = Utc::now();
        let mut s = session(now - chrono::Duration::seconds(100));
        s.acr = ACR_TWO_FACTORS.into();
        s.amr = vec!["pwd".into(), "otp".into(), "mfa".into()];
        let g = grant(&["openid", "profile"]);
        let r = wants(ACR_PHISHING_RESISTANT, &[]);
        let Next::Passkey(p) = on_arrival(&r, Some(&s), Some(&g), PASSKEY, now) else {
            panic!("a session at acr 2 steps up with a passkey");
        };
        assert!(p.needs_passkey());
        let (acr, amr) = after_passkey(&p, &["swk".into(), "user".into(), "mfa".into()]);
        assert_eq!(acr, ACR_PHISHING_RESISTANT);
        assert_eq!(amr, ["pwd", "otp", "mfa", "swk", "user"]);
        // A second factor alone cannot reach it: the explaining page.
        let app = Factors {
            second: true,
            passkey: false,
        };
        assert_eq!(
            on_arrival(&r, Some(&s), Some(&g), app, now),
            Next::NoPasskey
        );
        // prompt=none cannot show anything.
        assert!(matches!(
            on_arrival(&wants(ACR_PHISHING_RESISTANT, &["none"]), Some(&s), Some(&g), PASSKEY, now),
            Next::Fail(e) if e.code == ErrorCode::InteractionRequired
        ));
        // Without a session: the sign-in page (which leads with the passkey).
        assert_eq!(on_arrival(&r, None, None, PASSKEY, now), Next::Login);
        // A session already at acr 3 serves the request as it is.
        s.acr = ACR_PHISHING_RESISTANT.into();
        assert!(matches!(
            on_arrival(&r, Some(&s), Some(&g), Factors::default(), now),
            Next::Finish(_)
        ));
        // acr 2 from a session at acr 1 still asks for the second factor.
        s.acr = ACR_ONE_FACTOR.into();
        assert!(matches!(
            on_arrival(&wants(ACR_TWO_FACTORS, &[]), Some(&s), Some(&g), PASSKEY, now),
            Next::SecondFactor(p) if !p.needs_passkey()
        ));
    }

    #[test]
    fn pending_sign_ins_of_older_records_wait_for_a_second_factor() {
        let old = r#"{"subject_id":"u","remember":false,"amr":["pwd"],"failures":1}"#;
        let p: Pending = serde_json::from_str(old).unwrap();
        assert_eq!(p.need, Need::SecondFactor);
    }
}
