//! Push devices: the token sealed by the vault (bound to the row id), found by its blind
//! index, removed devices kept with `removed_at`.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::models::NewAuditEvent;
use super::schema::{audit_events, push_devices};
use super::{from_db_time, to_db_time, SqlStore};
use crate::audit::AuditEvent;
use crate::store::push::{
    PushAdded, PushDevice, PushDeviceStore, PushPlatform, PushToken, MAX_DEVICES,
};
use crate::store::{StoreError, StoreResult};

fn token_aad(id: &str) -> String {
    format!("push.token:{id}")
}

/// The blind index of a token (keyed: a database dump does not tell which token is whose).
fn token_index(vault: &keys::Vault, token: &PushToken) -> String {
    vault.blind_index(&format!("push:{}", token.expose()))
}

#[derive(Insertable)]
#[diesel(table_name = push_devices)]
struct NewPushRow<'a> {
    id: &'a str,
    subject_id: &'a str,
    platform: &'static str,
    token_sealed: Vec<u8>,
    token_index: String,
    name: &'a str,
    created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = push_devices)]
struct PushRow {
    id: String,
    subject_id: String,
    platform: String,
    token_sealed: Vec<u8>,
    name: String,
    created_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
    removed_at: Option<NaiveDateTime>,
}

impl PushRow {
    fn open(self, vault: &keys::Vault) -> StoreResult<PushDevice> {
        let platform = PushPlatform::parse(&self.platform)
            .ok_or_else(|| StoreError::Corrupt(format!("push platform {}", self.platform)))?;
        let plain = vault
            .open(&self.token_sealed, token_aad(&self.id).as_bytes())
            .map_err(|e| StoreError::Sealing(format!("push device {}: {e}", self.id)))?;
        let token = std::str::from_utf8(plain.expose())
            .ok()
            .and_then(PushToken::parse)
            .ok_or_else(|| StoreError::Corrupt(format!("push device {}: token", self.id)))?;
        Ok(PushDevice {
            id: self.id,
            subject_id: self.subject_id,
            platform,
            token,
            name: self.name,
            created_at: from_db_time(self.created_at),
            last_used_at: self.last_used_at.map(from_db_time),
            removed_at: self.removed_at.map(from_db_time),
        })
    }
}

impl PushDeviceStore for SqlStore {
    fn add_push_device(
        &self,
        d: &PushDevice,
        now: DateTime<Utc>,
        event: &AuditEvent,
    ) -> StoreResult<PushAdded> {
        let vault = self.vault()?;
        let row = NewPushRow {
            id: &d.id,
            subject_id: &d.subject_id,
            platform: d.platform.as_str(),
            token_sealed: vault
                .seal(d.token.expose().as_bytes(), token_aad(&d.id).as_bytes())
                .map_err(|e| StoreError::Sealing(e.to_string()))?,
            token_index: token_index(vault, &d.token),
            name: &d.name,
            created_at: to_db_time(d.created_at),
        };
        let audit = NewAuditEvent::try_from(event)?;
        self.transaction(|c| {
            // The person's other live devices: re-registering one of their own tokens does
            // not need a free slot.
            let others: i64 = push_devices::table
                .filter(push_devices::subject_id.eq(&d.subject_id))
                .filter(push_devices::removed_at.is_null())
                .filter(push_devices::token_index.ne(&row.token_index))
                .count()
                .get_result(c)?;
            if usize::try_from(others).unwrap_or(usize::MAX) >= MAX_DEVICES {
                return Ok(PushAdded::TooMany);
            }
            let replaced = diesel::update(
                push_devices::table
                    .filter(push_devices::token_index.eq(&row.token_index))
                    .filter(push_devices::removed_at.is_null()),
            )
            .set(push_devices::removed_at.eq(to_db_time(now)))
            .execute(c)?;
            diesel::insert_into(push_devices::table)
                .values(&row)
                .execute(c)?;
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(c)?;
            Ok(PushAdded::Added { replaced })
        })
    }

    fn list_push_devices(&self, subject_id: &str) -> StoreResult<Vec<PushDevice>> {
        let vault = self.vault()?;
        push_devices::table
            .filter(push_devices::subject_id.eq(subject_id))
            .filter(push_devices::removed_at.is_null())
            .order((push_devices::created_at, push_devices::id))
            .select(PushRow::as_select())
            .load(&mut *self.conn()?)?
            .into_iter()
            .map(|r| r.open(vault))
            .collect()
    }

    fn remove_push_device(
        &self,
        subject_id: &str,
        id: &str,
        now: DateTime<Utc>,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let audit = NewAuditEvent::try_from(event)?;
        self.transaction(|c| {
            let n = diesel::update(
                push_devices::table
                    .find(id)
                    .filter(push_devices::subject_id.eq(subject_id))
                    .filter(push_devices::removed_at.is_null()),
            )
            .set(push_devices::removed_at.eq(to_db_time(now)))
            .execute(c)?;
            if n == 0 {
                return Ok(false);
            }
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(c)?;
            Ok(true)
        })
    }

    fn touch_push_device(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        diesel::update(push_devices::table.find(id))
            .set(push_devices::last_used_at.eq(to_db_time(now)))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }
}
