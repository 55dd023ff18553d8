//! Contract tests of the key tables and of sealed personal data, on every backend.

use std::sync::Barrier;

use chrono::Duration;

use super::tests::{backends, each, subject, t0};
use crate::store::{
    AuditStore, DataKeyChange, KeyChange, KeyStore, StoreError, StoredDataKey, StoredKey,
    SubjectStore,
};

fn key(kid: &str, state: &str) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        alg: "ES256".into(),
        state: state.into(),
        private_sealed: vec![0, 1, 2, 255, 254],
        public_jwk: r#"{"kty":"EC"}"#.into(),
        created_at: t0(),
        activated_at: (state == "current").then(t0),
        retired_at: None,
        removed_at: None,
    }
}

#[test]
fn key_changes_apply_in_one_transaction_with_audit() {
    each(|s| {
        let (k1, mut k2) = (key("k1", "current"), key("k2", "next"));
        k2.created_at = t0() + Duration::days(1);
        let applied = s
            .change_keys(t0(), "test", &mut |rows| {
                assert!(rows.is_empty());
                Ok(vec![
                    KeyChange::Insert(k2.clone()),
                    KeyChange::Insert(k1.clone()),
                ])
            })
            .unwrap();
        assert_eq!(applied.len(), 2);
        assert_eq!(s.list_keys().unwrap(), vec![k1.clone(), k2.clone()]);

        let later = t0() + Duration::days(2);
        s.change_keys(later, "test", &mut |_| {
            Ok(vec![
                KeyChange::Retire { kid: "k1".into() },
                KeyChange::Activate { kid: "k2".into() },
            ])
        })
        .unwrap();
        let keys = s.list_keys().unwrap();
        assert_eq!(
            (keys[0].state.as_str(), keys[0].retired_at),
            ("retired", Some(later))
        );
        assert_eq!(
            (keys[1].state.as_str(), keys[1].activated_at),
            ("current", Some(later))
        );

        s.change_keys(later, "test", &mut |_| {
            Ok(vec![KeyChange::Remove { kid: "k1".into() }])
        })
        .unwrap();
        let k1_now = &s.list_keys().unwrap()[0];
        assert_eq!(k1_now.state, "removed");
        assert!(k1_now.private_sealed.is_empty(), "private part deleted");

        // A batch naming a missing key leaves nothing behind: not even its first change.
        let err = s.change_keys(later, "test", &mut |_| {
            Ok(vec![
                KeyChange::Insert(key("k3", "next")),
                KeyChange::Activate { kid: "nope".into() },
            ])
        });
        assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
        assert_eq!(s.list_keys().unwrap().len(), 2);
        // An error from `decide` applies nothing either.
        let err = s.change_keys(later, "test", &mut |_| {
            Err(StoreError::Corrupt("no".into()))
        });
        assert!(err.is_err());

        let kinds: Vec<String> = s
            .list_audit(100)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        for k in ["key.created", "key.activated", "key.retired", "key.removed"] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
        assert_eq!(
            kinds.len(),
            5,
            "no audit event of rolled-back changes: {kinds:?}"
        );
    });
}

#[test]
fn concurrent_key_changes_are_serialised() {
    for db in backends() {
        let s = &*db;
        let barrier = Barrier::new(6);
        std::thread::scope(|scope| {
            for i in 0..6 {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    s.change_keys(t0(), "test", &mut |rows| {
                        // "Generate a next key unless one exists": only the first may.
                        Ok(if rows.iter().any(|k| k.state == "next") {
                            vec![]
                        } else {
                            vec![KeyChange::Insert(key(&format!("k{i}"), "next"))]
                        })
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(s.list_keys().unwrap().len(), 1, "{:?}", db.kind());
    }
}

#[test]
fn data_keys_insert_and_rewrap() {
    each(|s| {
        let dk = StoredDataKey {
            id: "d1".into(),
            purpose: "data".into(),
            wrapped: vec![1, 2, 3],
            created_at: t0(),
        };
        s.change_data_keys(t0(), "test", &mut |_| {
            Ok(vec![DataKeyChange::Insert(dk.clone())])
        })
        .unwrap();
        assert_eq!(s.list_data_keys().unwrap(), vec![dk.clone()]);
        s.change_data_keys(t0(), "rewrap", &mut |_| {
            Ok(vec![DataKeyChange::Rewrap {
                id: "d1".into(),
                wrapped: vec![9],
            }])
        })
        .unwrap();
        assert_eq!(s.list_data_keys().unwrap()[0].wrapped, vec![9]);
        let err = s.change_data_keys(t0(), "rewrap", &mut |_| {
            Ok(vec![DataKeyChange::Rewrap {
                id: "none".into(),
                wrapped: vec![],
            }])
        });
        assert!(err.is_err());
    });
}

#[test]
fn personal_data_is_sealed_at_rest() {
    for db in backends() {
        let mut sub = subject("sub-1", "ivan.petrov@example.ru");
        sub.profile.phone_number = Some("+79123456789".into());
        sub.profile.birthdate = Some("1980-04-17".into());
        sub.profile.address = Some("Москва, ул. Тверская, д. 7".into());
        db.insert_subject(&sub).unwrap();
        // Read back through the store: everything is there.
        let back = db
            .find_subject_by_login("ivan.petrov@example.ru")
            .unwrap()
            .unwrap();
        assert_eq!(back.profile, sub.profile);
        assert_eq!(back.login, sub.login);
        assert_eq!(db.list_subjects().unwrap().len(), 1);
        // The person (issue 5): SNILS, INN, passport, birthplace, address, a verification.
        super::person_tests::seal_person_data(&db, "sub-1");

        let dump = db.dump();
        assert!(!dump.is_empty());
        for secret in [
            "ivan.petrov@example.ru",
            "+79123456789",
            "79123456789",
            "1980-04-17",
            "Тверская",
            "Петров",
        ]
        .into_iter()
        .chain(super::person_tests::SEALED_NEEDLES.iter().copied())
        {
            let found = dump.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret:?} is in clear in the {:?} dump", db.kind());
        }
        // A 6-digit passport number could occur by chance in pg_dump's hex of the
        // ciphertexts, so there it is looked for as a field value would appear.
        let number = super::person_tests::PASSPORT_NUMBER;
        let needles: Vec<String> = match db.kind() {
            super::DbKind::Sqlite => vec![number.to_string()],
            super::DbKind::Postgres => vec![
                format!("\t{number}"),
                format!("{number}\t"),
                format!("\"{number}\""),
            ],
        };
        for n in needles {
            let found = dump.windows(n.len()).any(|w| w == n.as_bytes());
            assert!(
                !found,
                "passport number in clear in the {:?} dump",
                db.kind()
            );
        }
    }
}

#[test]
fn subjects_need_the_vault_that_sealed_them() {
    each(|s| {
        s.insert_subject(&subject("sub-1", "a@example.ru")).unwrap();
        let other = s.clone().with_vault(std::sync::Arc::new(keys::Vault::new(
            keys::DataKey::generate().unwrap(),
            vec![],
            keys::DataKey::generate().unwrap(),
        )));
        // Another index key: the blind index does not match.
        assert_eq!(other.find_subject_by_login("a@example.ru").unwrap(), None);
        // Another data key: the row cannot be opened, and says so.
        assert!(matches!(
            other.find_subject("sub-1"),
            Err(StoreError::Sealing(_))
        ));
    });
}
