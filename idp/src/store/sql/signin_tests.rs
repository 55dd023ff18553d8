//! Contract tests of the sign-in state and password changes, on every backend.

use chrono::Duration;

use super::tests::{each, event, subject, t0};
use crate::domain::SsoSession;
use crate::notify::{Channel, NewMessage};
use crate::store::{
    AuditStore, PasswordChange, SessionStore, SigninState, SigninStore, StoreError, SubjectStore,
};

fn session(sid: &str) -> SsoSession {
    SsoSession {
        id_hash: format!("hash-{sid}"),
        sid: sid.into(),
        subject_id: "sub-1".into(),
        auth_time: t0(),
        acr: "urn:propusk:acr:1".into(),
        amr: vec!["pwd".into()],
        remember: false,
        created_at: t0(),
        expires_at: t0() + Duration::hours(8),
        ended_at: None,
    }
}

#[test]
fn state_defaults_and_last_factor() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        assert_eq!(s.signin_state("sub-1").unwrap(), SigninState::default());
        assert_eq!(s.signin_state("nobody\0").unwrap(), SigninState::default());
        s.set_last_factor("sub-1", "sms", t0()).unwrap();
        s.set_last_factor("sub-1", "email", t0()).unwrap();
        let st = s.signin_state("sub-1").unwrap();
        assert_eq!(st.last_factor.as_deref(), Some("email"));
        assert!(!st.password_must_change);
    });
}

#[test]
fn password_change_keeps_one_session_and_reset_ends_all() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        for sid in ["s1", "s2", "s3"] {
            s.insert_session(&session(sid)).unwrap();
        }
        let ev = event("password.changed");
        let alert = NewMessage::new(
            Channel::Email,
            "a@example.ru",
            "alert.password_changed",
            "x",
        );
        let done = s
            .set_password(&PasswordChange {
                subject_id: "sub-1",
                password_hash: "$argon2id$new",
                must_change: true,
                keep_sid: Some("s2"),
                event: &ev,
                alert: Some(&alert),
                now: t0(),
            })
            .unwrap();
        assert_eq!(done.sessions_ended, 2);
        let at = t0() + Duration::seconds(1);
        assert!(s.find_live_session("hash-s1", at).unwrap().is_none());
        assert!(s.find_live_session("hash-s2", at).unwrap().is_some());
        assert_eq!(
            s.find_subject("sub-1").unwrap().unwrap().password_hash,
            "$argon2id$new"
        );
        assert!(s.signin_state("sub-1").unwrap().password_must_change);
        assert_eq!(s.list_audit(1).unwrap()[0].kind, "password.changed");
        let done = s
            .set_password(&PasswordChange {
                subject_id: "sub-1",
                password_hash: "$argon2id$newer",
                must_change: false,
                keep_sid: None,
                event: &ev,
                alert: None,
                now: t0(),
            })
            .unwrap();
        assert_eq!(done.sessions_ended, 1);
        assert!(!s.signin_state("sub-1").unwrap().password_must_change);
        let missing = s.set_password(&PasswordChange {
            subject_id: "sub-2",
            password_hash: "x",
            must_change: false,
            keep_sid: None,
            event: &ev,
            alert: None,
            now: t0(),
        });
        assert!(matches!(missing, Err(StoreError::NotFound)));
    });
}

#[test]
fn contacts_find_accounts_login_first() {
    each(|s| {
        let mut a = subject("sub-1", "a@example.ru");
        a.profile.phone_number = Some("+79001234567".into());
        a.profile.phone_number_verified = true;
        s.insert_subject(&a).unwrap();
        let mut b = subject("sub-2", "+79001234567");
        b.profile.email = Some("b@example.ru".into());
        b.profile.email_verified = false;
        s.insert_subject(&b).unwrap();
        let found: Vec<String> = s
            .find_subjects_by_contact("+79001234567")
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(found, ["sub-2", "sub-1"], "the login's own account first");
        assert!(s
            .find_subjects_by_contact("b@example.ru")
            .unwrap()
            .is_empty());
        s.index_contacts("sub-1", &[]).unwrap();
        assert_eq!(s.find_subjects_by_contact("+79001234567").unwrap().len(), 1);
        assert!(s
            .find_subjects_by_contact("nobody@x.ru")
            .unwrap()
            .is_empty());
    });
}
