//! Contract tests of [`PersonStore`] on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, NaiveDate};

use super::tests::{client, each, event, refresh, session, subject, t0};
use crate::audit::AuditEvent;
use crate::domain::person::{
    AccountLevel, AccountStatus, Address, AddressKind, ConfirmMethod, Confirmation, Contact,
    ContactKind, Document, DocumentKind, IdentityClaim, MismatchReason, Ogrn, OrgRole,
    Verification, VerificationState, VerifiedState,
};
use crate::store::{
    AuditStore, ClientStore, PersonItem, PersonStore, RefreshTokenStore, Rotation, SessionStore,
    StoreError, SubjectStore, VerificationEffect,
};

pub(super) const SNILS: &str = "11223344595";
pub(super) const INN: &str = "500100732259";

/// Tries the refresh grant with `hash` for client `rp` at `t0()`; a successor is never needed
/// by the tests that call it (the token must be refused before).
fn rotate(s: &super::SqlStore, hash: &str) -> Rotation {
    s.rotate_refresh(hash, "rp", t0(), super::tests::successor("never"))
        .unwrap()
}

pub(super) fn passport(id: &str) -> Document {
    Document {
        id: id.into(),
        kind: DocumentKind::Passport,
        series: Some("4508".into()),
        number: "123456".into(),
        issue_date: NaiveDate::from_ymd_opt(2001, 5, 20),
        issued_by: Some("ОВД Тверского района".into()),
        division_code: Some("770-001".into()),
        expiry_date: None,
        citizenship: Some("RUS".into()),
        verified: VerifiedState::Verified,
        created_at: t0(),
        updated_at: t0(),
    }
}

pub(super) fn claim() -> IdentityClaim {
    IdentityClaim {
        family_name: "Петров".into(),
        given_name: "Иван".into(),
        middle_name: Some("Сергеевич".into()),
        birth_date: NaiveDate::from_ymd_opt(1980, 4, 17).unwrap(),
        birth_place: "г. Великий Новгород".into(),
        snils: SNILS.into(),
        passport_series: "4508".into(),
        passport_number: "123456".into(),
        passport_issue_date: NaiveDate::from_ymd_opt(2001, 5, 20).unwrap(),
        passport_issued_by: "ОВД Тверского района".into(),
        passport_division_code: "770-001".into(),
    }
}

fn verification(id: &str) -> Verification {
    Verification {
        id: id.into(),
        subject_id: "sub-1".into(),
        claim: claim(),
        state: VerificationState::Pending,
        registry_ref: None,
        attempts: 0,
        next_attempt_at: t0(),
        last_error: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

#[test]
fn a_subject_without_records_is_simplified_and_active() {
    each(|s| {
        assert_eq!(s.find_person("sub-1").unwrap(), None);
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        let p = s.find_person("sub-1").unwrap().unwrap();
        assert_eq!(p.level, AccountLevel::Simplified);
        assert_eq!(p.status, AccountStatus::Active);
        assert!(p.documents.is_empty() && p.snils.is_none());
        let (sub, p2) = s
            .find_person_by_oid(s.find_subject("sub-1").unwrap().unwrap().oid)
            .unwrap()
            .unwrap();
        assert_eq!(sub.id, "sub-1");
        assert_eq!(p2, p);
        assert!(s.find_person_by_oid(1).unwrap().is_none());
        assert!(matches!(
            s.set_status("nobody", AccountStatus::Blocked, &event("x")),
            Err(StoreError::NotFound)
        ));
    });
}

#[test]
fn snils_and_inn_sign_in_through_the_blind_index_and_are_unique() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        s.insert_subject(&subject("sub-2", "petr@example.ru"))
            .unwrap();
        s.set_identifiers(
            "sub-1",
            Some(SNILS),
            Some(INN),
            Some("г. Тверь"),
            &event("person.identifiers"),
        )
        .unwrap();
        let p = s.find_person("sub-1").unwrap().unwrap();
        assert_eq!(p.snils.as_deref(), Some(SNILS));
        assert_eq!(p.inn.as_deref(), Some(INN));
        assert_eq!(p.birth_place.as_deref(), Some("г. Тверь"));
        // The login lookup (sign-in) finds the person by either number.
        assert_eq!(s.find_subject_by_login(SNILS).unwrap().unwrap().id, "sub-1");
        assert_eq!(s.find_subject_by_login(INN).unwrap().unwrap().id, "sub-1");
        assert_eq!(
            s.find_subject_by_snils_or_inn(SNILS).unwrap().unwrap().id,
            "sub-1"
        );
        assert!(s.find_subject_by_login("12345678901").unwrap().is_none());
        // Another person cannot have the same SNILS; nothing of the attempt is kept.
        let before = s.list_audit(100).unwrap().len();
        assert!(matches!(
            s.set_identifiers(
                "sub-2",
                Some(SNILS),
                None,
                None,
                &AuditEvent {
                    subject_id: Some("sub-2".into()),
                    ..event("person.identifiers")
                }
            ),
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.list_audit(100).unwrap().len(), before);
        assert_eq!(s.find_person("sub-2").unwrap().unwrap().snils, None);
        let h = s.person_history("sub-1").unwrap();
        let kinds: Vec<&str> = h.iter().map(|c| c.collection.as_str()).collect();
        assert_eq!(kinds, vec!["snils", "inn", "birth_place"]);
    });
}

#[test]
fn items_are_replaced_removed_and_every_change_is_kept() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        let mut contact = Contact {
            id: "c1".into(),
            kind: ContactKind::Mobile,
            value: "+79123456789".into(),
            verified: true,
            created_at: t0(),
            updated_at: t0(),
        };
        let addr = Address {
            id: "a1".into(),
            kind: AddressKind::Registration,
            formatted: "Москва, ул. Тверская, д. 7".into(),
            zip: Some("125009".into()),
            country: Some("RUS".into()),
            created_at: t0(),
            updated_at: t0(),
        };
        s.put_item(
            "sub-1",
            &PersonItem::Contact(contact.clone()),
            &event("contact.added"),
        )
        .unwrap();
        s.put_item(
            "sub-1",
            &PersonItem::Address(addr.clone()),
            &event("address.added"),
        )
        .unwrap();
        s.put_item(
            "sub-1",
            &PersonItem::Document(passport("d1")),
            &event("document.added"),
        )
        .unwrap();
        contact.value = "+79000000001".into();
        let later = AuditEvent {
            at: t0() + Duration::minutes(5),
            ..event("contact.changed")
        };
        s.put_item("sub-1", &PersonItem::Contact(contact.clone()), &later)
            .unwrap();
        let p = s.find_person("sub-1").unwrap().unwrap();
        assert_eq!(p.contacts, vec![contact.clone()]);
        assert_eq!(p.addresses, vec![addr]);
        assert_eq!(p.passport().unwrap(), &passport("d1"));
        assert!(s
            .remove_item("sub-1", "a1", &event("address.removed"))
            .unwrap());
        assert!(!s
            .remove_item("sub-1", "a1", &event("address.removed"))
            .unwrap());
        // Another person's item cannot be removed through this one.
        assert!(!s.remove_item("sub-2", "c1", &event("x")).unwrap());
        let h = s.person_history("sub-1").unwrap();
        let rows: Vec<(String, String)> = h
            .iter()
            .map(|c| (c.collection.clone(), c.action.clone()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("contact".into(), "added".into()),
                ("address".into(), "added".into()),
                ("document".into(), "added".into()),
                ("contact".into(), "changed".into()),
                ("address".into(), "removed".into()),
            ]
        );
        assert_eq!(h[3].at, t0() + Duration::minutes(5));
        assert_eq!(h[3].before.as_ref().unwrap()["value"], "+79123456789");
        assert_eq!(h[3].after.as_ref().unwrap()["value"], "+79000000001");
        // Each change wrote its audit event in the same transaction.
        let audit: Vec<String> = s
            .list_audit(100)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            audit.iter().filter(|k| k.starts_with("contact.")).count(),
            2
        );
    });
}

#[test]
fn blocking_ends_sessions_and_revokes_refresh_tokens() {
    each(|s| {
        s.insert_client(&client("rp")).unwrap();
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        s.insert_session(&session("h1", "sid-1", "sub-1")).unwrap();
        s.insert_refresh(&refresh("r1", "f1", "rp", "sub-1"))
            .unwrap();
        assert!(s
            .set_status("sub-1", AccountStatus::Blocked, &event("user.blocked"))
            .unwrap());
        assert!(!s
            .set_status("sub-1", AccountStatus::Blocked, &event("user.blocked"))
            .unwrap());
        assert_eq!(
            s.find_person("sub-1").unwrap().unwrap().status,
            AccountStatus::Blocked
        );
        assert!(s.find_live_session("h1", t0()).unwrap().is_none());
        let revoked = s.find_refresh("r1").unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(t0()));
        assert_eq!(rotate(s, "r1"), Rotation::Invalid);
        assert!(s
            .set_status("sub-1", AccountStatus::Active, &event("user.unblocked"))
            .unwrap());
        // Unblocking does not bring back what blocking ended.
        assert_eq!(rotate(s, "r1"), Rotation::Invalid);
        assert_eq!(s.find_refresh("r1").unwrap().unwrap(), revoked);
        let kinds: Vec<String> = s
            .list_audit(10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, vec!["user.unblocked", "user.blocked"]);
    });
}

#[test]
fn confirmation_records_who_and_how() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        let conf = Confirmation {
            by: "operator-7".into(),
            method: ConfirmMethod::InPerson,
            at: t0(),
        };
        s.set_level(
            "sub-1",
            AccountLevel::Confirmed,
            Some(&conf),
            &event("user.confirmed"),
        )
        .unwrap();
        let p = s.find_person("sub-1").unwrap().unwrap();
        assert_eq!(p.level, AccountLevel::Confirmed);
        assert_eq!(p.confirmation, Some(conf));
        assert_eq!(s.list_audit(1).unwrap()[0].kind, "user.confirmed");
    });
}

#[test]
fn memberships_create_the_organisation_once() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        s.insert_subject(&subject("sub-2", "petr@example.ru"))
            .unwrap();
        let ogrn = Ogrn::parse("1027700132195").unwrap();
        let oid = s
            .add_membership(
                "sub-1",
                &ogrn,
                "ПАО Сбербанк",
                OrgRole::Chief,
                &event("org.member"),
            )
            .unwrap();
        let oid2 = s
            .add_membership(
                "sub-2",
                &ogrn,
                "ignored",
                OrgRole::Employee,
                &event("org.member"),
            )
            .unwrap();
        assert_eq!(oid, oid2);
        // A role change, not a second membership.
        s.add_membership(
            "sub-1",
            &ogrn,
            "x",
            OrgRole::Representative,
            &event("org.member"),
        )
        .unwrap();
        let m = s.memberships("sub-1").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "ПАО Сбербанк");
        assert_eq!(m[0].role, OrgRole::Representative);
        assert_eq!(
            s.find_person("sub-2").unwrap().unwrap().organizations[0].role,
            OrgRole::Employee
        );
    });
}

#[test]
fn verification_lifecycle_raises_the_level_once() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        let v = verification("v1");
        s.insert_verification(&v, &event("identity.submitted"))
            .unwrap();
        assert!(matches!(
            s.insert_verification(&verification("v2"), &event("identity.submitted")),
            Err(StoreError::Conflict)
        ));
        assert_eq!(s.find_verification("v1").unwrap().unwrap(), v);
        assert_eq!(s.due_verifications(t0(), 10).unwrap().len(), 1);
        assert!(s
            .due_verifications(t0() - Duration::seconds(1), 10)
            .unwrap()
            .is_empty());
        // The registry is unavailable: retried later.
        let mut again = v.clone();
        again.attempts = 1;
        again.next_attempt_at = t0() + Duration::seconds(30);
        again.last_error = Some("unavailable".into());
        assert!(s.update_pending_verification(&again).unwrap());
        assert!(s.due_verifications(t0(), 10).unwrap().is_empty());
        // Matched.
        let mut done = again.clone();
        done.state = VerificationState::Matched;
        done.registry_ref = Some("ref-1".into());
        done.updated_at = t0() + Duration::minutes(1);
        let effect = VerificationEffect::RaiseToStandard {
            passport: passport("d1"),
        };
        assert!(s
            .finish_verification(&done, &effect, &event("identity.verified"))
            .unwrap());
        assert!(!s
            .finish_verification(&done, &effect, &event("identity.verified"))
            .unwrap());
        assert!(!s.update_pending_verification(&again).unwrap());
        let p = s.find_person("sub-1").unwrap().unwrap();
        assert_eq!(p.level, AccountLevel::Standard);
        assert_eq!(p.snils.as_deref(), Some(SNILS));
        assert_eq!(p.birth_place.as_deref(), Some("г. Великий Новгород"));
        assert_eq!(p.passport().unwrap().number, "123456");
        let sub = s.find_subject("sub-1").unwrap().unwrap();
        assert_eq!(sub.profile.family_name.as_deref(), Some("Петров"));
        assert_eq!(sub.profile.birthdate.as_deref(), Some("1980-04-17"));
        assert_eq!(
            s.latest_verification("sub-1").unwrap().unwrap().state,
            VerificationState::Matched
        );
        // A mismatch is final and changes nothing on the person.
        let mut w = verification("v3");
        w.created_at = t0() + Duration::minutes(2);
        s.insert_verification(&w, &event("identity.submitted"))
            .unwrap();
        w.state = VerificationState::Mismatch {
            reason: MismatchReason::NameMismatch,
        };
        assert!(s
            .finish_verification(&w, &VerificationEffect::None, &event("identity.mismatch"))
            .unwrap());
        let latest = s.latest_verification("sub-1").unwrap().unwrap();
        assert_eq!(
            latest.state,
            VerificationState::Mismatch {
                reason: MismatchReason::NameMismatch
            }
        );
        assert_eq!(
            s.find_person("sub-1").unwrap().unwrap().level,
            AccountLevel::Standard
        );
    });
}

#[test]
fn client_min_level_set_and_cleared() {
    each(|s| {
        s.insert_client(&client("rp")).unwrap();
        assert_eq!(s.client_min_level("rp").unwrap(), None);
        s.set_client_min_level("rp", Some(AccountLevel::Standard))
            .unwrap();
        assert_eq!(
            s.client_min_level("rp").unwrap(),
            Some(AccountLevel::Standard)
        );
        s.set_client_min_level("rp", Some(AccountLevel::Confirmed))
            .unwrap();
        assert_eq!(
            s.client_min_level("rp").unwrap(),
            Some(AccountLevel::Confirmed)
        );
        s.set_client_min_level("rp", None).unwrap();
        assert_eq!(s.client_min_level("rp").unwrap(), None);
        // Removing the client removes its setting.
        s.set_client_min_level("rp", Some(AccountLevel::Standard))
            .unwrap();
        assert!(s.remove_client("rp").unwrap());
        assert_eq!(s.client_min_level("rp").unwrap(), None);
    });
}

/// Passport number of [`seal_person_data`].
pub(super) const PASSPORT_NUMBER: &str = "731904";

/// Values of [`seal_person_data`] that must not be in a dump in clear.
pub(super) const SEALED_NEEDLES: &[&str] = &[
    SNILS,
    "112-233-445 95",
    INN,
    "4508731904",
    "4508 731904",
    "Великий Новгород",
    "Ленинградская",
    "Самара",
];

/// Records SNILS, INN, birthplace, a passport, an address and a verification request for
/// `subject_id` (the dump test in `key_tests.rs` looks for them in clear).
pub(super) fn seal_person_data(s: &crate::store::SqlStore, subject_id: &str) {
    let e = AuditEvent {
        subject_id: Some(subject_id.into()),
        ..event("person.test")
    };
    s.set_identifiers(
        subject_id,
        Some(SNILS),
        Some(INN),
        Some("г. Великий Новгород"),
        &e,
    )
    .unwrap();
    let mut doc = passport("d1");
    doc.number = PASSPORT_NUMBER.into();
    s.put_item(subject_id, &PersonItem::Document(doc), &e)
        .unwrap();
    let addr = Address {
        id: "a1".into(),
        kind: AddressKind::Living,
        formatted: "Самара, ул. Ленинградская, д. 1".into(),
        zip: None,
        country: None,
        created_at: t0(),
        updated_at: t0(),
    };
    s.put_item(subject_id, &PersonItem::Address(addr), &e)
        .unwrap();
    let mut v = verification("v-dump");
    v.subject_id = subject_id.into();
    v.claim.passport_number = PASSPORT_NUMBER.into();
    s.insert_verification(&v, &e).unwrap();
    let p = s.find_person(subject_id).unwrap().unwrap();
    assert_eq!(p.snils.as_deref(), Some(SNILS));
    assert_eq!(p.documents[0].number, PASSPORT_NUMBER);
}

/// The background verifier over the store: an unavailable registry is retried after the
/// backoff, a match raises the level, a mismatch is recorded with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_retries_then_applies_the_answer() {
    use crate::clock::FixedClock;
    use crate::config::identity::RegistryConfig;
    use crate::registry::simulated::SimulatedRegistry;
    use crate::registry::Verifier;
    use std::sync::Arc;

    for db in super::tests::backends() {
        let s: crate::store::SqlStore = (*db).clone();
        s.insert_subject(&subject("sub-1", "ivan@example.ru"))
            .unwrap();
        s.insert_subject(&subject("sub-2", "petr@example.ru"))
            .unwrap();
        let answers = [
            (SNILS.to_string(), "unavailable_once".to_string()),
            ("08765430300".to_string(), "name_mismatch".to_string()),
        ]
        .into_iter()
        .collect();
        let clock = Arc::new(FixedClock::new(t0()));
        let cfg = RegistryConfig {
            retry_base_secs: 30,
            ..RegistryConfig::default()
        };
        let verifier = Verifier::new(
            s.clone(),
            Arc::new(SimulatedRegistry::new(answers)),
            clock.clone(),
            cfg,
        );
        s.insert_verification(&verification("v1"), &event("identity.submitted"))
            .unwrap();
        let mut other = verification("v2");
        other.subject_id = "sub-2".into();
        other.claim.snils = "08765430300".into();
        s.insert_verification(&other, &event("identity.submitted"))
            .unwrap();

        let r = verifier.run_once().await.unwrap();
        assert_eq!((r.due, r.retried, r.finished), (2, 1, 1));
        let v = s.find_verification("v1").unwrap().unwrap();
        assert_eq!(v.state, VerificationState::Pending);
        assert_eq!(v.attempts, 1);
        assert_eq!(v.next_attempt_at, t0() + Duration::seconds(30));
        assert_eq!(
            s.find_verification("v2").unwrap().unwrap().state,
            VerificationState::Mismatch {
                reason: MismatchReason::NameMismatch
            }
        );
        assert_eq!(
            s.find_person("sub-2").unwrap().unwrap().level,
            AccountLevel::Simplified
        );
        // Not due before the backoff has passed.
        assert_eq!(verifier.run_once().await.unwrap().due, 0);
        clock.advance(Duration::seconds(30));
        let r = verifier.run_once().await.unwrap();
        assert_eq!((r.due, r.finished), (1, 1));
        let p = s.find_person("sub-1").unwrap().unwrap();
        assert_eq!(p.level, AccountLevel::Standard);
        assert_eq!(p.passport().unwrap().verified, VerifiedState::Verified);
        let kinds: Vec<String> = s
            .list_audit(10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(
            kinds.contains(&"identity.verified".to_string()),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&"identity.mismatch".to_string()),
            "{kinds:?}"
        );
    }
}
