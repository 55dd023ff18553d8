//! Signing keys and data keys: rows, and the locked read-decide-apply transactions that keep
//! several nodes from taking the same rotation step twice.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::models::NewAuditEvent;
use super::schema::{audit_events, data_keys, locks, signing_keys};
use super::{from_db_time, to_db_time, DbConnection, SqlStore};
use crate::audit::AuditEvent;
use crate::store::{
    DataKeyChange, Decide, KeyChange, KeyStore, StoreError, StoreResult, StoredDataKey, StoredKey,
};

#[derive(Insertable)]
#[diesel(table_name = signing_keys)]
struct NewSigningKey<'a> {
    kid: &'a str,
    alg: &'a str,
    state: &'a str,
    private_sealed: &'a [u8],
    public_jwk: &'a str,
    created_at: NaiveDateTime,
    activated_at: Option<NaiveDateTime>,
    retired_at: Option<NaiveDateTime>,
    removed_at: Option<NaiveDateTime>,
}

impl<'a> From<&'a StoredKey> for NewSigningKey<'a> {
    fn from(k: &'a StoredKey) -> Self {
        NewSigningKey {
            kid: &k.kid,
            alg: &k.alg,
            state: &k.state,
            private_sealed: &k.private_sealed,
            public_jwk: &k.public_jwk,
            created_at: to_db_time(k.created_at),
            activated_at: k.activated_at.map(to_db_time),
            retired_at: k.retired_at.map(to_db_time),
            removed_at: k.removed_at.map(to_db_time),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
struct SigningKeyRow {
    kid: String,
    alg: String,
    state: String,
    private_sealed: Vec<u8>,
    public_jwk: String,
    created_at: NaiveDateTime,
    activated_at: Option<NaiveDateTime>,
    retired_at: Option<NaiveDateTime>,
    removed_at: Option<NaiveDateTime>,
}

impl From<SigningKeyRow> for StoredKey {
    fn from(r: SigningKeyRow) -> Self {
        StoredKey {
            kid: r.kid,
            alg: r.alg,
            state: r.state,
            private_sealed: r.private_sealed,
            public_jwk: r.public_jwk,
            created_at: from_db_time(r.created_at),
            activated_at: r.activated_at.map(from_db_time),
            retired_at: r.retired_at.map(from_db_time),
            removed_at: r.removed_at.map(from_db_time),
        }
    }
}

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = data_keys)]
struct DataKeyRow {
    id: String,
    purpose: String,
    wrapped: Vec<u8>,
    created_at: NaiveDateTime,
}

impl From<DataKeyRow> for StoredDataKey {
    fn from(r: DataKeyRow) -> Self {
        StoredDataKey {
            id: r.id,
            purpose: r.purpose,
            wrapped: r.wrapped,
            created_at: from_db_time(r.created_at),
        }
    }
}

/// Takes the named lock row for the rest of the transaction (see the `locks` table).
fn lock(c: &mut DbConnection, name: &str) -> StoreResult<()> {
    let n = diesel::update(locks::table.find(name))
        .set(locks::n.eq(locks::n + 1))
        .execute(c)?;
    if n != 1 {
        return Err(StoreError::Corrupt(format!("lock row {name} is missing")));
    }
    Ok(())
}

fn load_keys(c: &mut DbConnection) -> StoreResult<Vec<StoredKey>> {
    let rows = signing_keys::table
        .order((signing_keys::created_at, signing_keys::kid))
        .select(SigningKeyRow::as_select())
        .load(c)?;
    Ok(rows.into_iter().map(StoredKey::from).collect())
}

fn load_data_keys(c: &mut DbConnection) -> StoreResult<Vec<StoredDataKey>> {
    let rows = data_keys::table
        .order((data_keys::created_at, data_keys::id))
        .select(DataKeyRow::as_select())
        .load(c)?;
    Ok(rows.into_iter().map(StoredDataKey::from).collect())
}

fn audit(
    c: &mut DbConnection,
    now: DateTime<Utc>,
    kind: &str,
    detail: serde_json::Value,
) -> StoreResult<()> {
    let e = AuditEvent {
        at: now,
        kind: kind.into(),
        subject_id: None,
        client_id: None,
        ip: None,
        detail,
    };
    diesel::insert_into(audit_events::table)
        .values(NewAuditEvent::try_from(&e)?)
        .execute(c)?;
    Ok(())
}

/// Sets the state of one key; fails (rolling the transaction back) if the key is absent.
fn set_state(
    c: &mut DbConnection,
    kid: &str,
    state: &str,
    now: NaiveDateTime,
) -> StoreResult<usize> {
    let target = signing_keys::table.find(kid);
    let n = match state {
        "current" => diesel::update(target)
            .set((
                signing_keys::state.eq(state),
                signing_keys::activated_at.eq(now),
            ))
            .execute(c)?,
        "retired" => diesel::update(target)
            .set((
                signing_keys::state.eq(state),
                signing_keys::retired_at.eq(now),
            ))
            .execute(c)?,
        _ => diesel::update(target)
            .set((
                signing_keys::state.eq(state),
                signing_keys::removed_at.eq(now),
                signing_keys::private_sealed.eq(Vec::<u8>::new()),
            ))
            .execute(c)?,
    };
    if n != 1 {
        return Err(StoreError::NotFound);
    }
    Ok(n)
}

impl KeyStore for SqlStore {
    fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        load_keys(&mut *self.conn()?)
    }

    fn change_keys(
        &self,
        now: DateTime<Utc>,
        reason: &str,
        decide: Decide<'_, StoredKey, KeyChange>,
    ) -> StoreResult<Vec<KeyChange>> {
        self.transaction(|c| {
            lock(c, "signing_keys")?;
            let keys = load_keys(c)?;
            let changes = decide(&keys)?;
            let at = to_db_time(now);
            for ch in &changes {
                let (kind, kid) = match ch {
                    KeyChange::Insert(k) => {
                        diesel::insert_into(signing_keys::table)
                            .values(NewSigningKey::from(k))
                            .execute(c)?;
                        ("key.created", &k.kid)
                    }
                    KeyChange::Activate { kid } => {
                        set_state(c, kid, "current", at)?;
                        ("key.activated", kid)
                    }
                    KeyChange::Retire { kid } => {
                        set_state(c, kid, "retired", at)?;
                        ("key.retired", kid)
                    }
                    KeyChange::Remove { kid } => {
                        set_state(c, kid, "removed", at)?;
                        ("key.removed", kid)
                    }
                    KeyChange::Reseal {
                        kid,
                        private_sealed,
                    } => {
                        let n = diesel::update(signing_keys::table.find(kid))
                            .set(signing_keys::private_sealed.eq(private_sealed))
                            .execute(c)?;
                        if n != 1 {
                            return Err(StoreError::NotFound);
                        }
                        ("key.resealed", kid)
                    }
                };
                audit(
                    c,
                    now,
                    kind,
                    serde_json::json!({"kid": kid, "reason": reason}),
                )?;
            }
            Ok(changes)
        })
    }

    fn list_data_keys(&self) -> StoreResult<Vec<StoredDataKey>> {
        load_data_keys(&mut *self.conn()?)
    }

    fn change_data_keys(
        &self,
        now: DateTime<Utc>,
        reason: &str,
        decide: Decide<'_, StoredDataKey, DataKeyChange>,
    ) -> StoreResult<Vec<DataKeyChange>> {
        self.transaction(|c| {
            lock(c, "data_keys")?;
            let keys = load_data_keys(c)?;
            let changes = decide(&keys)?;
            for ch in &changes {
                let (kind, id) = match ch {
                    DataKeyChange::Insert(k) => {
                        diesel::insert_into(data_keys::table)
                            .values(DataKeyRow {
                                id: k.id.clone(),
                                purpose: k.purpose.clone(),
                                wrapped: k.wrapped.clone(),
                                created_at: to_db_time(k.created_at),
                            })
                            .execute(c)?;
                        ("data_key.created", &k.id)
                    }
                    DataKeyChange::Rewrap { id, wrapped } => {
                        let n = diesel::update(data_keys::table.find(id))
                            .set(data_keys::wrapped.eq(wrapped))
                            .execute(c)?;
                        if n != 1 {
                            return Err(StoreError::NotFound);
                        }
                        ("data_key.rewrapped", id)
                    }
                };
                audit(
                    c,
                    now,
                    kind,
                    serde_json::json!({"id": id, "reason": reason}),
                )?;
            }
            Ok(changes)
        })
    }
}
