//! Passkeys and security keys, their user handles, and removal of a factor.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::models::NewAuditEvent;
use super::schema::{audit_events, credentials, webauthn_credentials, webauthn_handles};
use super::{from_db_time, to_db_time, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::store::{FactorRef, StoreError, StoreResult, WebauthnStore};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = webauthn_credentials)]
struct WebauthnRow {
    id: String,
    subject_id: String,
    kind: String,
    cred_id: String,
    name: String,
    data: String,
    sign_count: i64,
    created_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
}

impl From<&WebauthnCredential> for WebauthnRow {
    fn from(c: &WebauthnCredential) -> Self {
        WebauthnRow {
            id: c.id.clone(),
            subject_id: c.subject_id.clone(),
            kind: c.kind.as_str().into(),
            cred_id: c.cred_id.clone(),
            name: c.name.clone(),
            data: c.data.clone(),
            sign_count: c.sign_count,
            created_at: to_db_time(c.created_at),
            last_used_at: c.last_used_at.map(to_db_time),
        }
    }
}

impl TryFrom<WebauthnRow> for WebauthnCredential {
    type Error = StoreError;
    fn try_from(r: WebauthnRow) -> Result<Self, StoreError> {
        let kind = WebauthnKind::parse(&r.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("webauthn kind {}", r.kind)))?;
        Ok(WebauthnCredential {
            id: r.id,
            subject_id: r.subject_id,
            kind,
            cred_id: r.cred_id,
            name: r.name,
            data: r.data,
            sign_count: r.sign_count,
            created_at: from_db_time(r.created_at),
            last_used_at: r.last_used_at.map(from_db_time),
        })
    }
}

impl WebauthnStore for SqlStore {
    fn webauthn_handle(&self, subject_id: &str, fresh: &str) -> StoreResult<String> {
        self.transaction(|c| {
            let found: Option<String> = webauthn_handles::table
                .find(subject_id)
                .select(webauthn_handles::handle)
                .first(c)
                .optional()?;
            if let Some(h) = found {
                return Ok(h);
            }
            diesel::insert_into(webauthn_handles::table)
                .values((
                    webauthn_handles::subject_id.eq(subject_id),
                    webauthn_handles::handle.eq(fresh),
                ))
                .execute(c)?;
            Ok(fresh.to_string())
        })
    }

    fn subject_of_handle(&self, handle: &str) -> StoreResult<Option<String>> {
        Ok(webauthn_handles::table
            .filter(webauthn_handles::handle.eq(handle))
            .select(webauthn_handles::subject_id)
            .first(&mut *self.conn()?)
            .optional()?)
    }

    fn insert_webauthn(&self, c: &WebauthnCredential, event: &AuditEvent) -> StoreResult<()> {
        let row = WebauthnRow::from(c);
        let audit = NewAuditEvent::try_from(event)?;
        self.transaction(|conn| {
            diesel::insert_into(webauthn_credentials::table)
                .values(&row)
                .execute(conn)?;
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(conn)?;
            Ok(())
        })
    }

    fn list_webauthn(&self, subject_id: &str) -> StoreResult<Vec<WebauthnCredential>> {
        webauthn_credentials::table
            .filter(webauthn_credentials::subject_id.eq(subject_id))
            .order((webauthn_credentials::created_at, webauthn_credentials::id))
            .select(WebauthnRow::as_select())
            .load(&mut *self.conn()?)?
            .into_iter()
            .map(WebauthnCredential::try_from)
            .collect()
    }

    fn find_webauthn(&self, cred_id: &str) -> StoreResult<Option<WebauthnCredential>> {
        webauthn_credentials::table
            .filter(webauthn_credentials::cred_id.eq(cred_id))
            .select(WebauthnRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?
            .map(WebauthnCredential::try_from)
            .transpose()
    }

    fn use_webauthn(
        &self,
        id: &str,
        seen: i64,
        counter: i64,
        data: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = diesel::update(
            webauthn_credentials::table
                .find(id)
                .filter(webauthn_credentials::sign_count.eq(seen)),
        )
        .set((
            webauthn_credentials::sign_count.eq(counter),
            webauthn_credentials::data.eq(data),
            webauthn_credentials::last_used_at.eq(to_db_time(now)),
        ))
        .execute(&mut *self.conn()?)?;
        Ok(n == 1)
    }

    fn remove_factor(
        &self,
        subject_id: &str,
        factor: &FactorRef,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let audit = NewAuditEvent::try_from(event)?;
        self.transaction(|c| {
            let n = match factor {
                FactorRef::Totp(id) => diesel::delete(
                    credentials::table
                        .find(id)
                        .filter(credentials::subject_id.eq(subject_id))
                        .filter(credentials::kind.eq("totp")),
                )
                .execute(c)?,
                FactorRef::RecoveryCodes => diesel::delete(
                    credentials::table
                        .filter(credentials::subject_id.eq(subject_id))
                        .filter(credentials::kind.eq("recovery")),
                )
                .execute(c)?,
                FactorRef::Webauthn(id) => diesel::delete(
                    webauthn_credentials::table
                        .find(id)
                        .filter(webauthn_credentials::subject_id.eq(subject_id)),
                )
                .execute(c)?,
            };
            if n == 0 {
                return Ok(false);
            }
            diesel::insert_into(audit_events::table)
                .values(&audit)
                .execute(c)?;
            Ok(true)
        })
    }
}
