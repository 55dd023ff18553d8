//! Contract tests of the refresh grant's one-transaction rotation, on every backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Barrier;

use chrono::Duration;

use super::tests::{client, each, refresh, subject, successor, t0};
use super::SqlStore;
use crate::domain::{Grant, RefreshToken};
use crate::store::{
    ClientStore, GrantStore, RefreshTokenStore, Rotation, SubjectStore, Successor, SuccessorScopes,
};

/// Client "rp" with a grant from "sub-1", and a live token "h1" of family "fam-1".
fn seed(s: &SqlStore) {
    s.insert_client(&client("rp")).unwrap();
    s.insert_client(&client("other")).unwrap();
    s.insert_subject(&subject("sub-1", "ivan@example.ru"))
        .unwrap();
    s.upsert_grant(&Grant {
        subject_id: "sub-1".into(),
        client_id: "rp".into(),
        scopes: vec!["openid".into(), "offline_access".into()],
        created_at: t0(),
        updated_at: t0(),
    })
    .unwrap();
    s.insert_refresh(&refresh("h1", "fam-1", "rp", "sub-1"))
        .unwrap();
}

/// A successor named `hash`, with the spent token's scopes.
fn next(hash: impl Into<String>) -> Successor {
    successor(&hash.into())
}

/// A successor named `hash` that asks for a scope the tokens of `seed` do not hold.
fn beyond_grant(hash: &str) -> Successor {
    Successor {
        scopes: SuccessorScopes::Narrowed(vec!["openid".into(), "admin".into()]),
        ..next(hash)
    }
}

fn unused(s: &SqlStore, hash: &str) -> bool {
    s.find_refresh(hash).unwrap().unwrap().used_at.is_none()
}

/// A new token is stored only while its subject and client exist: the foreign keys are the
/// code exchange's check that the account is still there.
#[test]
fn issue_refresh_stores_only_for_a_live_subject_and_client() {
    each(|s| {
        seed(s);
        assert!(s
            .issue_refresh(refresh("h2", "fam-2", "rp", "sub-1"))
            .unwrap());
        assert!(unused(s, "h2"));
        assert!(!s
            .issue_refresh(refresh("h3", "fam-3", "rp", "sub-gone"))
            .unwrap());
        assert!(!s
            .issue_refresh(refresh("h4", "fam-4", "rp-gone", "sub-1"))
            .unwrap());
        for gone in ["h3", "h4"] {
            assert_eq!(s.find_refresh(gone).unwrap(), None, "{gone} was not stored");
        }
        // A token that exists already is still a conflict, not a quiet false.
        assert!(s
            .issue_refresh(refresh("h2", "fam-2", "rp", "sub-1"))
            .is_err());
    });
}

/// New tokens (code exchanges) share the batch and its INSERT with rotations; a new token
/// whose subject or client is gone is not stored and gets `false` (on Postgres from the
/// batch statement, which stores only new rows whose subject and client exist; on SQLite
/// the foreign keys fail the batch, after which every write goes alone).
#[test]
fn a_batch_stores_new_tokens_with_the_rotations() {
    each(|s| {
        seed(s);
        let now = t0() + Duration::hours(1);
        let (rotated, issued) = s.write_as_batch(
            vec![("h1", "rp", now, next("h2"))],
            &[
                refresh("n1", "fam-n1", "rp", "sub-1"),
                refresh("n2", "fam-n2", "other", "sub-1"),
            ],
        );
        assert!(matches!(rotated[..], [Ok(Rotation::Rotated(_))]));
        assert!(matches!(issued[..], [Ok(true), Ok(true)]));
        for stored in ["h2", "n1", "n2"] {
            assert!(unused(s, stored), "{stored} stored");
        }
        assert!(!unused(s, "h1"));

        // Only new tokens: no rotation statement is needed.
        let (_, issued) = s.write_as_batch(vec![], &[refresh("n3", "fam-n3", "rp", "sub-1")]);
        assert!(matches!(issued[..], [Ok(true)]));
        assert!(unused(s, "n3"));

        let (rotated, issued) = s.write_as_batch(
            vec![("h2", "rp", now, next("h3"))],
            &[
                refresh("gone", "fam-gone", "rp", "sub-gone"),
                refresh("n4", "fam-n4", "rp", "sub-1"),
            ],
        );
        assert!(matches!(rotated[..], [Ok(Rotation::Rotated(_))]));
        assert!(matches!(issued[..], [Ok(false), Ok(true)]));
        assert_eq!(s.find_refresh("gone").unwrap(), None);
        for stored in ["h3", "n4"] {
            assert!(unused(s, stored), "{stored} stored");
        }
        assert!(!unused(s, "h2"), "rotated once");

        let (_, issued) = s.write_as_batch(
            vec![],
            &[
                refresh("n5", "fam-n5", "rp", "sub-1"),
                refresh("no-client", "fam-nc", "rp-gone", "sub-1"),
            ],
        );
        assert!(matches!(issued[..], [Ok(true), Ok(false)]));
        assert_eq!(s.find_refresh("no-client").unwrap(), None);
    });
}

/// Postgres keeps no foreign keys on the tokens, so a token can outlive its client (one
/// stored while the client was being removed); no rotation spends it, since a rotation
/// checks the subject and the grant, which the removal took with it.
#[test]
fn a_token_outliving_its_client_is_not_rotated() {
    each(|s| {
        seed(s);
        assert!(s.remove_client("rp").unwrap());
        assert_eq!(
            s.find_refresh("h1").unwrap(),
            None,
            "removed with its client"
        );
        if s.kind() != super::DbKind::Postgres {
            // SQLite's foreign keys refuse the late row.
            assert!(s
                .insert_refresh(&refresh("late", "fam-late", "rp", "sub-1"))
                .is_err());
            return;
        }
        s.insert_refresh(&refresh("late", "fam-late", "rp", "sub-1"))
            .unwrap();
        let now = t0() + Duration::hours(1);
        assert_eq!(
            s.rotate_refresh("late", "rp", now, next("late-2")).unwrap(),
            Rotation::Withdrawn
        );
        assert!(unused(s, "late"));
        assert_eq!(s.find_refresh("late-2").unwrap(), None);
    });
}

/// On Postgres the batches are written on a connection that plans the batch statement once:
/// a batch of first tokens only (its spend arrays empty, as the code exchanges make them)
/// would otherwise be planned afresh each time, a custom plan looking cheaper than the
/// generic one. The other connections keep the server's setting.
#[test]
fn batches_on_postgres_reuse_one_plan() {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Bool};

    #[derive(diesel::QueryableByName)]
    struct Plans {
        #[diesel(sql_type = BigInt)]
        generic: i64,
        #[diesel(sql_type = BigInt)]
        custom: i64,
    }
    #[derive(diesel::QueryableByName)]
    struct Kept {
        #[diesel(sql_type = Bool)]
        kept: bool,
    }
    each(|s| {
        seed(s);
        for i in 0..8 {
            let (_, issued) = s.write_as_batch(
                vec![],
                &[refresh(
                    &format!("first-{i}"),
                    &format!("fam-f{i}"),
                    "rp",
                    "sub-1",
                )],
            );
            assert!(matches!(issued[..], [Ok(true)]));
        }
        let mut conn = s.batch_conn().unwrap();
        let super::DbConnection::Pg(pg) = &mut *conn else {
            return;
        };
        let plans: Plans = diesel::sql_query(
            "SELECT generic_plans AS generic, custom_plans AS custom \
             FROM pg_prepared_statements WHERE statement LIKE 'WITH spent AS%'",
        )
        .get_result(pg)
        .unwrap();
        assert_eq!(
            (plans.generic, plans.custom),
            (8, 0),
            "one plan for every batch"
        );
        drop(conn);

        let mut conn = s.conn().unwrap();
        let super::DbConnection::Pg(pg) = &mut *conn else {
            unreachable!("one backend per store")
        };
        let setting: Kept = diesel::sql_query(
            "SELECT setting = reset_val AS kept FROM pg_settings \
             WHERE name = 'plan_cache_mode'",
        )
        .get_result(pg)
        .unwrap();
        assert!(
            setting.kept,
            "the other connections keep the server's setting"
        );
    });
}

#[test]
fn rotates_once_then_reports_reuse() {
    each(|s| {
        seed(s);
        let now = t0() + Duration::hours(1);
        let old = s.find_refresh("h1").unwrap().unwrap();
        assert_eq!(
            s.rotate_refresh("h1", "rp", now, next("h2")).unwrap(),
            Rotation::Rotated(RefreshToken {
                used_at: Some(now),
                ..old.clone()
            })
        );
        let successor = s.find_refresh("h2").unwrap().unwrap();
        assert_eq!(successor.family_id, "fam-1");
        assert_eq!(successor.used_at, None);

        let later = now + Duration::minutes(1);
        assert_eq!(
            s.rotate_refresh("h1", "rp", later, next("h3")).unwrap(),
            Rotation::AlreadyUsed(RefreshToken {
                used_at: Some(now),
                ..old
            })
        );
        assert_eq!(
            s.find_refresh("h3").unwrap(),
            None,
            "no successor of a reuse"
        );
        assert_eq!(
            s.rotate_refresh("unknown", "rp", now, next("h4")).unwrap(),
            Rotation::Invalid
        );
        assert_eq!(
            s.rotate_refresh("h\0", "rp", now, next("h4")).unwrap(),
            Rotation::Invalid
        );
    });
}

#[test]
fn anything_but_a_rotation_changes_nothing() {
    each(|s| {
        seed(s);
        let now = t0() + Duration::hours(1);
        assert_eq!(
            s.rotate_refresh("h1", "other", now, next("h2")).unwrap(),
            Rotation::OtherClient
        );
        assert!(unused(s, "h1"), "another client cannot burn the token");

        assert_eq!(
            s.rotate_refresh("h1", "rp", now, beyond_grant("h2"))
                .unwrap(),
            Rotation::Declined
        );
        assert!(
            unused(s, "h1"),
            "a declined request does not spend the token"
        );

        // Consent withdrawn: the grant row is gone.
        s.insert_refresh(&refresh("x1", "fam-x", "other", "sub-1"))
            .unwrap();
        assert_eq!(
            s.rotate_refresh("x1", "other", now, next("x2")).unwrap(),
            Rotation::Withdrawn
        );
        assert!(unused(s, "x1"));
        assert_eq!(s.find_refresh("x2").unwrap(), None);
        assert_eq!(s.find_refresh("h2").unwrap(), None);
    });
}

#[test]
fn expired_or_revoked_is_invalid() {
    each(|s| {
        seed(s);
        let t = s.find_refresh("h1").unwrap().unwrap();
        assert_eq!(
            s.rotate_refresh("h1", "rp", t.expires_at, next("h2"))
                .unwrap(),
            Rotation::Invalid
        );
        assert!(unused(s, "h1"), "an expired token is not marked used");

        s.insert_refresh(&refresh("r1", "fam-r", "rp", "sub-1"))
            .unwrap();
        assert_eq!(s.revoke_family("fam-r", t0()).unwrap(), 1);
        assert_eq!(
            s.rotate_refresh("r1", "rp", t0(), next("r2")).unwrap(),
            Rotation::Invalid
        );
        assert_eq!(s.find_refresh("h2").unwrap(), None);
        assert_eq!(s.find_refresh("r2").unwrap(), None);
    });
}

#[test]
fn concurrent_rotations_have_one_winner() {
    each(|s| {
        seed(s);
        let barrier = Barrier::new(8);
        let now = t0() + Duration::seconds(10);
        let names = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"];
        let results: Vec<Rotation> = std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .iter()
                .map(|name| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        s.rotate_refresh("h1", "rp", now, next(*name)).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let rotated = results
            .iter()
            .filter(|r| matches!(r, Rotation::Rotated(_)))
            .count();
        let reused = results
            .iter()
            .filter(|r| matches!(r, Rotation::AlreadyUsed(_)))
            .count();
        assert_eq!((rotated, reused), (1, 7), "{results:?}");
        let successors = names
            .iter()
            .filter(|n| s.find_refresh(n).unwrap().is_some())
            .count();
        assert_eq!(successors, 1, "exactly one successor stored");
    });
}

#[test]
fn a_batch_answers_each_rotation_as_if_it_came_alone() {
    each(|s| {
        seed(s);
        for (hash, family, client) in [
            ("x1", "fam-x", "other"), // no grant of sub-1 to "other": withdrawn
            ("d1", "fam-d", "rp"),
            ("o1", "fam-o", "rp"),
            ("g1", "fam-g", "rp"),
        ] {
            s.insert_refresh(&refresh(hash, family, client, "sub-1"))
                .unwrap();
        }
        let now = t0() + Duration::hours(1);
        let answers = s.rotate_as_batch(vec![
            ("o1", "other", now, next("o2")),
            ("h1", "rp", now, next("h2")),
            ("h1", "rp", now, next("h3")),
            ("x1", "other", now, next("x2")),
            ("d1", "rp", now, beyond_grant("d2")),
            ("g1", "rp", now, next("g2")),
            ("unknown", "rp", now, next("u2")),
            ("o1", "rp", now, next("o3")),
        ]);
        let answers: Vec<Rotation> = answers.into_iter().map(Result::unwrap).collect();
        let kinds: Vec<&str> = answers
            .iter()
            .map(|a| match a {
                Rotation::Rotated(_) => "rotated",
                Rotation::AlreadyUsed(_) => "reused",
                Rotation::OtherClient => "other client",
                Rotation::Withdrawn => "withdrawn",
                Rotation::Declined => "declined",
                Rotation::Invalid => "invalid",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "other client",
                "rotated",
                "reused",
                "withdrawn",
                "declined",
                "rotated",
                "invalid",
                "rotated"
            ]
        );
        let Rotation::Rotated(spent) = &answers[1] else {
            unreachable!()
        };
        assert_eq!(
            (spent.token_hash.as_str(), spent.used_at),
            ("h1", Some(now))
        );
        for stored in ["h2", "g2", "o3"] {
            assert!(unused(s, stored), "successor {stored} stored");
        }
        for absent in ["h3", "x2", "o2", "u2", "d2"] {
            assert_eq!(s.find_refresh(absent).unwrap(), None, "{absent}");
        }
        assert!(unused(s, "x1"), "a withdrawn rotation is undone");
        assert!(unused(s, "d1"), "a declined rotation is undone");
        for spent in ["h1", "g1", "o1"] {
            assert!(!unused(s, spent), "{spent} spent");
        }
    });
}

#[test]
fn concurrent_rotations_of_different_tokens_all_succeed() {
    const N: usize = 24;
    each(|s| {
        seed(s);
        let olds: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
        for old in &olds {
            s.insert_refresh(&refresh(old, "fam-c", "rp", "sub-1"))
                .unwrap();
        }
        let barrier = Barrier::new(N);
        let now = t0() + Duration::seconds(10);
        let results: Vec<Rotation> = std::thread::scope(|scope| {
            let handles: Vec<_> = olds
                .iter()
                .map(|old| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        s.rotate_refresh(old, "rp", now, next(format!("{old}-next")))
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (old, result) in olds.iter().zip(&results) {
            assert!(
                matches!(result, Rotation::Rotated(t) if &t.token_hash == old),
                "{old}: {result:?}"
            );
            assert!(!unused(s, old));
            assert!(unused(s, &format!("{old}-next")));
        }
    });
}

/// Code exchanges issuing new tokens while others rotate: every write lands once, each
/// caller gets its own kind of answer.
#[test]
fn concurrent_issues_and_rotations_all_land() {
    const N: usize = 12;
    each(|s| {
        seed(s);
        for i in 0..N {
            s.insert_refresh(&refresh(&format!("r{i}"), "fam-r", "rp", "sub-1"))
                .unwrap();
        }
        let barrier = Barrier::new(2 * N);
        let now = t0() + Duration::seconds(10);
        std::thread::scope(|scope| {
            for i in 0..N {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let token = refresh(&format!("i{i}"), &format!("fam-i{i}"), "rp", "sub-1");
                    assert!(s.issue_refresh(token).unwrap(), "i{i}");
                });
                scope.spawn(move || {
                    barrier.wait();
                    let old = format!("r{i}");
                    let rotated = s
                        .rotate_refresh(&old, "rp", now, next(format!("r{i}-next")))
                        .unwrap();
                    assert!(matches!(rotated, Rotation::Rotated(t) if t.token_hash == old));
                });
            }
        });
        for i in 0..N {
            assert!(unused(s, &format!("i{i}")));
            assert!(unused(s, &format!("r{i}-next")));
            assert!(!unused(s, &format!("r{i}")));
        }
    });
}

/// Async callers (the token endpoint's tasks) wait for their batch without holding a
/// thread, beside blocking callers on threads of their own, whichever of them starts the
/// writer: every write lands once, one presentation of a token wins and the others see it
/// used, an unstorable hash is invalid and a hash that cannot join a batch rotates alone.
#[test]
fn async_and_blocking_callers_share_the_batches() {
    const N: usize = 16;
    each(|s| {
        seed(s);
        for i in 0..N {
            for prefix in ["a", "b"] {
                s.insert_refresh(&refresh(&format!("{prefix}{i}"), "fam-a", "rp", "sub-1"))
                    .unwrap();
            }
        }
        s.insert_refresh(&refresh("with space", "fam-s", "rp", "sub-1"))
            .unwrap();
        let now = t0() + Duration::seconds(10);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (issued, rotated, contested, odd) = std::thread::scope(|scope| {
            // Blocking callers rotate the "b" tokens meanwhile.
            let blocking: Vec<_> = (0..N)
                .map(|i| {
                    scope.spawn(move || {
                        let old = format!("b{i}");
                        s.rotate_refresh(&old, "rp", now, next(format!("{old}-next")))
                            .unwrap()
                    })
                })
                .collect();
            let answers = runtime.block_on(async {
                let store = s.clone();
                let issues: Vec<_> = (0..N)
                    .map(|i| {
                        let store = store.clone();
                        let token = refresh(&format!("i{i}"), &format!("fam-i{i}"), "rp", "sub-1");
                        tokio::spawn(async move { store.issue_refresh_queued(token).await })
                    })
                    .collect();
                let rotations: Vec<_> = (0..N)
                    .map(|i| {
                        let store = store.clone();
                        let (old, new) = (format!("a{i}"), format!("a{i}-next"));
                        tokio::spawn(async move {
                            store
                                .rotate_refresh_queued(old, "rp".into(), now, next(new))
                                .await
                        })
                    })
                    .collect();
                let contested: Vec<_> = (0..4)
                    .map(|i| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            store
                                .rotate_refresh_queued(
                                    "h1".into(),
                                    "rp".into(),
                                    now,
                                    next(format!("h1-{i}")),
                                )
                                .await
                        })
                    })
                    .collect();
                let mut out = (Vec::new(), Vec::new(), Vec::new());
                for h in issues {
                    out.0.push(h.await.unwrap().unwrap());
                }
                for h in rotations {
                    out.1.push(h.await.unwrap().unwrap());
                }
                for h in contested {
                    out.2.push(h.await.unwrap().unwrap());
                }
                let odd = (
                    store
                        .rotate_refresh_queued("nul\0".into(), "rp".into(), now, next("x"))
                        .await
                        .unwrap(),
                    store
                        .rotate_refresh_queued(
                            "with space".into(),
                            "rp".into(),
                            now,
                            next("s-next"),
                        )
                        .await
                        .unwrap(),
                );
                (out, odd)
            });
            for h in blocking {
                assert!(matches!(h.join().unwrap(), Rotation::Rotated(_)));
            }
            let ((issued, rotated, contested), odd) = answers;
            (issued, rotated, contested, odd)
        });
        assert!(issued.iter().all(|&stored| stored), "{issued:?}");
        for (i, r) in rotated.iter().enumerate() {
            assert!(
                matches!(r, Rotation::Rotated(t) if t.token_hash == format!("a{i}")),
                "{r:?}"
            );
        }
        let won = contested
            .iter()
            .filter(|r| matches!(r, Rotation::Rotated(_)))
            .count();
        let reused = contested
            .iter()
            .filter(|r| matches!(r, Rotation::AlreadyUsed(_)))
            .count();
        assert_eq!((won, reused), (1, 3), "{contested:?}");
        assert!(matches!(odd.0, Rotation::Invalid), "{:?}", odd.0);
        assert!(
            matches!(&odd.1, Rotation::Rotated(t) if t.token_hash == "with space"),
            "{:?}",
            odd.1
        );
        for i in 0..N {
            assert!(unused(s, &format!("i{i}")));
            for prefix in ["a", "b"] {
                assert!(!unused(s, &format!("{prefix}{i}")));
                assert!(unused(s, &format!("{prefix}{i}-next")));
            }
        }
        assert!(unused(s, "s-next"));
        let successors = (0..4)
            .filter(|i| s.find_refresh(&format!("h1-{i}")).unwrap().is_some())
            .count();
        assert_eq!(successors, 1);
    });
}

/// A successor is the spent token renewed: same family, client, subject and sign-in, its
/// own hash and lifetime, and the scopes it asked for (narrowed, or the spent token's when
/// the asked ones are among them). Alone and in a batch, on every backend.
#[test]
fn a_successor_is_the_spent_token_renewed_with_the_scopes_asked() {
    each(|s| {
        seed(s);
        let now = t0() + Duration::hours(1);
        let renewed = |hash: &str, scopes: &[&str]| RefreshToken {
            token_hash: hash.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: now,
            expires_at: now + Duration::days(30),
            ..refresh(hash, "fam-1", "rp", "sub-1")
        };
        let asking = |hash: &str, scopes: SuccessorScopes| Successor {
            token_hash: hash.into(),
            created_at: now,
            expires_at: now + Duration::days(30),
            scopes,
        };
        let openid = || vec!["openid".to_string()];
        for old in ["old-s1", "old-s2", "old-s3"] {
            s.insert_refresh(&refresh(old, "fam-1", "rp", "sub-1"))
                .unwrap();
        }
        // Alone (a batch of one).
        assert!(matches!(
            s.rotate_refresh("old-s1", "rp", now, asking("s1", SuccessorScopes::Same))
                .unwrap(),
            Rotation::Rotated(_)
        ));
        // In a batch with others.
        let answers = s.rotate_as_batch(vec![
            (
                "old-s2",
                "rp",
                now,
                asking("s2", SuccessorScopes::Narrowed(openid())),
            ),
            (
                "old-s3",
                "rp",
                now,
                asking("s3", SuccessorScopes::Within(openid())),
            ),
            (
                "h1",
                "rp",
                now,
                asking("h2", SuccessorScopes::Within(vec!["admin".into()])),
            ),
        ]);
        let kinds: Vec<bool> = answers
            .into_iter()
            .map(|a| matches!(a.unwrap(), Rotation::Rotated(_)))
            .collect();
        assert_eq!(kinds, [true, true, false]);
        assert_eq!(
            s.find_refresh("s1").unwrap(),
            Some(renewed("s1", &["openid", "offline_access"]))
        );
        assert_eq!(
            s.find_refresh("s2").unwrap(),
            Some(renewed("s2", &["openid"]))
        );
        assert_eq!(
            s.find_refresh("s3").unwrap(),
            Some(renewed("s3", &["openid", "offline_access"]))
        );
        assert_eq!(s.find_refresh("h2").unwrap(), None);
        assert!(
            unused(s, "h1"),
            "a scope beyond the grant does not spend the token"
        );
        // Successor::of says the same without a database.
        let spent = refresh("old", "fam-1", "rp", "sub-1");
        assert_eq!(
            asking("s2", SuccessorScopes::Narrowed(openid())).of(&spent),
            Some(renewed("s2", &["openid"]))
        );
        assert_eq!(beyond_grant("x").of(&spent), None);
    });
}
