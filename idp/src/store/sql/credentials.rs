//! Second factors: TOTP secrets sealed with the vault, recovery codes as keyed hashes.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use keys::Vault;

use super::models::NewAuditEvent;
use super::schema::{audit_events, credentials};
use super::{from_db_time, to_db_time, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::{Credential, CredentialKind};
use crate::store::{CredentialStore, StoreError, StoreResult};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = credentials)]
struct CredentialRow {
    id: String,
    subject_id: String,
    kind: String,
    secret_sealed: Option<Vec<u8>>,
    secret_hash: Option<String>,
    last_used_step: Option<i64>,
    created_at: NaiveDateTime,
    confirmed_at: Option<NaiveDateTime>,
    used_at: Option<NaiveDateTime>,
}

fn aad(id: &str) -> Vec<u8> {
    format!("credentials.secret:{id}").into_bytes()
}

impl CredentialRow {
    fn new(c: &Credential, vault: &Vault) -> StoreResult<Self> {
        let secret_sealed = match &c.secret {
            Some(s) => Some(
                vault
                    .seal(s.expose(), &aad(&c.id))
                    .map_err(|e| StoreError::Sealing(e.to_string()))?,
            ),
            None => None,
        };
        Ok(CredentialRow {
            id: c.id.clone(),
            subject_id: c.subject_id.clone(),
            kind: c.kind.as_str().into(),
            secret_sealed,
            secret_hash: c.secret_hash.clone(),
            last_used_step: c.last_used_step,
            created_at: to_db_time(c.created_at),
            confirmed_at: c.confirmed_at.map(to_db_time),
            used_at: c.used_at.map(to_db_time),
        })
    }

    fn open(self, vault: &Vault) -> StoreResult<Credential> {
        let kind = CredentialKind::parse(&self.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("credential kind {}", self.kind)))?;
        let secret = match &self.secret_sealed {
            Some(s) => Some(
                vault
                    .open(s, &aad(&self.id))
                    .map_err(|e| StoreError::Sealing(format!("credential {}: {e}", self.id)))?,
            ),
            None => None,
        };
        Ok(Credential {
            id: self.id,
            subject_id: self.subject_id,
            kind,
            secret,
            secret_hash: self.secret_hash,
            last_used_step: self.last_used_step,
            created_at: from_db_time(self.created_at),
            confirmed_at: self.confirmed_at.map(from_db_time),
            used_at: self.used_at.map(from_db_time),
        })
    }
}

impl CredentialStore for SqlStore {
    fn insert_credential(&self, c: &Credential, event: &AuditEvent) -> StoreResult<()> {
        let row = CredentialRow::new(c, self.vault()?)?;
        let audit = NewAuditEvent::try_from(event)?;
        self.transaction(|conn| {
            diesel::insert_into(credentials::table)
                .values(&row)
                .execute(conn)?;
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(conn)?;
            Ok(())
        })
    }

    fn list_credentials(&self, subject_id: &str) -> StoreResult<Vec<Credential>> {
        let vault = self.vault()?;
        let rows = credentials::table
            .filter(credentials::subject_id.eq(subject_id))
            .order((credentials::created_at, credentials::id))
            .select(CredentialRow::as_select())
            .load(&mut *self.conn()?)?;
        rows.into_iter().map(|r| r.open(vault)).collect()
    }

    fn confirm_totp(&self, id: &str, step: i64, event: &AuditEvent) -> StoreResult<bool> {
        let audit = NewAuditEvent::try_from(event)?;
        let now = event.at;
        self.transaction(|c| {
            let n = diesel::update(
                credentials::table
                    .find(id)
                    .filter(credentials::kind.eq("totp"))
                    .filter(credentials::confirmed_at.is_null()),
            )
            .set((
                credentials::confirmed_at.eq(to_db_time(now)),
                credentials::last_used_step.eq(step),
            ))
            .execute(c)?;
            if n != 1 {
                return Ok(false);
            }
            let subject: String = credentials::table
                .find(id)
                .select(credentials::subject_id)
                .get_result(c)?;
            diesel::delete(
                credentials::table
                    .filter(credentials::subject_id.eq(subject))
                    .filter(credentials::kind.eq("totp"))
                    .filter(credentials::id.ne(id)),
            )
            .execute(c)?;
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(c)?;
            Ok(true)
        })
    }

    fn use_totp_step(&self, id: &str, step: i64) -> StoreResult<bool> {
        let n = diesel::update(
            credentials::table
                .find(id)
                .filter(credentials::kind.eq("totp"))
                .filter(
                    credentials::last_used_step
                        .is_null()
                        .or(credentials::last_used_step.lt(step)),
                ),
        )
        .set(credentials::last_used_step.eq(step))
        .execute(&mut *self.conn()?)?;
        Ok(n == 1)
    }

    fn use_recovery_code(
        &self,
        subject_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = diesel::update(
            credentials::table
                .filter(credentials::subject_id.eq(subject_id))
                .filter(credentials::kind.eq("recovery"))
                .filter(credentials::secret_hash.eq(hash))
                .filter(credentials::used_at.is_null()),
        )
        .set(credentials::used_at.eq(to_db_time(now)))
        .execute(&mut *self.conn()?)?;
        Ok(n == 1)
    }

    fn replace_recovery_codes(
        &self,
        subject_id: &str,
        codes: &[Credential],
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let vault = self.vault()?;
        let audit = NewAuditEvent::try_from(event)?;
        let rows = codes
            .iter()
            .map(|c| CredentialRow::new(c, vault))
            .collect::<StoreResult<Vec<_>>>()?;
        self.transaction(|c| {
            diesel::delete(
                credentials::table
                    .filter(credentials::subject_id.eq(subject_id))
                    .filter(credentials::kind.eq("recovery")),
            )
            .execute(c)?;
            for r in &rows {
                diesel::insert_into(credentials::table)
                    .values(r)
                    .execute(c)?;
            }
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(c)?;
            Ok(())
        })
    }
}
