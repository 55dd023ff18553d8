//! `idp users totp-enroll|totp-confirm|recovery-codes`: an operator sets up second factors
//! (the citizen's own security page does the same through the same store calls).

use chrono::{DateTime, Utc};
use idp::audit::AuditEvent;
use idp::authn::{recovery, totp};
use idp::clock::{Clock, SystemClock};
use idp::config::Config;
use idp::domain::identifier::normalize_login;
use idp::domain::{Credential, CredentialKind, Subject};
use idp::startup::BoxError;
use idp::store::{CredentialStore, SqlStore, SubjectStore};

fn subject(store: &SqlStore, login: &str) -> Result<Subject, BoxError> {
    store
        .find_subject_by_login(&normalize_login(login))?
        .ok_or_else(|| format!("no account with login `{login}`").into())
}

fn event(now: DateTime<Utc>, kind: &str, subject_id: &str) -> AuditEvent {
    AuditEvent {
        at: now,
        kind: kind.into(),
        subject_id: Some(subject_id.into()),
        client_id: None,
        ip: None,
        detail: serde_json::json!({ "actor": "operator:cli" }),
    }
}

pub fn totp_enroll(
    cfg: &Config,
    store: &SqlStore,
    login: &str,
    json: bool,
) -> Result<(), BoxError> {
    let s = subject(store, login)?;
    let now = SystemClock.now();
    let secret = totp::new_secret()?;
    let issuer = url::Url::parse(&cfg.issuer())
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "Propusk".into());
    let uri = totp::otpauth_uri(secret.expose(), &issuer, &s.login)?;
    let b32 = totp::base32(secret.expose());
    let cred = Credential {
        id: uuid::Uuid::new_v4().to_string(),
        subject_id: s.id.clone(),
        kind: CredentialKind::Totp,
        secret: Some(secret),
        secret_hash: None,
        last_used_step: None,
        created_at: now,
        confirmed_at: None,
        used_at: None,
    };
    store.insert_credential(&cred, &event(now, "totp.enrolment_started", &s.id))?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "secret": b32, "otpauth_uri": uri })
        );
    } else {
        println!("secret: {b32}\notpauth URI: {uri}\nconfirm with: idp users totp-confirm --login {login} --code CODE");
    }
    Ok(())
}

pub fn totp_confirm(store: &SqlStore, login: &str, code: &str) -> Result<(), BoxError> {
    let s = subject(store, login)?;
    let now = SystemClock.now();
    let creds = store.list_credentials(&s.id)?;
    // The newest pending app is the one being set up.
    let pending = creds
        .iter()
        .rev()
        .find(|c| c.kind == CredentialKind::Totp && c.confirmed_at.is_none())
        .ok_or("no authenticator app is waiting for confirmation; run totp-enroll first")?;
    let secret = pending
        .secret
        .as_ref()
        .ok_or("the pending app has no secret")?;
    let step = totp::check(secret.expose(), code, now).ok_or("the code is not right")?;
    if !store.confirm_totp(&pending.id, step, &event(now, "totp.enrolled", &s.id))? {
        return Err("the app was confirmed or replaced meanwhile".into());
    }
    println!("authenticator app confirmed; two-factor sign-in is on");
    Ok(())
}

pub fn recovery_codes(store: &SqlStore, login: &str, json: bool) -> Result<(), BoxError> {
    let s = subject(store, login)?;
    let now = SystemClock.now();
    let codes = recovery::generate().ok_or("random number generator failed")?;
    let vault = store.vault()?;
    let creds: Vec<Credential> = codes
        .iter()
        .map(|c| Credential {
            id: uuid::Uuid::new_v4().to_string(),
            subject_id: s.id.clone(),
            kind: CredentialKind::Recovery,
            secret: None,
            secret_hash: recovery::normalize(c).map(|n| recovery::hash(vault, &n)),
            last_used_step: None,
            created_at: now,
            confirmed_at: None,
            used_at: None,
        })
        .collect();
    store.replace_recovery_codes(&s.id, &creds, &event(now, "recovery_codes.issued", &s.id))?;
    if json {
        println!("{}", serde_json::json!({ "codes": codes }));
    } else {
        for c in &codes {
            println!("{c}");
        }
    }
    Ok(())
}
