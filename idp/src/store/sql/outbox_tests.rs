//! Outbox contract tests: on a fresh SQLite file, and on Postgres when `TEST_DATABASE_URL`
//! is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Barrier;

use chrono::{DateTime, Duration, Utc};

use super::tests::{backends, each, t0};
use super::SqlStore;
use crate::notify::{Channel, FailureOutcome, NewMessage, OutboxStore, RetryPolicy, SendError};

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        backoff_base: Duration::seconds(10),
        backoff_max: Duration::seconds(25),
        lease: Duration::seconds(60),
    }
}

fn sms(to: &str, code: &str) -> NewMessage {
    NewMessage::new(
        Channel::Sms,
        to,
        "otp",
        format!("Код подтверждения: {code}"),
    )
}

#[test]
fn outbox_enqueue_claim_open_and_mark_sent() {
    each(|s| {
        let m = NewMessage::new(Channel::Email, "ivan@example.ru", "otp", "Ваш код 123456")
            .with_subject("Код для входа")
            .with_locale("ru");
        let id = s.enqueue(&m, t0()).unwrap();
        // Not due before it was queued.
        assert!(s
            .claim_due(t0() - Duration::seconds(1), 10, &policy())
            .unwrap()
            .is_empty());
        let got = s.claim_due(t0(), 10, &policy()).unwrap();
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!(c.id, id);
        assert_eq!(c.channel, Channel::Email);
        assert_eq!(c.recipient, "ivan@example.ru");
        assert_eq!(c.subject.as_deref(), Some("Код для входа"));
        assert_eq!(c.text, "Ваш код 123456");
        assert_eq!((c.kind.as_str(), c.locale.as_str()), ("otp", "ru"));
        assert_eq!(c.created_at, t0());
        assert_eq!(c.attempt, 1);
        // Debug shows neither the recipient nor the content.
        let dbg = format!("{c:?} {m:?}");
        assert!(!dbg.contains("ivan@") && !dbg.contains("123456"), "{dbg}");

        // Leased: not claimable again until the lease ends.
        assert!(s
            .claim_due(t0() + Duration::seconds(59), 10, &policy())
            .unwrap()
            .is_empty());
        let e = s.outbox_entry(&id).unwrap().unwrap();
        assert_eq!(e.attempts, 1);
        assert_eq!(e.next_attempt_at, t0() + Duration::seconds(60));

        assert!(s.mark_sent(&id, t0() + Duration::seconds(1)).unwrap());
        assert!(!s.mark_sent(&id, t0() + Duration::seconds(2)).unwrap());
        let e = s.outbox_entry(&id).unwrap().unwrap();
        assert_eq!(e.sent_at, Some(t0() + Duration::seconds(1)));
        assert_eq!(e.failed_at, None);
        // Sent messages are never claimed again.
        assert!(s
            .claim_due(t0() + Duration::days(1), 10, &policy())
            .unwrap()
            .is_empty());
        assert!(s.outbox_entry("nope").unwrap().is_none());
        assert!(s.outbox_entry("bad\0id").unwrap().is_none());
    });
}

#[test]
fn outbox_claims_oldest_due_first_up_to_the_limit() {
    each(|s| {
        let ids: Vec<String> = (0..5)
            .map(|i| {
                s.enqueue(&sms("+79160000000", "1"), t0() + Duration::seconds(i))
                    .unwrap()
            })
            .collect();
        let now = t0() + Duration::seconds(10);
        let first: Vec<String> = s
            .claim_due(now, 2, &policy())
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(first, ids[..2]);
        let rest: Vec<String> = s
            .claim_due(now, 10, &policy())
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(rest, ids[2..]);
    });
}

#[test]
fn outbox_failures_back_off_exponentially_then_give_up() {
    each(|s| {
        let p = policy();
        let id = s.enqueue(&sms("+79161234567", "111111"), t0()).unwrap();
        let tmp = SendError::Temporary("gateway: HTTP 503".into());

        // Attempt 1 fails: due again after base (10 s).
        let m = s.claim_due(t0(), 10, &p).unwrap().remove(0);
        assert_eq!(m.attempt, 1);
        let t1 = t0() + Duration::seconds(1);
        assert_eq!(
            s.record_failure(&id, 1, &tmp, &p, t1).unwrap(),
            FailureOutcome::RetryAt(t1 + Duration::seconds(10))
        );
        let e = s.outbox_entry(&id).unwrap().unwrap();
        assert_eq!(e.last_error.as_deref(), Some("gateway: HTTP 503"));
        assert!(s
            .claim_due(t1 + Duration::seconds(9), 10, &p)
            .unwrap()
            .is_empty());

        // Attempt 2 fails: twice the base (20 s).
        let t2 = t1 + Duration::seconds(10);
        let m = s.claim_due(t2, 10, &p).unwrap().remove(0);
        assert_eq!(m.attempt, 2);
        // A stale claim (attempt 1) can no longer record anything.
        assert_eq!(
            s.record_failure(&id, 1, &tmp, &p, t2).unwrap(),
            FailureOutcome::Stale
        );
        assert_eq!(
            s.record_failure(&id, 2, &tmp, &p, t2).unwrap(),
            FailureOutcome::RetryAt(t2 + Duration::seconds(20))
        );

        // Attempt 3 is the last one (max 3): giving up.
        let t3 = t2 + Duration::seconds(20);
        let m = s.claim_due(t3, 10, &p).unwrap().remove(0);
        assert_eq!(m.attempt, 3);
        assert_eq!(
            s.record_failure(&id, 3, &tmp, &p, t3).unwrap(),
            FailureOutcome::GaveUp
        );
        let e = s.outbox_entry(&id).unwrap().unwrap();
        assert_eq!(e.failed_at, Some(t3));
        assert_eq!(e.attempts, 3);
        assert!(s
            .claim_due(t3 + Duration::days(1), 10, &p)
            .unwrap()
            .is_empty());
    });
}

#[test]
fn outbox_permanent_failure_gives_up_at_once() {
    each(|s| {
        let id = s.enqueue(&sms("+79161234567", "222222"), t0()).unwrap();
        s.claim_due(t0(), 10, &policy()).unwrap();
        let perm = SendError::Permanent("gateway: HTTP 400".into());
        assert_eq!(
            s.record_failure(&id, 1, &perm, &policy(), t0()).unwrap(),
            FailureOutcome::GaveUp
        );
        let e = s.outbox_entry(&id).unwrap().unwrap();
        assert_eq!(e.last_error.as_deref(), Some("gateway: HTTP 400"));
        assert!(e.failed_at.is_some() && e.sent_at.is_none());
    });
}

#[test]
fn outbox_expired_lease_is_reclaimed_and_last_one_given_up() {
    each(|s| {
        let p = policy();
        let id = s.enqueue(&sms("+79161234567", "333333"), t0()).unwrap();
        // A node claims and dies; after the lease another node takes the message.
        let mut now = t0();
        for attempt in 1..=3 {
            let got = s.claim_due(now, 10, &p).unwrap();
            assert_eq!(got.len(), 1, "attempt {attempt}");
            assert_eq!(got[0].attempt, attempt);
            now += p.lease;
        }
        // The last allowed attempt's lease ran out: given up, not claimed a fourth time.
        assert!(s.claim_due(now, 10, &p).unwrap().is_empty());
        let e = s.outbox_entry(&id).unwrap().unwrap();
        assert_eq!(e.attempts, 3);
        assert_eq!(e.failed_at, Some(now));
        // A late success of the dead node still counts.
        assert!(s.mark_sent(&id, now).unwrap());
    });
}

#[test]
fn outbox_purge_removes_only_finished_messages_older_than_the_cutoff() {
    each(|s| {
        let p = policy();
        let sent_old = s.enqueue(&sms("+7916", "1"), t0()).unwrap();
        let failed_old = s.enqueue(&sms("+7916", "2"), t0()).unwrap();
        let sent_new = s.enqueue(&sms("+7916", "3"), t0()).unwrap();
        let pending = s.enqueue(&sms("+7916", "4"), t0()).unwrap();
        s.claim_due(t0(), 10, &p).unwrap();
        s.mark_sent(&sent_old, t0()).unwrap();
        s.record_failure(&failed_old, 1, &SendError::Permanent("x".into()), &p, t0())
            .unwrap();
        s.mark_sent(&sent_new, t0() + Duration::days(8)).unwrap();
        let cutoff = t0() + Duration::days(7);
        assert_eq!(s.purge_finished(cutoff).unwrap(), 2);
        assert!(s.outbox_entry(&sent_old).unwrap().is_none());
        assert!(s.outbox_entry(&failed_old).unwrap().is_none());
        assert!(s.outbox_entry(&sent_new).unwrap().is_some());
        assert!(s.outbox_entry(&pending).unwrap().is_some());
        assert_eq!(s.purge_finished(cutoff).unwrap(), 0);
    });
}

/// Claims at `now` in a loop until nothing is due, as a dispatcher on one node would.
fn drain(s: &SqlStore, barrier: &Barrier, now: DateTime<Utc>) -> Vec<String> {
    barrier.wait();
    let mut mine = Vec::new();
    loop {
        let got = s.claim_due(now, 3, &policy()).unwrap();
        if got.is_empty() {
            return mine;
        }
        mine.extend(got.into_iter().map(|m| m.id));
    }
}

#[test]
fn outbox_concurrent_claimers_get_disjoint_messages() {
    each(|s| {
        let all: HashSet<String> = (0..30)
            .map(|i| {
                s.enqueue(&sms("+79161234567", &format!("{i:06}")), t0())
                    .unwrap()
            })
            .collect();
        // Two nodes, then (after every lease ran out) four nodes, race for the same messages.
        let rounds = [(2usize, t0()), (4, t0() + policy().lease)];
        for (claimers, now) in rounds {
            let barrier = Barrier::new(claimers);
            let results: Vec<Vec<String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..claimers)
                    .map(|_| {
                        let barrier = &barrier;
                        scope.spawn(move || drain(s, barrier, now))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let total: usize = results.iter().map(Vec::len).sum();
            let union: HashSet<String> = results.iter().flatten().cloned().collect();
            assert_eq!(
                total,
                union.len(),
                "a message was claimed twice: {results:?}"
            );
            assert_eq!(
                union, all,
                "every message is claimed once by {claimers} claimers"
            );
        }
    });
}

#[test]
fn outbox_recipient_and_body_are_not_stored_in_clear() {
    for db in backends() {
        eprintln!("backend: {:?}", db.kind());
        let phone = "+79169876543";
        let code = "48151623";
        let email = "secret.person@example.ru";
        db.enqueue(&sms(phone, code), t0()).unwrap();
        db.enqueue(
            &NewMessage::new(Channel::Email, email, "otp", format!("code {code}"))
                .with_subject("Subject with code 48151623"),
            t0(),
        )
        .unwrap();
        // Through a failed attempt too, so last_error is written.
        let p = policy();
        for m in db.claim_due(t0(), 10, &p).unwrap() {
            db.record_failure(
                &m.id,
                m.attempt,
                &SendError::Temporary("smtp: deferred (451)".into()),
                &p,
                t0(),
            )
            .unwrap();
        }
        let dump = db.dump();
        let hay = String::from_utf8_lossy(&dump);
        assert!(hay.contains("otp"), "the dump holds the outbox rows");
        for secret in [
            phone,
            "9169876543",
            code,
            email,
            "secret.person",
            "Subject with",
        ] {
            assert!(!hay.contains(secret), "`{secret}` is in the dump in clear");
        }
    }
}

#[test]
fn outbox_sealed_parts_are_bound_to_their_row() {
    each(|s| {
        use diesel::prelude::*;
        let a = s.enqueue(&sms("+79160000001", "111111"), t0()).unwrap();
        let b = s.enqueue(&sms("+79160000002", "222222"), t0()).unwrap();
        // Copy b's sealed recipient into a: opening it under a's id must fail, and the row is
        // given up instead of breaking every round.
        diesel::sql_query(
            "UPDATE outbox SET recipient_sealed = (SELECT recipient_sealed FROM outbox WHERE id = $1) WHERE id = $2",
        )
        .bind::<diesel::sql_types::Text, _>(&b)
        .bind::<diesel::sql_types::Text, _>(&a)
        .execute(&mut *s.conn().unwrap())
        .unwrap();
        let got = s.claim_due(t0(), 10, &policy()).unwrap();
        assert_eq!(
            got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            [b.as_str()]
        );
        let e = s.outbox_entry(&a).unwrap().unwrap();
        assert!(e.failed_at.is_some());
        assert_eq!(
            e.last_error.as_deref(),
            Some("sealed message cannot be opened")
        );
    });
}

#[test]
fn outbox_backoff_doubles_up_to_the_cap() {
    let p = RetryPolicy {
        max_attempts: 10,
        backoff_base: Duration::seconds(10),
        backoff_max: Duration::seconds(60),
        lease: Duration::seconds(60),
    };
    let delays: Vec<i64> = (1..=6).map(|a| p.backoff(a).num_seconds()).collect();
    assert_eq!(delays, [10, 20, 40, 60, 60, 60]);
    assert_eq!(p.backoff(u32::MAX).num_seconds(), 60);
    assert_eq!(p.retry_at(10, false, t0()), None);
    assert_eq!(p.retry_at(1, true, t0()), None);
    assert_eq!(
        p.retry_at(9, false, t0()),
        Some(t0() + Duration::seconds(60))
    );
}
