//! `idp users add --temporary` and `idp users reset-password`: an operator gives a person a
//! temporary password, which the next sign-in must replace before anything else
//! (`/login/new-password`). A reset ends every session and revokes every refresh token.

use idp::audit::AuditEvent;
use idp::authn::password_policy;
use idp::clock::{Clock, SystemClock};
use idp::config::Config;
use idp::domain::identifier::normalize_login;
use idp::domain::Subject;
use idp::startup::BoxError;
use idp::store::{PasswordChange, SqlStore, SubjectStore};

fn event(kind: &str, subject_id: &str) -> AuditEvent {
    AuditEvent {
        at: SystemClock.now(),
        kind: kind.into(),
        subject_id: Some(subject_id.into()),
        client_id: None,
        ip: None,
        detail: serde_json::json!({ "actor": "operator:cli" }),
    }
}

/// Marks the password of a just-created account temporary.
pub fn mark_temporary(store: &SqlStore, s: &Subject) -> Result<(), BoxError> {
    use idp::store::SigninStore;
    let ev = event("password.temporary_set", &s.id);
    store.set_password(&PasswordChange {
        subject_id: &s.id,
        password_hash: &s.password_hash,
        must_change: true,
        keep_sid: None,
        event: &ev,
        alert: None,
        now: SystemClock.now(),
    })?;
    Ok(())
}

/// A random temporary password that passes the policy: 16 characters of base64url with a
/// fixed tail of the four character classes.
fn generate(cfg: &Config) -> Result<String, BoxError> {
    for _ in 0..20 {
        let body = keys::random_token(12)?;
        let candidate = format!("{body}Tq7!");
        let ctx = password_policy::PolicyContext {
            min_length: cfg.password.min_length,
            ..Default::default()
        };
        if password_policy::check(&candidate, &ctx).is_ok() {
            return Ok(candidate);
        }
    }
    Err("could not generate a temporary password".into())
}

/// `idp users reset-password --login L [--password P] [--json]`.
pub fn reset_password(
    cfg: &Config,
    store: &SqlStore,
    login: &str,
    password: Option<String>,
    json: bool,
) -> Result<(), BoxError> {
    use idp::store::SigninStore;
    let subject = store
        .find_subject_by_login(&normalize_login(login))?
        .ok_or_else(|| format!("no account with login `{login}`"))?;
    let password = match password {
        Some(p) => {
            let ctx = password_policy::PolicyContext {
                min_length: cfg.password.min_length,
                ..Default::default()
            };
            if let Err(v) = password_policy::check(&p, &ctx) {
                let codes: Vec<&str> = v.iter().map(|v| v.code()).collect();
                return Err(format!("password refused: {}", codes.join(", ")).into());
            }
            p
        }
        None => generate(cfg)?,
    };
    let hasher = idp::authn::password::PasswordHasher::new(&cfg.password)?;
    let hash = hasher.hash_blocking(&password)?;
    let ev = event("password.reset_by_operator", &subject.id);
    let done = store.set_password(&PasswordChange {
        subject_id: &subject.id,
        password_hash: &hash,
        must_change: true,
        keep_sid: None,
        event: &ev,
        alert: None,
        now: SystemClock.now(),
    })?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "sub": subject.id,
                "temporary_password": password,
                "sessions_ended": done.sessions_ended,
                "refresh_tokens_revoked": done.refresh_tokens_revoked,
            })
        );
    } else {
        println!(
            "temporary password: {password}\nIt must be changed at the next sign-in. Sessions ended: {}.",
            done.sessions_ended
        );
    }
    Ok(())
}
