//! Contract tests of passkeys / security keys and factor removal, on every backend.

use std::sync::Barrier;

use super::tests::{backends, each, event, subject, t0};
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::domain::{Credential, CredentialKind};
use crate::store::{
    AuditStore, CredentialStore, FactorRef, StoreError, SubjectStore, WebauthnStore,
};

/// A credential of `sub-1`.
pub(super) fn key(id: &str, cred_id: &str, kind: WebauthnKind) -> WebauthnCredential {
    WebauthnCredential {
        id: id.into(),
        subject_id: "sub-1".into(),
        kind,
        cred_id: cred_id.into(),
        name: format!("key {id}"),
        data: "{\"v\":1}".into(),
        sign_count: 0,
        created_at: t0(),
        last_used_at: None,
    }
}

fn kinds(s: &super::SqlStore) -> Vec<String> {
    s.list_audit(50)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn handles_are_created_once_and_found_back() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_subject(&subject("sub-2", "b@example.ru")).unwrap();
        assert_eq!(s.webauthn_handle("sub-1", "h-1").unwrap(), "h-1");
        assert_eq!(
            s.webauthn_handle("sub-1", "h-other").unwrap(),
            "h-1",
            "the first handle stays"
        );
        assert_eq!(
            s.subject_of_handle("h-1").unwrap().as_deref(),
            Some("sub-1")
        );
        assert_eq!(s.subject_of_handle("h-other").unwrap(), None);
        // A handle belongs to one subject.
        assert!(matches!(
            s.webauthn_handle("sub-2", "h-1"),
            Err(StoreError::Conflict)
        ));
    });
}

#[test]
fn credentials_round_trip_and_ids_are_unique() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        let pk = key("k1", "CRED-1", WebauthnKind::Passkey);
        s.insert_webauthn(&pk, &event("passkey.enrolled")).unwrap();
        s.insert_webauthn(
            &key("k2", "CRED-2", WebauthnKind::SecurityKey),
            &event("security_key.enrolled"),
        )
        .unwrap();
        // The same authenticator credential twice: refused, and nothing half-written.
        assert!(matches!(
            s.insert_webauthn(
                &key("k3", "CRED-1", WebauthnKind::Passkey),
                &event("passkey.enrolled")
            ),
            Err(StoreError::Conflict)
        ));
        let all = s.list_webauthn("sub-1").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], pk);
        assert_eq!(all[1].kind, WebauthnKind::SecurityKey);
        assert_eq!(s.find_webauthn("CRED-2").unwrap().unwrap().id, "k2");
        assert_eq!(s.find_webauthn("nope").unwrap(), None);
        let k = kinds(s);
        assert_eq!(
            k.iter().filter(|k| *k == "passkey.enrolled").count(),
            1,
            "{k:?}"
        );
        assert_eq!(
            k.iter().filter(|k| *k == "security_key.enrolled").count(),
            1
        );
    });
}

#[test]
fn counter_moves_only_from_what_was_seen() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_webauthn(&key("k1", "C", WebauthnKind::Passkey), &event("e"))
            .unwrap();
        let later = t0() + chrono::Duration::minutes(1);
        assert!(s
            .use_webauthn("k1", 0, 5, "{\"v\":1,\"n\":5}", later)
            .unwrap());
        assert!(
            !s.use_webauthn("k1", 0, 6, "x", later).unwrap(),
            "a use decided on a stale counter loses"
        );
        let k = s.find_webauthn("C").unwrap().unwrap();
        assert_eq!(k.sign_count, 5);
        assert_eq!(k.data, "{\"v\":1,\"n\":5}");
        assert_eq!(k.last_used_at, Some(later));
    });
}

#[test]
fn concurrent_uses_with_one_counter_have_one_winner() {
    for db in backends() {
        let s = &*db;
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_webauthn(&key("k1", "C", WebauthnKind::Passkey), &event("e"))
            .unwrap();
        let barrier = Barrier::new(6);
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        usize::from(s.use_webauthn("k1", 0, 1, "d", t0()).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "{:?}", db.kind());
    }
}

#[test]
fn factors_are_removed_only_for_their_owner_with_an_event() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        s.insert_subject(&subject("sub-2", "b@example.ru")).unwrap();
        s.insert_webauthn(&key("k1", "C", WebauthnKind::Passkey), &event("e"))
            .unwrap();
        let app = Credential {
            id: "app".into(),
            subject_id: "sub-1".into(),
            kind: CredentialKind::Totp,
            secret: Some(keys::SecretBytes::new(b"0123456789abcdef0123".to_vec())),
            secret_hash: None,
            last_used_step: None,
            created_at: t0(),
            confirmed_at: Some(t0()),
            used_at: None,
        };
        s.insert_credential(&app, &event("e")).unwrap();
        let code = Credential {
            id: "r1".into(),
            kind: CredentialKind::Recovery,
            secret: None,
            secret_hash: Some("h1".into()),
            confirmed_at: None,
            ..app
        };
        s.replace_recovery_codes("sub-1", &[code], &event("e"))
            .unwrap();

        let gone = event("factor.removed");
        // Someone else's id removes nothing and writes no event.
        assert!(!s
            .remove_factor("sub-2", &FactorRef::Webauthn("k1".into()), &gone)
            .unwrap());
        assert!(!s
            .remove_factor("sub-2", &FactorRef::Totp("app".into()), &gone)
            .unwrap());
        assert!(!kinds(s).contains(&"factor.removed".to_string()));

        assert!(s
            .remove_factor("sub-1", &FactorRef::Webauthn("k1".into()), &gone)
            .unwrap());
        assert!(s
            .remove_factor("sub-1", &FactorRef::Totp("app".into()), &gone)
            .unwrap());
        assert!(s
            .remove_factor("sub-1", &FactorRef::RecoveryCodes, &gone)
            .unwrap());
        assert!(!s
            .remove_factor("sub-1", &FactorRef::RecoveryCodes, &gone)
            .unwrap());
        assert!(s.list_webauthn("sub-1").unwrap().is_empty());
        assert!(s.list_credentials("sub-1").unwrap().is_empty());
        let k = kinds(s);
        assert_eq!(
            k.iter().filter(|k| *k == "factor.removed").count(),
            3,
            "{k:?}"
        );
    });
}
