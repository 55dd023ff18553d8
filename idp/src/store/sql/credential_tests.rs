//! Contract tests of second-factor credentials, on every backend.

use std::sync::Barrier;

use super::tests::{backends, each, event, subject, t0};
use crate::domain::{Credential, CredentialKind};
use crate::store::{AuditStore, CredentialStore, SubjectStore};

/// An authenticator app of `sub-1`, not yet confirmed.
pub(super) fn totp(id: &str) -> Credential {
    Credential {
        id: id.into(),
        subject_id: "sub-1".into(),
        kind: CredentialKind::Totp,
        secret: Some(keys::SecretBytes::new(b"TOTP-SECRET-0123456789".to_vec())),
        secret_hash: None,
        last_used_step: None,
        created_at: t0(),
        confirmed_at: None,
        used_at: None,
    }
}

fn recovery(id: &str, hash: &str) -> Credential {
    Credential {
        id: id.into(),
        subject_id: "sub-1".into(),
        kind: CredentialKind::Recovery,
        secret: None,
        secret_hash: Some(hash.into()),
        last_used_step: None,
        created_at: t0(),
        confirmed_at: None,
        used_at: None,
    }
}

#[test]
fn totp_confirm_replaces_other_apps_and_steps_only_move_forward() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_credential(&totp("old"), &event("totp.enrolment_started"))
            .unwrap();
        s.confirm_totp("old", 10, &event("totp.enrolled")).unwrap();
        s.insert_credential(&totp("new"), &event("totp.enrolment_started"))
            .unwrap();
        assert!(s.confirm_totp("new", 20, &event("totp.enrolled")).unwrap());
        assert!(
            !s.confirm_totp("new", 21, &event("totp.enrolled")).unwrap(),
            "only once"
        );
        let creds = s.list_credentials("sub-1").unwrap();
        assert_eq!(creds.len(), 1, "one app at a time");
        assert_eq!(creds[0].id, "new");
        assert!(creds[0].usable());
        assert_eq!(
            creds[0].secret.as_ref().unwrap().expose(),
            b"TOTP-SECRET-0123456789"
        );

        assert!(
            !s.use_totp_step("new", 20).unwrap(),
            "the confirming code's step is spent"
        );
        assert!(s.use_totp_step("new", 21).unwrap());
        assert!(!s.use_totp_step("new", 21).unwrap(), "replay");
        assert!(!s.use_totp_step("new", 19).unwrap(), "older step");
        let kinds: Vec<String> = s
            .list_audit(20)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "totp.enrolled").count(),
            2,
            "{kinds:?}"
        );
    });
}

#[test]
fn concurrent_use_of_one_step_has_one_winner() {
    for db in backends() {
        let s = &*db;
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_credential(&totp("app"), &event("e")).unwrap();
        s.confirm_totp("app", 1, &event("e")).unwrap();
        let barrier = Barrier::new(6);
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        usize::from(s.use_totp_step("app", 2).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "{:?}", db.kind());
    }
}

#[test]
fn recovery_codes_spend_once_and_are_replaced_whole() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.replace_recovery_codes(
            "sub-1",
            &[recovery("r1", "h1"), recovery("r2", "h2")],
            &event("recovery_codes.issued"),
        )
        .unwrap();
        assert!(s.use_recovery_code("sub-1", "h1", t0()).unwrap());
        assert!(!s.use_recovery_code("sub-1", "h1", t0()).unwrap(), "spent");
        assert!(
            !s.use_recovery_code("sub-2", "h2", t0()).unwrap(),
            "someone else's"
        );
        let usable = |s: &super::SqlStore| {
            s.list_credentials("sub-1")
                .unwrap()
                .iter()
                .filter(|c| c.usable())
                .count()
        };
        assert_eq!(usable(s), 1);
        s.replace_recovery_codes(
            "sub-1",
            &[recovery("r3", "h3")],
            &event("recovery_codes.issued"),
        )
        .unwrap();
        assert!(
            !s.use_recovery_code("sub-1", "h2", t0()).unwrap(),
            "old codes are gone"
        );
        assert_eq!(usable(s), 1);
    });
}

#[test]
fn totp_secrets_are_sealed_at_rest() {
    for db in backends() {
        db.insert_subject(&subject("sub-1", "a@example.ru"))
            .unwrap();
        db.insert_credential(&totp("app"), &event("e")).unwrap();
        let dump = db.dump();
        let secret = b"TOTP-SECRET-0123456789";
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret),
            "TOTP secret in clear in the {:?} dump",
            db.kind()
        );
    }
}
