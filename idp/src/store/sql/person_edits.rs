//! [`PersonEditStore`] over SQL: contact changes from the profile page, accounts created
//! pending by an operator and their activation. Each is one transaction with its history
//! row, audit event and notices.

use chrono::DateTime;
use chrono::Utc;
use diesel::prelude::*;

use super::models::{login_index, seal_profile, NewSession, NewSubject, SubjectRow};
use super::person::{
    append_history, audit, change, ensure_person, record_account_change, write_status,
};
use super::schema::{contact_index, persons, sessions, subjects};
use super::signin::{confirmed_contacts, contact_key, index_contacts_on};
use super::{to_db_time, DbConnection, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::identifier::Identifier;
use crate::domain::person::{AccountStatus, ContactKind};
use crate::domain::{SsoSession, Subject};
use crate::store::person::{ContactChange, ContactOutcome, PersonEditStore};
use crate::store::{StoreError, StoreResult};
use keys::Vault;

/// The history id of a sign-in contact (the ids `/rs/prns/{oid}/ctts` gives them).
fn item_id(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::Email => "eml",
        ContactKind::Mobile | ContactKind::Phone => "mbt",
    }
}

/// Whether `login` is an identifier of this kind of contact.
fn login_is(kind: ContactKind, login: &str) -> bool {
    matches!(
        (kind, Identifier::parse(login)),
        (ContactKind::Email, Ok(Identifier::Email(_)))
            | (
                ContactKind::Mobile | ContactKind::Phone,
                Ok(Identifier::Phone(_))
            )
    )
}

fn load_subject(c: &mut DbConnection, vault: &Vault, id: &str) -> StoreResult<Option<Subject>> {
    subjects::table
        .find(id)
        .select(SubjectRow::as_select())
        .get_result(c)
        .optional()?
        .map(|r| r.open(vault))
        .transpose()
}

/// Writes the login (index and sealed value) and the profile of `s`.
fn save_subject(
    c: &mut DbConnection,
    vault: &Vault,
    s: &Subject,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let login_sealed = vault
        .seal(
            s.login.as_bytes(),
            format!("subjects.login:{}", s.id).as_bytes(),
        )
        .map_err(|e| StoreError::Sealing(e.to_string()))?;
    diesel::update(subjects::table.find(&s.id))
        .set((
            subjects::login_index.eq(login_index(vault, &s.login)),
            subjects::login_sealed.eq(login_sealed),
            subjects::profile_sealed.eq(seal_profile(vault, &s.id, &s.profile)?),
            subjects::updated_at.eq(to_db_time(now)),
        ))
        .execute(c)?;
    Ok(())
}

/// Whether another account signs in with `value` or has it as a confirmed contact.
fn taken_by_other(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    value: &str,
) -> StoreResult<bool> {
    let logins: i64 = subjects::table
        .filter(subjects::login_index.eq(login_index(vault, value)))
        .filter(subjects::id.ne(subject_id))
        .count()
        .get_result(c)?;
    let contacts: i64 = contact_index::table
        .filter(contact_index::index_hash.eq(contact_key(vault, value)))
        .filter(contact_index::subject_id.ne(subject_id))
        .count()
        .get_result(c)?;
    Ok(logins + contacts > 0)
}

fn contact_change_on(
    c: &mut DbConnection,
    vault: &Vault,
    ch: &ContactChange<'_>,
) -> StoreResult<ContactOutcome> {
    let mut s = load_subject(c, vault, ch.subject_id)?.ok_or(StoreError::NotFound)?;
    let p = &s.profile;
    let (current, verified) = match ch.kind {
        ContactKind::Email => (p.email.clone(), p.email_verified),
        ContactKind::Mobile | ContactKind::Phone => {
            (p.phone_number.clone(), p.phone_number_verified)
        }
    };
    // An account made with only a login has its login as the contact of that kind.
    let old = current.or_else(|| login_is(ch.kind, &s.login).then(|| s.login.clone()));
    if old.as_deref() == ch.value && (ch.value.is_none() || verified) {
        return Ok(ContactOutcome::Unchanged);
    }
    if let Some(v) = ch.value {
        if taken_by_other(c, vault, &s.id, v)? {
            return Ok(ContactOutcome::Taken);
        }
    }
    let value = ch.value.map(str::to_string);
    match ch.kind {
        ContactKind::Email => {
            s.profile.email_verified = value.is_some();
            s.profile.email = value;
        }
        ContactKind::Mobile | ContactKind::Phone => {
            s.profile.phone_number_verified = value.is_some();
            s.profile.phone_number = value;
        }
    }
    let contacts = confirmed_contacts(&s);
    // An account keeps at least one confirmed phone or e-mail (for codes and recovery).
    if ch.value.is_none() && contacts.is_empty() {
        return Ok(ContactOutcome::LastContact);
    }
    if old.as_deref() == Some(s.login.as_str()) {
        // The login follows its contact: the old value no longer signs in.
        s.login = match (ch.value, contacts.first()) {
            (Some(v), _) => v.to_string(),
            (None, Some(other)) => other.clone(),
            (None, None) => return Ok(ContactOutcome::LastContact),
        };
    }
    save_subject(c, vault, &s, ch.now)?;
    index_contacts_on(c, vault, &s.id, &contacts)?;
    ensure_person(c, vault, &s.id, ch.now)?;
    let action = match (&old, ch.value) {
        (None, _) => "added",
        (Some(_), Some(_)) => "changed",
        (Some(_), None) => "removed",
    };
    let json = |v: Option<&str>| {
        v.map(|v| serde_json::json!({"kind": ch.kind.as_str(), "value": v, "verified": true}))
    };
    append_history(
        c,
        vault,
        &s.id,
        &change(
            ch.now,
            "contact",
            action,
            Some(item_id(ch.kind)),
            json(old.as_deref()),
            json(ch.value),
        ),
    )?;
    audit(c, ch.event)?;
    for m in ch.notices {
        super::outbox::insert_message(c, vault, m, ch.now)?;
    }
    Ok(ContactOutcome::Changed)
}

impl PersonEditStore for SqlStore {
    fn change_contact(&self, ch: &ContactChange<'_>) -> StoreResult<ContactOutcome> {
        let vault = self.vault()?;
        match self.transaction(|c| contact_change_on(c, vault, ch)) {
            // A login taken between the check and the write (UNIQUE login_index).
            Err(StoreError::Conflict) => Ok(ContactOutcome::Taken),
            other => other,
        }
    }

    fn insert_pending_subject(&self, s: &Subject, event: &AuditEvent) -> StoreResult<i64> {
        let vault = self.vault()?;
        let now = event.at;
        self.transaction(|c| {
            let oid = super::queries::next_oid(c)?;
            let row = NewSubject::new(s, oid, vault)?;
            diesel::insert_into(subjects::table)
                .values(&row)
                .execute(c)?;
            index_contacts_on(c, vault, &s.id, &confirmed_contacts(s))?;
            ensure_person(c, vault, &s.id, now)?;
            set_status_on(c, vault, &s.id, AccountStatus::PendingConfirmation, now)?;
            audit(c, event)?;
            Ok(oid)
        })
    }

    fn activate_pending(
        &self,
        subject_id: &str,
        password_hash: &str,
        confirmed_contact: &str,
        event: &AuditEvent,
        session: &SsoSession,
    ) -> StoreResult<bool> {
        let vault = self.vault()?;
        let now = event.at;
        let session = NewSession::try_from(session)?;
        self.transaction(|c| {
            // Conditional on the status, so two activations cannot both succeed.
            let n = diesel::update(
                persons::table
                    .find(subject_id)
                    .filter(persons::status.eq(AccountStatus::PendingConfirmation.as_str())),
            )
            .set((
                persons::status.eq(AccountStatus::Active.as_str()),
                persons::updated_at.eq(to_db_time(now)),
            ))
            .execute(c)?;
            if n == 0 {
                return Ok(false);
            }
            let mut s = load_subject(c, vault, subject_id)?.ok_or(StoreError::NotFound)?;
            let p = &mut s.profile;
            if p.email.as_deref() == Some(confirmed_contact) {
                p.email_verified = true;
            }
            if p.phone_number.as_deref() == Some(confirmed_contact) {
                p.phone_number_verified = true;
            }
            s.password_hash = password_hash.to_string();
            diesel::update(subjects::table.find(subject_id))
                .set(subjects::password_hash.eq(password_hash))
                .execute(c)?;
            save_subject(c, vault, &s, now)?;
            index_contacts_on(c, vault, subject_id, &confirmed_contacts(&s))?;
            let before = serde_json::json!(AccountStatus::PendingConfirmation.as_str());
            let after = serde_json::json!({"status": "active", "by": "activation"});
            record_account_change(c, vault, subject_id, now, "status", before, after)?;
            audit(c, event)?;
            diesel::insert_into(sessions::table)
                .values(&session)
                .execute(c)?;
            Ok(true)
        })
    }
}

/// Sets the status of a person row just created (history row included).
fn set_status_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    status: AccountStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    write_status(c, subject_id, status, now)?;
    let before = serde_json::json!(AccountStatus::Active.as_str());
    let after = serde_json::json!({"status": status.as_str(), "by": "operator"});
    record_account_change(c, vault, subject_id, now, "status", before, after)
}
