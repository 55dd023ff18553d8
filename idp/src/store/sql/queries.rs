//! The store traits over [`SqlStore`]. Every query is written once against `DbConnection`.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::models::{
    login_index, AuditEventRow, ClientRow, GrantRow, NewAuditEvent, NewClient, NewGrant,
    NewRefreshToken, NewSession, NewSubject, RefreshTokenRow, SessionRow, SubjectRow,
};
use super::rotation::Route;
use super::schema::{
    audit_events, client_levels, clients, contact_index, credentials, grants, oid_counter, persons,
    refresh_tokens, sessions, signin_state, subjects, webauthn_credentials,
};
use super::{to_db_time, DbConnection, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::credential::{CredentialKind, WebauthnKind};
use crate::domain::{Client, Grant, RefreshToken, SsoSession, Subject};
use crate::store::{
    AuditStore, ClientStore, GrantStore, RefreshTokenStore, Rotation, SessionAtClient,
    SessionStore, SigninAtClient, StoreError, StoreResult, SubjectAtClient, SubjectStore,
    Successor,
};

/// A session left-joined with its grant's (scopes, created, updated), its person's
/// standing, its subject's last change and the client's minimum level.
type SessionAtClientRow = (
    SessionRow,
    Option<(String, NaiveDateTime, NaiveDateTime)>,
    Option<super::person::StandingRow>,
    Option<NaiveDateTime>,
    Option<String>,
);

/// A subject's grant, person's standing, last change and the client's minimum level, as
/// [`SessionAtClientRow`] without the session; then whether the password must be changed
/// (`None`: no sign-in state recorded) and whether a confirmed authenticator app, a
/// security key and a passkey exist.
type SigninAtClientRow = (
    Option<(String, NaiveDateTime, NaiveDateTime)>,
    Option<super::person::StandingRow>,
    NaiveDateTime,
    Option<String>,
    Option<bool>,
    bool,
    bool,
    bool,
);

/// A grant's (scopes, created, updated), a person's standing, the subject's last change
/// (`None`: the subject is gone) and a client's minimum level, as joined reads find them.
type AtClientColumns = (
    Option<(String, NaiveDateTime, NaiveDateTime)>,
    Option<super::person::StandingRow>,
    Option<NaiveDateTime>,
    Option<String>,
);

/// What the joined reads of [`SessionStore::find_live_session_at`] and
/// [`SessionStore::find_signin_at`] found for `subject_id` at `client_id`.
fn subject_at(
    subject_id: &str,
    client_id: &str,
    (grant, person, subject_updated, level): AtClientColumns,
) -> StoreResult<SubjectAtClient> {
    let grant = grant.map(|(scopes, created_at, updated_at)| GrantRow {
        subject_id: subject_id.to_string(),
        client_id: client_id.to_string(),
        scopes,
        created_at,
        updated_at,
    });
    Ok(SubjectAtClient {
        grant: grant.map(Grant::try_from).transpose()?,
        standing: super::person::standing(subject_id, person, subject_updated)?,
        client_min_level: super::person::min_level(client_id, level)?,
    })
}

/// How often a racing insert of the same grant is retried as an update.
const UPSERT_ATTEMPTS: usize = 3;

/// Whether `key` could be a stored key at all. Postgres text cannot hold NUL, and nothing
/// is ever stored with one, so a lookup by such a key finds nothing on either backend
/// instead of failing with a database error.
pub(super) fn storable(key: &str) -> bool {
    !key.contains('\0')
}

fn convert<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

impl ClientStore for SqlStore {
    fn insert_client(&self, c: &Client) -> StoreResult<()> {
        let row = NewClient::try_from(c)?;
        diesel::insert_into(clients::table)
            .values(&row)
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        if !storable(id) {
            return Ok(None);
        }
        clients::table
            .find(id)
            .select(ClientRow::as_select())
            .get_result(&mut *self.conn()?)
            .optional()?
            .map(Client::try_from)
            .transpose()
    }

    fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let rows = clients::table
            .order(clients::id)
            .select(ClientRow::as_select())
            .load(&mut *self.conn()?)?;
        convert(rows)
    }

    fn remove_client(&self, id: &str) -> StoreResult<bool> {
        self.transaction(|c| {
            diesel::delete(refresh_tokens::table.filter(refresh_tokens::client_id.eq(id)))
                .execute(c)?;
            diesel::delete(grants::table.filter(grants::client_id.eq(id))).execute(c)?;
            let n = diesel::delete(clients::table.find(id)).execute(c)?;
            Ok(n > 0)
        })
    }

    fn set_client_min_acr(&self, id: &str, acr: Option<&str>) -> StoreResult<bool> {
        let n = diesel::update(clients::table.find(id))
            .set(clients::min_acr.eq(acr))
            .execute(&mut *self.conn()?)?;
        Ok(n > 0)
    }
}

/// Takes the next oid from the one-row counter. The UPDATE comes first, so the row lock
/// (Postgres) or the write lock (SQLite) is held until the surrounding transaction ends:
/// concurrent inserts get distinct, increasing oids, and a rolled-back insert leaves no gap.
pub(super) fn next_oid(c: &mut DbConnection) -> StoreResult<i64> {
    let n = diesel::update(oid_counter::table.find(1))
        .set(oid_counter::next_oid.eq(oid_counter::next_oid + 1))
        .execute(c)?;
    if n != 1 {
        return Err(StoreError::Corrupt("oid counter row is missing".into()));
    }
    let after: i64 = oid_counter::table
        .find(1)
        .select(oid_counter::next_oid)
        .get_result(c)?;
    Ok(after - 1)
}

impl SubjectStore for SqlStore {
    fn insert_subject(&self, s: &Subject) -> StoreResult<i64> {
        let vault = self.vault()?;
        self.transaction(|c| {
            let oid = next_oid(c)?;
            let row = NewSubject::new(s, oid, vault)?;
            diesel::insert_into(subjects::table)
                .values(&row)
                .execute(c)?;
            // Confirmed contacts, for "forgot password / login" (store/sql/signin.rs).
            super::signin::index_contacts_on(
                c,
                vault,
                &s.id,
                &super::signin::confirmed_contacts(s),
            )?;
            Ok(oid)
        })
    }

    fn find_subject(&self, id: &str) -> StoreResult<Option<Subject>> {
        if !storable(id) {
            return Ok(None);
        }
        let vault = self.vault()?;
        let row: Option<SubjectRow> = on_backend!(&mut *self.conn()?, |c| {
            subjects::table
                .find(id)
                .select(SubjectRow::as_select())
                .get_result(c)
                .optional()
        })?;
        row.map(|r| r.open(vault)).transpose()
    }

    /// By the blind index of the login: the login itself is never compared in clear.
    fn find_subject_by_login(&self, login: &str) -> StoreResult<Option<Subject>> {
        let vault = self.vault()?;
        let index = login_index(vault, login);
        let mut conn = self.conn()?;
        let row = subjects::table
            .filter(subjects::login_index.eq(&index))
            .select(SubjectRow::as_select())
            .get_result(&mut *conn)
            .optional()?;
        // A SNILS or INN recorded on the person (not the login) signs in too.
        let row = match row {
            Some(r) => Some(r),
            None => super::person::subject_by_identifier_index(&mut conn, &index)?,
        };
        // So does a confirmed phone or e-mail that is not the login (added on the profile
        // page), when exactly one account has it.
        let row = match row {
            Some(r) => Some(r),
            None => {
                let ids: Vec<String> = contact_index::table
                    .filter(contact_index::index_hash.eq(super::signin::contact_key(vault, login)))
                    .select(contact_index::subject_id)
                    .limit(2)
                    .load(&mut *conn)?;
                match ids.as_slice() {
                    [one] => subjects::table
                        .find(one)
                        .select(SubjectRow::as_select())
                        .get_result(&mut *conn)
                        .optional()?,
                    _ => None,
                }
            }
        };
        row.map(|r| r.open(vault)).transpose()
    }

    fn list_subjects(&self) -> StoreResult<Vec<Subject>> {
        let vault = self.vault()?;
        let rows = subjects::table
            .order(subjects::oid)
            .select(SubjectRow::as_select())
            .load(&mut *self.conn()?)?;
        rows.into_iter().map(|r| r.open(vault)).collect()
    }
}

impl SessionStore for SqlStore {
    fn insert_session(&self, s: &SsoSession) -> StoreResult<()> {
        let row = NewSession::try_from(s)?;
        diesel::insert_into(sessions::table)
            .values(&row)
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    fn open_session(
        &self,
        s: &SsoSession,
        replaces: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let row = NewSession::try_from(s)?;
        let audit = NewAuditEvent::try_from(event)?;
        let at = to_db_time(s.created_at);
        let mut conn = self.conn()?;
        if let DbConnection::Pg(c) = &mut *conn {
            let one = super::session_pg::OpenSession {
                session: &row,
                replaces,
                ended_at: at,
                event: &audit,
            };
            one.execute(c)?;
            return Ok(());
        }
        // Writes only, so SQLite takes its write lock with the first.
        conn.transaction(|conn| {
            if let Some(sid) = replaces {
                diesel::update(
                    sessions::table
                        .filter(sessions::sid.eq(sid))
                        .filter(sessions::ended_at.is_null()),
                )
                .set(sessions::ended_at.eq(Some(at)))
                .execute(conn)?;
            }
            diesel::insert_into(sessions::table)
                .values(&row)
                .execute(conn)?;
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(conn)?;
            Ok(())
        })
    }

    fn find_live_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SsoSession>> {
        sessions::table
            .find(id_hash)
            .filter(sessions::ended_at.is_null())
            .filter(sessions::expires_at.gt(to_db_time(now)))
            .select(SessionRow::as_select())
            .get_result(&mut *self.conn()?)
            .optional()?
            .map(SsoSession::try_from)
            .transpose()
    }

    /// One SELECT: the session, left-joined with the grant, the person row, the subject
    /// (for a person without a row yet) and the client's level row.
    fn find_live_session_at(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        client_id: &str,
    ) -> StoreResult<Option<SessionAtClient>> {
        if !storable(id_hash) || !storable(client_id) {
            return Ok(None);
        }
        let cid = client_id.to_string();
        let found: Option<SessionAtClientRow> = on_backend!(&mut *self.conn()?, |c| {
            sessions::table
                .left_join(
                    grants::table.on(grants::subject_id
                        .eq(sessions::subject_id)
                        .and(grants::client_id.eq(cid.clone()))),
                )
                .left_join(persons::table.on(persons::subject_id.eq(sessions::subject_id)))
                .left_join(subjects::table.on(subjects::id.eq(sessions::subject_id)))
                .left_join(client_levels::table.on(client_levels::client_id.eq(cid)))
                .filter(sessions::id_hash.eq(id_hash))
                .filter(sessions::ended_at.is_null())
                .filter(sessions::expires_at.gt(to_db_time(now)))
                .select((
                    SessionRow::as_select(),
                    (grants::scopes, grants::created_at, grants::updated_at).nullable(),
                    (persons::account_level, persons::status, persons::updated_at).nullable(),
                    subjects::updated_at.nullable(),
                    client_levels::min_account_level.nullable(),
                ))
                .get_result(c)
                .optional()
        })?;
        let Some((session, grant, person, subject_updated, level)) = found else {
            return Ok(None);
        };
        let session = SsoSession::try_from(session)?;
        let at = subject_at(
            &session.subject_id,
            client_id,
            (grant, person, subject_updated, level),
        )?;
        Ok(Some(SessionAtClient {
            grant: at.grant,
            standing: at.standing,
            client_min_level: at.client_min_level,
            session,
        }))
    }

    /// One SELECT: the subject, left-joined with the grant, the person row, the client's
    /// level row and the sign-in state, and whether a confirmed authenticator app, a
    /// security key or a passkey exists.
    fn find_signin_at(&self, subject_id: &str, client_id: &str) -> StoreResult<SigninAtClient> {
        if !storable(subject_id) || !storable(client_id) {
            return Ok(SigninAtClient::default());
        }
        let cid = client_id.to_string();
        let totp = credentials::table
            .filter(credentials::subject_id.eq(subject_id))
            .filter(credentials::kind.eq(CredentialKind::Totp.as_str()))
            .filter(credentials::confirmed_at.is_not_null());
        let webauthn = |kind: WebauthnKind| {
            webauthn_credentials::table
                .filter(webauthn_credentials::subject_id.eq(subject_id))
                .filter(webauthn_credentials::kind.eq(kind.as_str()))
        };
        let found: Option<SigninAtClientRow> = on_backend!(&mut *self.conn()?, |c| {
            subjects::table
                .left_join(
                    grants::table.on(grants::subject_id
                        .eq(subjects::id)
                        .and(grants::client_id.eq(cid.clone()))),
                )
                .left_join(persons::table.on(persons::subject_id.eq(subjects::id)))
                .left_join(client_levels::table.on(client_levels::client_id.eq(cid.clone())))
                .left_join(signin_state::table.on(signin_state::subject_id.eq(subjects::id)))
                .filter(subjects::id.eq(subject_id))
                .select((
                    (grants::scopes, grants::created_at, grants::updated_at).nullable(),
                    (persons::account_level, persons::status, persons::updated_at).nullable(),
                    subjects::updated_at,
                    client_levels::min_account_level.nullable(),
                    signin_state::password_must_change.nullable(),
                    diesel::dsl::exists(totp),
                    diesel::dsl::exists(webauthn(WebauthnKind::SecurityKey)),
                    diesel::dsl::exists(webauthn(WebauthnKind::Passkey)),
                ))
                .get_result(c)
                .optional()
        })?;
        let Some((grant, person, subject_updated, level, must_change, totp, key, passkey)) = found
        else {
            return Ok(SigninAtClient::default());
        };
        Ok(SigninAtClient {
            at: subject_at(
                subject_id,
                client_id,
                (grant, person, Some(subject_updated), level),
            )?,
            password_must_change: must_change.unwrap_or(false),
            totp,
            security_key: key,
            passkey,
        })
    }

    fn find_session_by_sid(&self, sid: &str) -> StoreResult<Option<SsoSession>> {
        sessions::table
            .filter(sessions::sid.eq(sid))
            .select(SessionRow::as_select())
            .get_result(&mut *self.conn()?)
            .optional()?
            .map(SsoSession::try_from)
            .transpose()
    }

    fn end_session(&self, sid: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let n = diesel::update(
            sessions::table
                .filter(sessions::sid.eq(sid))
                .filter(sessions::ended_at.is_null()),
        )
        .set(sessions::ended_at.eq(Some(to_db_time(now))))
        .execute(&mut *self.conn()?)?;
        Ok(n > 0)
    }
}

impl GrantStore for SqlStore {
    fn find_grant(&self, subject_id: &str, client_id: &str) -> StoreResult<Option<Grant>> {
        grants::table
            .find((subject_id, client_id))
            .select(GrantRow::as_select())
            .get_result(&mut *self.conn()?)
            .optional()?
            .map(Grant::try_from)
            .transpose()
    }

    /// UPDATE, then INSERT when no row existed; an INSERT that loses a race with another
    /// one becomes an UPDATE on the next attempt. (MultiConnection has no ON CONFLICT.)
    fn upsert_grant(&self, g: &Grant) -> StoreResult<()> {
        let row = NewGrant::try_from(g)?;
        let mut conn = self.conn()?;
        for _ in 0..UPSERT_ATTEMPTS {
            let n = diesel::update(grants::table.find((row.subject_id, row.client_id)))
                .set((
                    grants::scopes.eq(&row.scopes),
                    grants::created_at.eq(row.created_at),
                    grants::updated_at.eq(row.updated_at),
                ))
                .execute(&mut *conn)?;
            if n > 0 {
                return Ok(());
            }
            match diesel::insert_into(grants::table)
                .values(&row)
                .execute(&mut *conn)
            {
                Ok(_) => return Ok(()),
                Err(e) => match StoreError::from(e) {
                    StoreError::Conflict => continue,
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Conflict)
    }
}

impl RefreshTokenStore for SqlStore {
    fn insert_refresh(&self, t: &RefreshToken) -> StoreResult<()> {
        let row = NewRefreshToken::try_from(t)?;
        diesel::insert_into(refresh_tokens::table)
            .values(&row)
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// Committed together with the rotations and issues that arrive meanwhile (`rotation.rs`).
    fn issue_refresh(&self, t: RefreshToken) -> StoreResult<bool> {
        self.issue_grouped(t)
    }

    /// Committed together with the rotations that arrive meanwhile (`rotation.rs`).
    fn rotate_refresh(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
        successor: Successor,
    ) -> StoreResult<Rotation> {
        match Route::of(token_hash, client_id) {
            Route::Invalid => Ok(Rotation::Invalid),
            Route::Queued => self.rotate_grouped(token_hash, client_id, now, successor),
            Route::Single => self.rotate_single(token_hash, client_id, now, &successor),
        }
    }

    fn find_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        find_refresh_on(&mut *self.conn()?, token_hash)
    }

    fn revoke_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<usize> {
        let n = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(family_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(Some(to_db_time(now))))
        .execute(&mut *self.conn()?)?;
        Ok(n)
    }

    fn revoke_for_client(
        &self,
        subject_id: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let n = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::subject_id.eq(subject_id))
                .filter(refresh_tokens::client_id.eq(client_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(Some(to_db_time(now))))
        .execute(&mut *self.conn()?)?;
        Ok(n)
    }
}

impl SqlStore {
    /// [`RefreshTokenStore::issue_refresh`] on its own: stored only while its subject and
    /// client exist. Postgres keeps no foreign keys on `refresh_tokens`, so they are read
    /// first there (a client removed in between leaves a token no one can use: the client
    /// cannot authenticate, and a rotation checks the subject and the grant); on SQLite the
    /// foreign keys refuse the row.
    pub(super) fn issue_single(&self, t: &RefreshToken) -> StoreResult<bool> {
        use diesel::dsl::{exists, select};
        use diesel::result::{DatabaseErrorKind, Error};
        let row = NewRefreshToken::try_from(t)?;
        let mut conn = self.conn()?;
        let db: &mut DbConnection = &mut conn;
        if let DbConnection::Pg(pg) = db {
            let live: bool = select(
                exists(subjects::table.find(row.subject_id))
                    .and(exists(clients::table.find(row.client_id))),
            )
            .get_result(pg)?;
            if !live {
                return Ok(false);
            }
        }
        match diesel::insert_into(refresh_tokens::table)
            .values(&row)
            .execute(db)
        {
            Ok(_) => Ok(true),
            Err(Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// One rotation in a transaction of its own.
    pub(super) fn rotate_single(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
        successor: &Successor,
    ) -> StoreResult<Rotation> {
        let mut conn = self.conn()?;
        let db: &mut DbConnection = &mut conn;
        let at = to_db_time(now);
        // Every outcome but `Rotated` rolls back, so a declined or withdrawn request does
        // not spend the token.
        let outcome = db.transaction::<_, Abort, _>(|db| {
            // A write first: on SQLite this takes the write lock up front.
            let spent = diesel::update(
                refresh_tokens::table
                    .find(token_hash)
                    .filter(refresh_tokens::client_id.eq(client_id))
                    .filter(refresh_tokens::used_at.is_null())
                    .filter(refresh_tokens::revoked_at.is_null())
                    .filter(refresh_tokens::expires_at.gt(at)),
            )
            .set(refresh_tokens::used_at.eq(Some(at)))
            .returning(refresh_tokens::all_columns)
            .get_result::<RefreshTokenRow>(db)
            .optional()?;
            let Some(old) = spent.map(RefreshToken::try_from).transpose()? else {
                // Not spent: read the row only to say why.
                let Some(old) = find_refresh_on(db, token_hash)? else {
                    return Err(Abort::with(Rotation::Invalid));
                };
                return Err(Abort::with(if old.client_id != client_id {
                    Rotation::OtherClient
                } else if old.revoked_at.is_some() || old.expires_at <= now {
                    Rotation::Invalid
                } else if old.used_at.is_some() {
                    Rotation::AlreadyUsed(old)
                } else {
                    Rotation::Invalid
                }));
            };
            // Consent and subject in one round trip.
            let still_granted: bool = diesel::select(
                diesel::dsl::exists(grants::table.find((&old.subject_id, client_id)))
                    .and(diesel::dsl::exists(subjects::table.find(&old.subject_id))),
            )
            .get_result(db)?;
            if !still_granted {
                return Err(Abort::with(Rotation::Withdrawn));
            }
            let next = successor
                .of(&old)
                .ok_or_else(|| Abort::with(Rotation::Declined))?;
            let row = NewRefreshToken::try_from(&next)?;
            diesel::insert_into(refresh_tokens::table)
                .values(&row)
                .execute(db)?;
            Ok(Rotation::Rotated(old))
        });
        match outcome {
            Ok(r) => Ok(r),
            Err(Abort::With(r)) => Ok(*r),
            Err(Abort::Store(e)) => Err(e),
        }
    }
}

/// Ends a transaction early: rolled back, with the answer to give or the error.
enum Abort {
    With(Box<Rotation>),
    Store(StoreError),
}

impl Abort {
    fn with(r: Rotation) -> Abort {
        Abort::With(Box::new(r))
    }
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Store(e.into())
    }
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Store(e)
    }
}

fn find_refresh_on(conn: &mut DbConnection, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
    let row: Option<RefreshTokenRow> = on_backend!(conn, |c| {
        refresh_tokens::table
            .find(token_hash)
            .select(RefreshTokenRow::as_select())
            .get_result(c)
            .optional()
    })?;
    row.map(RefreshToken::try_from).transpose()
}

impl AuditStore for SqlStore {
    fn append_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        let row = NewAuditEvent::try_from(e)?;
        diesel::insert_into(audit_events::table)
            .values(&row)
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// The newest `limit` events, newest first.
    fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEvent>> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let rows = audit_events::table
            .order(audit_events::id.desc())
            .limit(limit)
            .select(AuditEventRow::as_select())
            .load(&mut *self.conn()?)?;
        convert(rows)
    }
}
