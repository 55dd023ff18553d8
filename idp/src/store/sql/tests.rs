//! Store contract tests: every body runs on a fresh SQLite file, and also on a fresh
//! Postgres database when `TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::Deref;
use std::sync::Barrier;

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};

use super::{DbKind, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::{
    Client, ClientAuthMethod, Grant, GrantType, Profile, RefreshToken, SsoSession, Subject,
};
use crate::store::{
    AuditStore, ClientStore, GrantStore, RefreshTokenStore, SessionStore, SigninAtClient,
    StoreError, SubjectStore, Successor, SuccessorScopes,
};

/// A store on its own database, removed when dropped.
pub(crate) struct TestDb {
    store: Option<SqlStore>,
    _dir: Option<tempfile::TempDir>,
    /// (admin url, database name) of a Postgres database to drop.
    pg: Option<(String, String)>,
}

impl TestDb {
    /// Every byte the database keeps on disk, as a backup would hold it: the SQLite files
    /// (database, WAL), or `pg_dump` of the Postgres database.
    pub(super) fn dump(&self) -> Vec<u8> {
        if let Some((admin, name)) = &self.pg {
            let mut url = url::Url::parse(admin).unwrap();
            url.set_path(&format!("/{name}"));
            let out = std::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg(url.as_str())
                .output()
                .expect("pg_dump (postgresql-client) is installed");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return out.stdout;
        }
        let mut all = Vec::new();
        let dir = self._dir.as_ref().unwrap().path().join("nested");
        for entry in std::fs::read_dir(dir).unwrap() {
            all.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        all
    }
}

impl Deref for TestDb {
    type Target = SqlStore;
    fn deref(&self) -> &SqlStore {
        self.store.as_ref().unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop(self.store.take());
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut c) = PgConnection::establish(admin) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut c);
            }
        }
    }
}

/// The SQLite connection of a pooled connection of a SQLite store.
fn sqlite_conn(pooled: &mut super::PooledDb) -> &mut diesel::SqliteConnection {
    match &mut **pooled {
        super::DbConnection::Sqlite(c) => c,
        super::DbConnection::Pg(_) => panic!("a SQLite store hands out SQLite connections"),
    }
}

fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("propusk.db");
    let store = SqlStore::connect(&format!("sqlite://{}", path.display()), 4)
        .unwrap()
        .with_vault(test_vault());
    store.migrate().unwrap();
    assert_eq!(store.kind(), DbKind::Sqlite);
    TestDb {
        store: Some(store),
        _dir: Some(dir),
        pg: None,
    }
}

fn pg_db(admin: &str) -> TestDb {
    let name = format!("propusk_t_{}", uuid::Uuid::new_v4().simple());
    let mut c = PgConnection::establish(admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut c)
        .unwrap();
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&format!("/{name}"));
    // Registered before connecting so the database is dropped even if setup fails.
    let mut db = TestDb {
        store: None,
        _dir: None,
        pg: Some((admin.to_string(), name)),
    };
    let store = SqlStore::connect(url.as_str(), 4)
        .unwrap()
        .with_vault(test_vault());
    store.migrate().unwrap();
    assert_eq!(store.kind(), DbKind::Postgres);
    db.store = Some(store);
    db
}

fn test_vault() -> std::sync::Arc<keys::Vault> {
    std::sync::Arc::new(keys::Vault::new(
        keys::DataKey::generate().unwrap(),
        vec![],
        keys::DataKey::generate().unwrap(),
    ))
}

pub(crate) fn backends() -> Vec<TestDb> {
    let mut dbs = vec![sqlite_db()];
    if let Ok(admin) = std::env::var("TEST_DATABASE_URL") {
        if !admin.is_empty() {
            dbs.push(pg_db(&admin));
        }
    }
    dbs
}

/// Runs `body` on every backend, naming the backend if it fails.
pub(super) fn each(body: impl Fn(&SqlStore)) {
    for db in backends() {
        eprintln!("backend: {:?}", db.kind());
        body(&db);
    }
}

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + Duration::microseconds(123_456)
}

/// An audit event of `sub-1` at `t0()`.
pub(super) fn event(kind: &str) -> AuditEvent {
    AuditEvent {
        at: t0(),
        kind: kind.into(),
        subject_id: Some("sub-1".into()),
        client_id: None,
        ip: None,
        detail: serde_json::json!({}),
    }
}

pub(crate) fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        name: format!("Portal {id}"),
        secret_hash: Some("c2VjcmV0LWhhc2g".into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![
            "https://rp.example/cb".into(),
            "https://rp.example/cb2".into(),
        ],
        post_logout_redirect_uris: vec!["https://rp.example/bye".into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: vec!["openid".into(), "profile".into()],
        jwks: Some(serde_json::json!({"keys": []})),
        id_token_alg: Some("ES256".into()),
        created_at: t0(),
        min_acr: Some("urn:propusk:acr:2".into()),
    }
}

pub(super) fn subject(id: &str, login: &str) -> Subject {
    Subject {
        id: id.into(),
        oid: 0,
        login: login.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        profile: Profile {
            given_name: Some("Иван".into()),
            family_name: Some("Петров".into()),
            email: Some(login.into()),
            email_verified: true,
            ..Profile::default()
        },
        created_at: t0(),
        updated_at: t0(),
    }
}

pub(super) fn session(id_hash: &str, sid: &str, subject_id: &str) -> SsoSession {
    SsoSession {
        id_hash: id_hash.into(),
        sid: sid.into(),
        subject_id: subject_id.into(),
        auth_time: t0(),
        acr: "urn:propusk:acr:pwd".into(),
        amr: vec!["pwd".into()],
        remember: true,
        created_at: t0(),
        expires_at: t0() + Duration::hours(8),
        ended_at: None,
    }
}

pub(super) fn refresh(hash: &str, family: &str, client_id: &str, subject_id: &str) -> RefreshToken {
    RefreshToken {
        token_hash: hash.into(),
        family_id: family.into(),
        client_id: client_id.into(),
        subject_id: subject_id.into(),
        scopes: vec!["openid".into(), "offline_access".into()],
        sid: Some("sid-1".into()),
        auth_time: t0(),
        acr: "urn:propusk:acr:pwd".into(),
        amr: vec!["pwd".into(), "otp".into()],
        created_at: t0(),
        expires_at: t0() + Duration::days(30),
        used_at: None,
        revoked_at: None,
    }
}

/// A successor named `hash`, with the spent token's scopes, created at `t0()`.
pub(super) fn successor(hash: &str) -> Successor {
    Successor {
        token_hash: hash.into(),
        created_at: t0(),
        expires_at: t0() + Duration::days(30),
        scopes: SuccessorScopes::Same,
    }
}

/// A client "rp" and a subject "sub-1" for tests that need both.
fn seed(s: &SqlStore) {
    s.insert_client(&client("rp")).unwrap();
    s.insert_subject(&subject("sub-1", "ivan@example.ru"))
        .unwrap();
}

#[test]
fn url_forms() {
    assert_eq!(DbKind::parse("postgres://u@h/db").0, DbKind::Postgres);
    assert_eq!(DbKind::parse("postgresql://u@h/db").0, DbKind::Postgres);
    assert_eq!(
        DbKind::parse("sqlite://data/p.db"),
        (DbKind::Sqlite, "data/p.db".to_string())
    );
    assert_eq!(
        DbKind::parse("sqlite:///abs/p.db"),
        (DbKind::Sqlite, "/abs/p.db".to_string())
    );
    assert_eq!(
        DbKind::parse("sqlite:p.db"),
        (DbKind::Sqlite, "p.db".to_string())
    );
    assert_eq!(
        DbKind::parse("./data/propusk.db"),
        (DbKind::Sqlite, "./data/propusk.db".to_string())
    );
}

#[test]
fn migrate_twice_is_a_no_op() {
    each(|s| s.migrate().unwrap());
}

#[test]
fn clients_insert_find_list_remove() {
    each(|s| {
        let a = client("a-portal");
        let mut b = client("b-portal");
        b.secret_hash = None;
        b.auth_method = ClientAuthMethod::None;
        b.jwks = None;
        b.id_token_alg = None;
        b.grant_types = vec![GrantType::ClientCredentials];
        s.insert_client(&b).unwrap();
        s.insert_client(&a).unwrap();
        assert!(matches!(s.insert_client(&a), Err(StoreError::Conflict)));

        assert_eq!(s.find_client("a-portal").unwrap(), Some(a.clone()));
        assert_eq!(s.find_client("nobody").unwrap(), None);
        assert_eq!(s.list_clients().unwrap(), vec![a.clone(), b.clone()]);

        assert!(s.remove_client("a-portal").unwrap());
        assert!(!s.remove_client("a-portal").unwrap());
        assert_eq!(s.list_clients().unwrap(), vec![b]);
    });
}

#[test]
fn remove_client_removes_what_was_issued_to_it() {
    each(|s| {
        seed(s);
        s.insert_client(&client("other")).unwrap();
        let g = Grant {
            subject_id: "sub-1".into(),
            client_id: "rp".into(),
            scopes: vec!["openid".into()],
            created_at: t0(),
            updated_at: t0(),
        };
        s.upsert_grant(&g).unwrap();
        s.upsert_grant(&Grant {
            client_id: "other".into(),
            ..g.clone()
        })
        .unwrap();
        s.insert_refresh(&refresh("h1", "f1", "rp", "sub-1"))
            .unwrap();
        s.insert_refresh(&refresh("h2", "f2", "other", "sub-1"))
            .unwrap();

        assert!(s.remove_client("rp").unwrap());
        assert_eq!(s.find_grant("sub-1", "rp").unwrap(), None);
        assert_eq!(s.find_refresh("h1").unwrap(), None);
        assert!(s.find_grant("sub-1", "other").unwrap().is_some());
        assert!(s.find_refresh("h2").unwrap().is_some());
    });
}

#[test]
fn subjects_insert_find_by_login() {
    each(|s| {
        let a = subject("sub-a", "ivan@example.ru");
        let oid_a = s.insert_subject(&a).unwrap();
        assert_eq!(oid_a, 1_000_000_001);
        let oid_b = s.insert_subject(&subject("sub-b", "+79123456789")).unwrap();
        assert!(oid_b > oid_a);

        let found = s.find_subject("sub-a").unwrap().unwrap();
        assert_eq!(
            found,
            Subject {
                oid: oid_a,
                ..a.clone()
            }
        );
        assert_eq!(
            s.find_subject_by_login("ivan@example.ru").unwrap(),
            Some(found)
        );
        assert_eq!(s.find_subject_by_login("nobody@example.ru").unwrap(), None);
        assert_eq!(s.find_subject("sub-x").unwrap(), None);

        // Same login, or same id: Conflict, and no oid is burnt or reused.
        let dup = s.insert_subject(&subject("sub-c", "ivan@example.ru"));
        assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");
        let dup = s.insert_subject(&subject("sub-a", "other@example.ru"));
        assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");
        let oid_c = s
            .insert_subject(&subject("sub-c", "petr@example.ru"))
            .unwrap();
        assert!(oid_c > oid_b);

        let oids: Vec<i64> = s.list_subjects().unwrap().iter().map(|x| x.oid).collect();
        assert_eq!(oids, vec![oid_a, oid_b, oid_c]);
    });
}

#[test]
fn concurrent_subject_inserts_get_distinct_oids() {
    each(|s| {
        let barrier = Barrier::new(8);
        let mut oids: Vec<i64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        s.insert_subject(&subject(&format!("sub-{i}"), &format!("u{i}@example.ru")))
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        oids.sort_unstable();
        oids.dedup();
        assert_eq!(oids.len(), 8);
        assert_eq!(oids.first(), Some(&1_000_000_001));
        assert_eq!(oids.last(), Some(&1_000_000_008));
    });
}

/// A sign-in ends the browser's previous session, stores the new one and its audit event
/// in one transaction: when the new session cannot be stored, the previous one stays live
/// and no event is written.
#[test]
fn open_session_is_all_or_nothing() {
    each(|s| {
        seed(s);
        let previous = session("hash-0", "sid-0", "sub-1");
        s.insert_session(&previous).unwrap();
        let later = t0() + Duration::minutes(5);
        let new = SsoSession {
            created_at: later,
            auth_time: later,
            ..session("hash-1", "sid-1", "sub-1")
        };
        s.open_session(&new, Some("sid-0"), &event("login.success"))
            .unwrap();
        assert_eq!(s.find_live_session("hash-1", later).unwrap(), Some(new));
        assert_eq!(s.find_live_session("hash-0", later).unwrap(), None);
        let ended = s.find_session_by_sid("sid-0").unwrap().unwrap();
        assert_eq!(ended.ended_at, Some(later));
        assert_eq!(s.list_audit(10).unwrap().len(), 1);

        // The second sign-in's session collides with a stored one: nothing changes.
        let other = session("hash-2", "sid-2", "sub-1");
        s.insert_session(&other).unwrap();
        let clash = session("hash-2", "sid-3", "sub-1");
        assert!(s
            .open_session(&clash, Some("sid-1"), &event("login.success"))
            .is_err());
        assert!(s.find_live_session("hash-1", later).unwrap().is_some());
        assert_eq!(s.find_session_by_sid("sid-3").unwrap(), None);
        assert_eq!(s.list_audit(10).unwrap().len(), 1);
        assert!(matches!(
            s.open_session(&clash, None, &event("login.success")),
            Err(StoreError::Conflict)
        ));

        // Without a previous session (the same statement on Postgres, with a NULL sid):
        // no session is ended, and the event is stored as given, every field set.
        let first = session("hash-4", "sid-4", "sub-1");
        let full = AuditEvent {
            client_id: Some("rp".into()),
            ip: Some("192.0.2.7".into()),
            detail: serde_json::json!({"amr": ["pwd"], "sid": "sid-4"}),
            ..event("login.success")
        };
        s.open_session(&first, None, &full).unwrap();
        assert_eq!(s.find_session_by_sid("sid-4").unwrap(), Some(first));
        for live in ["hash-1", "hash-2"] {
            assert!(
                s.find_live_session(live, later).unwrap().is_some(),
                "{live}"
            );
        }
        let events = s.list_audit(10).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.contains(&full), "{events:?}");
        assert!(events.contains(&event("login.success")), "{events:?}");
    });
}

#[test]
fn sessions_live_expired_ended() {
    each(|s| {
        seed(s);
        let live = session("hash-1", "sid-1", "sub-1");
        s.insert_session(&live).unwrap();
        assert!(matches!(
            s.insert_session(&session("hash-2", "sid-1", "sub-1")),
            Err(StoreError::Conflict)
        ));

        assert_eq!(
            s.find_live_session("hash-1", t0()).unwrap(),
            Some(live.clone())
        );
        assert_eq!(
            s.find_live_session("hash-1", live.expires_at).unwrap(),
            None,
            "expired at expires_at"
        );
        assert_eq!(s.find_live_session("nope", t0()).unwrap(), None);
        assert_eq!(s.find_session_by_sid("sid-1").unwrap(), Some(live.clone()));

        let end = t0() + Duration::minutes(5);
        assert!(s.end_session("sid-1", end).unwrap());
        assert!(!s.end_session("sid-1", end).unwrap());
        assert!(!s.end_session("sid-404", end).unwrap());
        assert_eq!(s.find_live_session("hash-1", t0()).unwrap(), None);
        let ended = s.find_session_by_sid("sid-1").unwrap().unwrap();
        assert_eq!(ended.ended_at, Some(end));
    });
}

/// The one read of the authorization endpoint answers exactly what the separate lookups do:
/// the grant of the asked client only, the person's standing (a default one before the
/// person has a row), the asked client's level, and nothing for a dead session.
#[test]
fn session_and_subject_at_client_read_what_the_separate_lookups_read() {
    use crate::domain::person::{AccountLevel, AccountStatus};
    use crate::store::{PersonStore, SessionAtClient, SubjectAtClient};
    each(|s| {
        seed(s);
        s.insert_client(&client("rp-2")).unwrap();
        let live = session("hash-1", "sid-1", "sub-1");
        s.insert_session(&live).unwrap();
        let separate = |cid: &str| SessionAtClient {
            session: s.find_live_session("hash-1", t0()).unwrap().unwrap(),
            grant: s.find_grant("sub-1", cid).unwrap(),
            standing: s.find_person_standing("sub-1").unwrap(),
            client_min_level: s.client_min_level(cid).unwrap(),
        };
        // The session's lookup, and the same for the subject without a session (checked
        // against the separate lookups each time the session's is).
        let at = |cid: &str| {
            let found = s.find_live_session_at("hash-1", t0(), cid).unwrap();
            let subject = s.find_signin_at("sub-1", cid).unwrap();
            let expected = separate(cid);
            assert_eq!(
                subject.at,
                SubjectAtClient {
                    grant: expected.grant,
                    standing: expected.standing,
                    client_min_level: expected.client_min_level,
                },
                "{cid}"
            );
            found
        };

        // No grant, no person row, no level yet.
        let first = at("rp").unwrap();
        assert_eq!(first, separate("rp"));
        assert_eq!(first.session, live);
        assert_eq!((first.grant, first.client_min_level), (None, None));
        let standing = first
            .standing
            .expect("a subject without a person row stands");
        assert_eq!(
            (standing.level, standing.status),
            (AccountLevel::Simplified, AccountStatus::Active)
        );

        let grant = |cid: &str, scopes: &[&str]| Grant {
            subject_id: "sub-1".into(),
            client_id: cid.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: t0(),
            updated_at: t0() + Duration::seconds(1),
        };
        s.upsert_grant(&grant("rp", &["openid", "profile"]))
            .unwrap();
        s.upsert_grant(&grant("rp-2", &["openid"])).unwrap();
        s.set_client_min_level("rp-2", Some(AccountLevel::Confirmed))
            .unwrap();
        s.set_level("sub-1", AccountLevel::Standard, None, &event("level"))
            .unwrap();
        s.set_status(
            "sub-1",
            AccountStatus::PendingConfirmation,
            &event("status"),
        )
        .unwrap();
        for cid in ["rp", "rp-2"] {
            assert_eq!(at(cid).unwrap(), separate(cid), "{cid}");
        }
        let rp = at("rp").unwrap();
        assert_eq!(rp.grant, Some(grant("rp", &["openid", "profile"])));
        assert_eq!(rp.client_min_level, None);
        let rp2 = at("rp-2").unwrap();
        assert_eq!(rp2.grant, Some(grant("rp-2", &["openid"])));
        assert_eq!(rp2.client_min_level, Some(AccountLevel::Confirmed));
        let standing = rp2.standing.unwrap();
        assert_eq!(
            (standing.level, standing.status),
            (AccountLevel::Standard, AccountStatus::PendingConfirmation)
        );

        // An unknown client: the session, without grant or level.
        let other = at("rp-404").unwrap();
        assert_eq!((other.grant, other.client_min_level), (None, None));
        assert_eq!(other.session, live);

        // Dead sessions and keys that cannot be stored find nothing.
        assert_eq!(s.find_live_session_at("nope", t0(), "rp").unwrap(), None);
        assert_eq!(
            s.find_live_session_at("hash-1", live.expires_at, "rp")
                .unwrap(),
            None
        );
        assert_eq!(s.find_live_session_at("hash\0", t0(), "rp").unwrap(), None);
        assert_eq!(
            s.find_live_session_at("hash-1", t0(), "r\0p").unwrap(),
            None
        );
        assert!(s.end_session("sid-1", t0()).unwrap());
        assert_eq!(s.find_live_session_at("hash-1", t0(), "rp").unwrap(), None);

        // A subject that is gone, or a key that cannot be stored: nothing.
        let nobody = SigninAtClient::default();
        assert_eq!(nobody.at.standing, None);
        assert_eq!(s.find_signin_at("sub-404", "rp-2").unwrap(), nobody);
        assert_eq!(s.find_signin_at("sub\0", "rp-2").unwrap(), nobody);
        assert_eq!(s.find_signin_at("sub-1", "r\0p").unwrap(), nobody);
    });
}

/// Userinfo's one read of the subject and its standing answers what the two separate
/// lookups do: a default standing before the person has a row, the recorded one after, and
/// nothing for an unknown subject or a key that cannot be stored.
#[test]
fn subject_standing_reads_what_the_separate_lookups_read() {
    use crate::domain::person::{AccountLevel, AccountStatus};
    use crate::store::PersonStore;
    each(|s| {
        seed(s);
        let separate = || {
            let subject = s.find_subject("sub-1").unwrap().unwrap();
            (subject, s.find_person_standing("sub-1").unwrap().unwrap())
        };
        let (subject, person) = s.find_subject_standing("sub-1").unwrap().unwrap();
        assert_eq!((&subject, &person), (&separate().0, &separate().1));
        assert_eq!(
            (person.level, person.status),
            (AccountLevel::Simplified, AccountStatus::Active)
        );
        s.set_level("sub-1", AccountLevel::Standard, None, &event("level"))
            .unwrap();
        s.set_status("sub-1", AccountStatus::Blocked, &event("status"))
            .unwrap();
        let (subject, person) = s.find_subject_standing("sub-1").unwrap().unwrap();
        assert_eq!((&subject, &person), (&separate().0, &separate().1));
        assert_eq!(
            (person.level, person.status),
            (AccountLevel::Standard, AccountStatus::Blocked)
        );
        assert!(s.find_subject_standing("sub-404").unwrap().is_none());
        assert!(s.find_subject_standing("sub\0").unwrap().is_none());
    });
}

/// The sign-in's one read says what the separate lookups of factors and sign-in state say:
/// an app only once confirmed, a security key and a passkey each on its own, a password to
/// change only while so marked, and nothing of another person's.
#[test]
fn signin_read_finds_the_factors_and_state_the_separate_lookups_find() {
    use crate::domain::credential::{CredentialKind, WebauthnKind};
    use crate::store::{CredentialStore, PasswordChange, SigninStore, WebauthnStore};
    each(|s| {
        seed(s);
        s.insert_subject(&subject("sub-2", "olga@example.ru"))
            .unwrap();
        let facts = |sub: &str| {
            let found = s.find_signin_at(sub, "rp").unwrap();
            // Against the separate lookups the sign-in made before.
            let creds = s.list_credentials(sub).unwrap();
            let keys = s.list_webauthn(sub).unwrap();
            let has = |k: WebauthnKind| keys.iter().any(|c| c.kind == k);
            assert_eq!(
                found.totp,
                creds
                    .iter()
                    .any(|c| c.kind == CredentialKind::Totp && c.usable()),
                "{sub}"
            );
            assert_eq!(found.security_key, has(WebauthnKind::SecurityKey), "{sub}");
            assert_eq!(found.passkey, has(WebauthnKind::Passkey), "{sub}");
            assert_eq!(
                found.password_must_change,
                s.signin_state(sub).unwrap().password_must_change,
                "{sub}"
            );
            (
                found.totp,
                found.security_key,
                found.passkey,
                found.password_must_change,
            )
        };
        assert_eq!(facts("sub-1"), (false, false, false, false));

        // An app not yet confirmed does not count; confirmed, it does.
        let app = super::credential_tests::totp("cred-1");
        s.insert_credential(&app, &event("totp.added")).unwrap();
        assert_eq!(facts("sub-1"), (false, false, false, false));
        assert!(s
            .confirm_totp("cred-1", 1, &event("totp.confirmed"))
            .unwrap());
        assert_eq!(facts("sub-1"), (true, false, false, false));

        let key = |id: &str, kind| super::webauthn_tests::key(id, id, kind);
        s.insert_webauthn(&key("k-1", WebauthnKind::SecurityKey), &event("key.added"))
            .unwrap();
        assert_eq!(facts("sub-1"), (true, true, false, false));
        s.insert_webauthn(&key("k-2", WebauthnKind::Passkey), &event("passkey.added"))
            .unwrap();
        assert_eq!(facts("sub-1"), (true, true, true, false));

        // A temporary password, then a password of the person's own.
        let change = |must_change: bool| {
            let ev = event("password.changed");
            s.set_password(&PasswordChange {
                subject_id: "sub-1",
                password_hash: "$argon2id$new",
                must_change,
                keep_sid: None,
                now: t0(),
                event: &ev,
                alert: None,
            })
            .unwrap();
        };
        change(true);
        assert_eq!(facts("sub-1"), (true, true, true, true));
        change(false);
        assert_eq!(facts("sub-1"), (true, true, true, false));

        // None of it is another person's.
        assert_eq!(facts("sub-2"), (false, false, false, false));
    });
}

#[test]
fn grant_upsert_replaces() {
    each(|s| {
        seed(s);
        assert_eq!(s.find_grant("sub-1", "rp").unwrap(), None);
        let g1 = Grant {
            subject_id: "sub-1".into(),
            client_id: "rp".into(),
            scopes: vec!["openid".into()],
            created_at: t0(),
            updated_at: t0(),
        };
        s.upsert_grant(&g1).unwrap();
        assert_eq!(s.find_grant("sub-1", "rp").unwrap(), Some(g1.clone()));
        let g2 = Grant {
            scopes: vec!["openid".into(), "profile".into(), "phone".into()],
            updated_at: t0() + Duration::days(1),
            ..g1
        };
        s.upsert_grant(&g2).unwrap();
        assert_eq!(s.find_grant("sub-1", "rp").unwrap(), Some(g2));
    });
}

#[test]
fn revoke_family_revokes_only_that_family() {
    each(|s| {
        seed(s);
        for (h, f) in [
            ("a1", "fam-a"),
            ("a2", "fam-a"),
            ("a3", "fam-a"),
            ("b1", "fam-b"),
        ] {
            s.insert_refresh(&refresh(h, f, "rp", "sub-1")).unwrap();
        }
        let now = t0() + Duration::minutes(3);
        assert_eq!(s.revoke_family("fam-a", now).unwrap(), 3);
        assert_eq!(s.revoke_family("fam-a", now).unwrap(), 0, "already revoked");
        assert_eq!(s.find_refresh("a2").unwrap().unwrap().revoked_at, Some(now));
        assert!(s.find_refresh("b1").unwrap().unwrap().revoked_at.is_none());
    });
}

#[test]
fn audit_append_list() {
    each(|s| {
        assert!(s.list_audit(10).unwrap().is_empty());
        let events: Vec<AuditEvent> = (0..5)
            .map(|i| AuditEvent {
                at: t0() + Duration::seconds(i),
                kind: format!("login.success.{i}"),
                subject_id: (i % 2 == 0).then(|| "sub-1".to_string()),
                client_id: Some("rp".into()),
                ip: Some("192.0.2.1".into()),
                detail: serde_json::json!({ "n": i, "acr": "pwd" }),
            })
            .collect();
        for e in &events {
            s.append_audit(e).unwrap();
        }
        let newest: Vec<AuditEvent> = events.iter().rev().take(3).cloned().collect();
        assert_eq!(s.list_audit(3).unwrap(), newest);
        assert_eq!(s.list_audit(100).unwrap().len(), 5);
        assert!(s.list_audit(0).unwrap().is_empty());
    });
}

#[test]
fn foreign_keys_are_enforced() {
    each(|s| {
        let r = s.insert_session(&session("h", "sid", "no-such-subject"));
        assert!(matches!(r, Err(StoreError::Db(_))), "{r:?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_runs_on_the_blocking_pool() {
    for db in backends() {
        let s: &SqlStore = &db;
        s.call(|st| st.insert_client(&client("rp"))).await.unwrap();
        let found = s.call(|st| st.find_client("rp")).await.unwrap();
        assert_eq!(found.map(|c| c.id), Some("rp".to_string()));
        let err = s
            .transaction(|c| {
                use diesel::prelude::*;
                diesel::delete(super::schema::clients::table).execute(c)?;
                Err::<(), _>(StoreError::NotFound)
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound));
        assert_eq!(
            s.list_clients().unwrap().len(),
            1,
            "the failed transaction was rolled back"
        );
    }
}

#[test]
fn lookups_by_keys_with_nul_find_nothing() {
    each(|s| {
        seed(s);
        assert_eq!(s.find_client("r\0p").unwrap(), None);
        assert_eq!(s.find_subject("sub\0-1").unwrap(), None);
        assert_eq!(s.find_subject_by_login("ivan\0@example.ru").unwrap(), None);
    });
}

/// SQLite: under a steady stream of readers the log still starts again, so the `-wal` file
/// stays bounded (without the RESTART rounds of `checkpoint.rs` it grows by every commit:
/// here past 60 MiB).
#[test]
fn sqlite_wal_stays_bounded_under_steady_readers() {
    let db = sqlite_db();
    let store = db.store.clone().unwrap();
    let exec = |sql: &str| {
        let mut pooled = store.conn().unwrap();
        let c = sqlite_conn(&mut pooled);
        diesel::sql_query(sql).execute(c).unwrap();
    };
    exec("CREATE TABLE scratch (v TEXT NOT NULL)");
    exec("CREATE INDEX scratch_v ON scratch (v)");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut pooled = store.conn().unwrap();
                    let c = sqlite_conn(&mut pooled);
                    diesel::sql_query("SELECT count(*) FROM scratch WHERE v > 'm'")
                        .execute(c)
                        .unwrap();
                }
            })
        })
        .collect();
    let wal = db
        ._dir
        .as_ref()
        .unwrap()
        .path()
        .join("nested")
        .join("propusk.db-wal");
    let mut largest = 0;
    // Each commit writes at least the table's and the index's page: 8 000 commits are
    // more than 64 MiB of log.
    for i in 0..8_000 {
        let v = uuid::Uuid::new_v4().simple().to_string();
        exec(&format!("INSERT INTO scratch (v) VALUES ('{v}{i}')"));
        if i % 100 == 0 {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            // Room for the checkpoint thread's rounds on a busy machine.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    eprintln!("largest WAL: {largest} bytes");
    assert!(
        largest < 40 << 20,
        "the WAL grew to {largest} bytes under steady readers"
    );
}

/// SQLite: a connection that finds the write lock taken waits with the store's own busy
/// handler (`busy.rs`), not `busy_timeout`'s, whose first pauses of 1, 2 and 5 ms were
/// the embedded mode's tail: it gets the lock once the holder lets go, and gives up at
/// its thread's limit.
#[test]
fn sqlite_writers_wait_with_the_stores_busy_handler() {
    #[derive(diesel::QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        timeout: i32,
    }
    let db = sqlite_db();
    let store = db.store.clone().unwrap();
    let hold = |store: SqlStore, ms: u64| {
        let (held, release) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut pooled = store.conn().unwrap();
            let c = sqlite_conn(&mut pooled);
            diesel::sql_query("BEGIN IMMEDIATE").execute(c).unwrap();
            held.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(ms));
            diesel::sql_query("COMMIT").execute(c).unwrap();
        });
        release.recv().unwrap();
        holder
    };
    let mut pooled = store.conn().unwrap();
    let c = sqlite_conn(&mut pooled);
    // `busy_timeout` would have replaced the handler (and reads back non-zero).
    let pragma: Timeout = diesel::sql_query("PRAGMA busy_timeout")
        .get_result(c)
        .unwrap();
    assert_eq!(pragma.timeout, 0, "no busy_timeout on a pooled connection");

    // Held for 50 ms: the second writer waits and then gets the lock.
    let holder = hold(store.clone(), 50);
    diesel::sql_query("BEGIN IMMEDIATE").execute(c).unwrap();
    diesel::sql_query("COMMIT").execute(c).unwrap();
    holder.join().unwrap();

    // Held for longer than this thread's limit: the writer gives up with SQLITE_BUSY.
    super::busy::limit_waits(std::time::Duration::from_millis(20));
    let holder = hold(store.clone(), 2_000);
    let started = std::time::Instant::now();
    let refused = diesel::sql_query("BEGIN IMMEDIATE").execute(c);
    let waited = started.elapsed();
    super::busy::limit_waits(super::busy::DEFAULT_LIMIT);
    holder.join().unwrap();
    let err = refused.expect_err("the lock stayed taken past the limit");
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(
        waited >= std::time::Duration::from_millis(20)
            && waited < std::time::Duration::from_millis(1_500),
        "gave up after {waited:?}"
    );
}

/// SQLite: commits never checkpoint the WAL themselves (that stalled every write queued
/// behind the one that did); the store's checkpoint thread copies the log into the
/// database file within a few rounds (`checkpoint.rs`).
#[test]
fn sqlite_checkpoints_happen_off_the_write_path() {
    #[derive(diesel::QueryableByName)]
    struct AutoCheckpoint {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        wal_autocheckpoint: i64,
    }
    let db = sqlite_db();
    let marker = format!("checkpointed-{}", uuid::Uuid::new_v4().simple());
    {
        let mut pooled = db.conn().unwrap();
        let c = sqlite_conn(&mut pooled);
        let pragma: AutoCheckpoint = diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result(c)
            .unwrap();
        assert_eq!(pragma.wal_autocheckpoint, 0, "commits do not checkpoint");
        diesel::sql_query("CREATE TABLE scratch (v TEXT NOT NULL)")
            .execute(c)
            .unwrap();
        diesel::sql_query(format!("INSERT INTO scratch (v) VALUES ('{marker}')"))
            .execute(c)
            .unwrap();
    }
    // The row is in the WAL only until a checkpoint copies its page into the file.
    let file = db
        ._dir
        .as_ref()
        .unwrap()
        .path()
        .join("nested")
        .join("propusk.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let bytes = std::fs::read(&file).unwrap();
        if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the row never reached the database file while the store was open"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
