//! [`PersonStore`] over SQL. Personal numbers, birthplace, documents, contacts, addresses
//! and the history are sealed by the vault, each bound (AAD) to its row; SNILS and INN are
//! also kept as blind indexes (the same HMAC as the login index) so sign-in by them works.
//!
//! One submodule per flow holds its SQL on a connection; this file opens the connection or
//! the transaction and records the audit event in it.

mod history;
mod items;
mod organisations;
mod record;
mod seal;
mod status;
mod verification;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::models::{login_index, SubjectRow};
use super::schema::{audit_events, persons, subjects};
use super::{DbConnection, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::person::{
    AccountLevel, AccountStatus, Confirmation, Membership, Ogrn, OrgRole, Person, PersonChange,
    Verification,
};
use crate::domain::Subject;
use crate::store::person::{PersonItem, PersonStore, VerificationEffect};
use crate::store::{StoreError, StoreResult};

pub(super) use history::{append_history, change};
pub(super) use record::{ensure_person, subject_by_identifier_index};
pub(super) use status::{min_level, record_account_change, write_status};

/// Records `e` on the connection (inside the caller's transaction).
pub(super) fn audit(c: &mut DbConnection, e: &AuditEvent) -> StoreResult<()> {
    let row = super::models::NewAuditEvent::try_from(e)?;
    diesel::insert_into(audit_events::table)
        .values(&row)
        .execute(c)?;
    Ok(())
}

/// Runs `f` in one transaction and records `event` in it.
fn audited<R>(
    store: &SqlStore,
    event: &AuditEvent,
    f: impl FnOnce(&mut DbConnection) -> StoreResult<R>,
) -> StoreResult<R> {
    store.transaction(|c| {
        let r = f(c)?;
        audit(c, event)?;
        Ok(r)
    })
}

/// Like [`audited`], but records `event` only when `f` says it changed something.
fn audited_if_changed(
    store: &SqlStore,
    event: &AuditEvent,
    f: impl FnOnce(&mut DbConnection) -> StoreResult<bool>,
) -> StoreResult<bool> {
    store.transaction(|c| {
        let changed = f(c)?;
        if changed {
            audit(c, event)?;
        }
        Ok(changed)
    })
}

/// A person's level, status and last change, as stored.
pub(super) type StandingRow = (String, String, chrono::NaiveDateTime);

/// The standing of `subject_id` from its person row or, without one, the defaults of a new
/// person for a subject last changed at `subject_updated` (`None` for both: no such subject).
pub(super) fn standing(
    subject_id: &str,
    row: Option<StandingRow>,
    subject_updated: Option<chrono::NaiveDateTime>,
) -> StoreResult<Option<Person>> {
    let Some((level, status, updated)) = row else {
        return Ok(subject_updated.map(|t| Person::new(subject_id, super::from_db_time(t))));
    };
    let mut p = Person::new(subject_id, super::from_db_time(updated));
    p.level = AccountLevel::parse(&level)
        .ok_or_else(|| StoreError::Corrupt(format!("person {subject_id}: level")))?;
    p.status = AccountStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("person {subject_id}: status")))?;
    Ok(Some(p))
}

impl PersonStore for SqlStore {
    fn find_person(&self, subject_id: &str) -> StoreResult<Option<Person>> {
        if subject_id.contains('\0') {
            return Ok(None);
        }
        let vault = self.vault()?;
        record::person_on(&mut *self.conn()?, vault, subject_id)
    }

    fn find_person_standing(&self, subject_id: &str) -> StoreResult<Option<Person>> {
        if subject_id.contains('\0') {
            return Ok(None);
        }
        // One statement: the person's row if there is one, else the defaults of a new
        // person, if the subject exists.
        let found: Option<(Option<StandingRow>, chrono::NaiveDateTime)> =
            on_backend!(&mut *self.conn()?, |c| {
                subjects::table
                    .left_join(persons::table.on(persons::subject_id.eq(subjects::id)))
                    .filter(subjects::id.eq(subject_id))
                    .select((
                        (persons::account_level, persons::status, persons::updated_at).nullable(),
                        subjects::updated_at,
                    ))
                    .get_result(c)
                    .optional()
            })?;
        match found {
            Some((row, created)) => standing(subject_id, row, Some(created)),
            None => Ok(None),
        }
    }

    fn find_subject_standing(&self, subject_id: &str) -> StoreResult<Option<(Subject, Person)>> {
        if subject_id.contains('\0') {
            return Ok(None);
        }
        let vault = self.vault()?;
        let found: Option<(SubjectRow, Option<StandingRow>)> =
            on_backend!(&mut *self.conn()?, |c| {
                subjects::table
                    .left_join(persons::table.on(persons::subject_id.eq(subjects::id)))
                    .filter(subjects::id.eq(subject_id))
                    .select((
                        SubjectRow::as_select(),
                        (persons::account_level, persons::status, persons::updated_at).nullable(),
                    ))
                    .get_result(c)
                    .optional()
            })?;
        let Some((row, person)) = found else {
            return Ok(None);
        };
        let person = standing(subject_id, person, Some(row.updated_at))?
            .ok_or_else(|| StoreError::Corrupt(format!("person {subject_id}: standing")))?;
        Ok(Some((row.open(vault)?, person)))
    }

    fn find_person_by_oid(&self, oid: i64) -> StoreResult<Option<(Subject, Person)>> {
        let vault = self.vault()?;
        let mut conn = self.conn()?;
        let Some(row) = subjects::table
            .filter(subjects::oid.eq(oid))
            .select(SubjectRow::as_select())
            .get_result(&mut *conn)
            .optional()?
        else {
            return Ok(None);
        };
        let subject = row.open(vault)?;
        let person = record::person_on(&mut conn, vault, &subject.id)?
            .ok_or_else(|| StoreError::Corrupt("subject vanished".into()))?;
        Ok(Some((subject, person)))
    }

    fn find_subject_by_snils_or_inn(&self, digits: &str) -> StoreResult<Option<Subject>> {
        let vault = self.vault()?;
        let index = login_index(vault, digits);
        subject_by_identifier_index(&mut *self.conn()?, &index)?
            .map(|r| r.open(vault))
            .transpose()
    }

    fn set_status(
        &self,
        subject_id: &str,
        status: AccountStatus,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let vault = self.vault()?;
        audited_if_changed(self, event, |c| {
            status::set_status_on(c, vault, subject_id, status, event.at)
        })
    }

    fn set_level(
        &self,
        subject_id: &str,
        level: AccountLevel,
        confirmation: Option<&Confirmation>,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let vault = self.vault()?;
        audited(self, event, |c| {
            status::set_level_on(c, vault, subject_id, level, confirmation, event.at)
        })
    }

    fn set_identifiers(
        &self,
        subject_id: &str,
        snils: Option<&str>,
        inn: Option<&str>,
        birth_place: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let vault = self.vault()?;
        audited(self, event, |c| {
            record::set_identifiers_on(c, vault, subject_id, snils, inn, birth_place, event.at)
        })
    }

    fn put_item(&self, subject_id: &str, item: &PersonItem, event: &AuditEvent) -> StoreResult<()> {
        let vault = self.vault()?;
        audited(self, event, |c| {
            items::put_item_on(c, vault, subject_id, item, event.at)
        })
    }

    fn remove_item(
        &self,
        subject_id: &str,
        item_id: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let vault = self.vault()?;
        audited_if_changed(self, event, |c| {
            items::remove_item_on(c, vault, subject_id, item_id, event.at)
        })
    }

    fn person_history(&self, subject_id: &str) -> StoreResult<Vec<PersonChange>> {
        let vault = self.vault()?;
        history::history_on(&mut *self.conn()?, vault, subject_id)
    }

    fn add_membership(
        &self,
        subject_id: &str,
        ogrn: &Ogrn,
        name: &str,
        role: OrgRole,
        event: &AuditEvent,
    ) -> StoreResult<i64> {
        let vault = self.vault()?;
        audited(self, event, |c| {
            organisations::add_membership_on(c, vault, subject_id, ogrn, name, role, event.at)
        })
    }

    fn memberships(&self, subject_id: &str) -> StoreResult<Vec<Membership>> {
        organisations::memberships_on(&mut *self.conn()?, subject_id)
    }

    fn insert_verification(&self, v: &Verification, event: &AuditEvent) -> StoreResult<()> {
        let vault = self.vault()?;
        audited(self, event, |c| {
            verification::insert_verification_on(c, vault, v)
        })
    }

    fn find_verification(&self, id: &str) -> StoreResult<Option<Verification>> {
        let vault = self.vault()?;
        verification::find_verification_on(&mut *self.conn()?, vault, id)
    }

    fn latest_verification(&self, subject_id: &str) -> StoreResult<Option<Verification>> {
        let vault = self.vault()?;
        verification::latest_verification_on(&mut *self.conn()?, vault, subject_id)
    }

    fn due_verifications(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Verification>> {
        let vault = self.vault()?;
        verification::due_verifications_on(&mut *self.conn()?, vault, now, limit)
    }

    fn update_pending_verification(&self, v: &Verification) -> StoreResult<bool> {
        verification::update_pending_verification_on(&mut *self.conn()?, v)
    }

    fn finish_verification(
        &self,
        v: &Verification,
        effect: &VerificationEffect,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let vault = self.vault()?;
        audited_if_changed(self, event, |c| {
            verification::finish_verification_on(c, vault, v, effect)
        })
    }

    fn client_min_level(&self, client_id: &str) -> StoreResult<Option<AccountLevel>> {
        if client_id.contains('\0') {
            return Ok(None);
        }
        status::client_min_level_on(&mut *self.conn()?, client_id)
    }

    fn set_client_min_level(
        &self,
        client_id: &str,
        level: Option<AccountLevel>,
    ) -> StoreResult<()> {
        self.transaction(|c| status::set_client_min_level_on(c, client_id, level))
    }
}
