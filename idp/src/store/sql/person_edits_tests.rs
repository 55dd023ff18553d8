//! Contract tests of [`PersonEditStore`] on every backend: contact changes move the login
//! and the sign-in index in one transaction, refusals write nothing, pending accounts are
//! activated once.

use super::tests::{each, event, session, subject, t0};
use crate::domain::person::{AccountStatus, ContactKind};
use crate::notify::{Channel, NewMessage};
use crate::store::{
    AuditStore, ContactChange, ContactOutcome, PersonEditStore, PersonStore, SessionStore,
    SigninStore, SubjectStore,
};

fn change<'a>(
    kind: ContactKind,
    value: Option<&'a str>,
    e: &'a crate::audit::AuditEvent,
    notices: &'a [NewMessage],
) -> ContactChange<'a> {
    ContactChange {
        subject_id: "sub-1",
        kind,
        value,
        event: e,
        notices,
        now: t0(),
    }
}

#[test]
fn a_contact_change_moves_login_index_history_and_notice_together() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "anna@example.ru"))
            .unwrap();
        s.insert_subject(&subject("sub-2", "petr@example.ru"))
            .unwrap();
        let e = event("profile.contact_changed");
        let notice = [NewMessage::new(
            Channel::Email,
            "anna@example.ru",
            "alert",
            "changed",
        )];
        let out = s
            .change_contact(&change(
                ContactKind::Email,
                Some("anna@new.ru"),
                &e,
                &notice,
            ))
            .unwrap();
        assert_eq!(out, ContactOutcome::Changed);
        // The login followed its contact.
        assert_eq!(s.find_subject_by_login("anna@example.ru").unwrap(), None);
        let now = s.find_subject_by_login("anna@new.ru").unwrap().unwrap();
        assert_eq!(now.id, "sub-1");
        assert_eq!(now.profile.email.as_deref(), Some("anna@new.ru"));
        assert_eq!(
            s.find_subjects_by_contact("anna@example.ru").unwrap(),
            vec![]
        );
        let h = s.person_history("sub-1").unwrap();
        assert_eq!(h.last().map(|c| c.action.as_str()), Some("changed"));
        assert_eq!(h.last().and_then(|c| c.item_id.as_deref()), Some("eml"));
        assert!(s
            .list_audit(10)
            .unwrap()
            .iter()
            .any(|a| a.kind == "profile.contact_changed"));

        // A phone that is not the login signs in through the contact index.
        let out = s
            .change_contact(&change(ContactKind::Mobile, Some("+79005550101"), &e, &[]))
            .unwrap();
        assert_eq!(out, ContactOutcome::Changed);
        assert_eq!(
            s.find_subject_by_login("+79005550101")
                .unwrap()
                .map(|x| x.id),
            Some("sub-1".into())
        );
        // Another account's login or contact: refused, nothing written.
        let before = s.person_history("sub-1").unwrap().len();
        let out = s
            .change_contact(&change(
                ContactKind::Email,
                Some("petr@example.ru"),
                &e,
                &[],
            ))
            .unwrap();
        assert_eq!(out, ContactOutcome::Taken);
        assert_eq!(s.person_history("sub-1").unwrap().len(), before);
        assert_eq!(
            s.change_contact(&change(ContactKind::Email, Some("anna@new.ru"), &e, &[]))
                .unwrap(),
            ContactOutcome::Unchanged
        );
        // Removing the login contact moves the login to the phone; the last one stays.
        assert_eq!(
            s.change_contact(&change(ContactKind::Email, None, &e, &[]))
                .unwrap(),
            ContactOutcome::Changed
        );
        assert_eq!(
            s.find_subject("sub-1").unwrap().unwrap().login,
            "+79005550101"
        );
        assert_eq!(s.find_subject_by_login("anna@new.ru").unwrap(), None);
        assert_eq!(
            s.change_contact(&change(ContactKind::Mobile, None, &e, &[]))
                .unwrap(),
            ContactOutcome::LastContact
        );
    });
}

#[test]
fn a_pending_account_is_activated_once() {
    each(|s| {
        let mut p = subject("sub-1", "+79005550177");
        p.profile.email = None;
        p.profile.email_verified = false;
        p.profile.phone_number = Some("+79005550177".into());
        let oid = s
            .insert_pending_subject(&p, &event("user.created_pending"))
            .unwrap();
        assert!(oid > 0);
        let person = s.find_person("sub-1").unwrap().unwrap();
        assert_eq!(person.status, AccountStatus::PendingConfirmation);
        // Unconfirmed: not in the contact index yet.
        assert!(s.find_subjects_by_contact("+79005550177").unwrap().len() <= 1);
        let e = event("user.activated");
        // The first session cannot be written (its sid is taken): nothing of the activation
        // is written either, and the account still waits.
        s.insert_session(&session("h-other", "sid-taken", "sub-1"))
            .unwrap();
        assert!(s
            .activate_pending(
                "sub-1",
                "$argon2id$lost",
                "+79005550177",
                &e,
                &session("h-act-0", "sid-taken", "sub-1"),
            )
            .is_err());
        let still = s.find_subject("sub-1").unwrap().unwrap();
        assert_ne!(still.password_hash, "$argon2id$lost");
        assert!(!still.profile.phone_number_verified);
        assert_eq!(
            s.find_person("sub-1").unwrap().unwrap().status,
            AccountStatus::PendingConfirmation
        );
        assert!(s
            .activate_pending(
                "sub-1",
                "$argon2id$new",
                "+79005550177",
                &e,
                &session("h-act-1", "sid-act-1", "sub-1"),
            )
            .unwrap());
        assert_eq!(
            s.find_session_by_sid("sid-act-1")
                .unwrap()
                .map(|x| x.subject_id),
            Some("sub-1".into()),
            "the first session is written with the activation"
        );
        assert!(!s
            .activate_pending(
                "sub-1",
                "$argon2id$again",
                "+79005550177",
                &e,
                &session("h-act-2", "sid-act-2", "sub-1"),
            )
            .unwrap());
        assert_eq!(
            s.find_session_by_sid("sid-act-2").unwrap(),
            None,
            "a refused activation opens no session"
        );
        let a = s.find_subject("sub-1").unwrap().unwrap();
        assert_eq!(a.password_hash, "$argon2id$new");
        assert!(a.profile.phone_number_verified);
        assert_eq!(
            s.find_person("sub-1").unwrap().unwrap().status,
            AccountStatus::Active
        );
        // An active account is never "activated".
        s.insert_subject(&subject("sub-2", "b@example.ru")).unwrap();
        assert!(!s
            .activate_pending(
                "sub-2",
                "$argon2id$x",
                "b@example.ru",
                &e,
                &session("h-act-3", "sid-act-3", "sub-2"),
            )
            .unwrap());
    });
}
