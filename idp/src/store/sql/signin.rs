//! Sign-in state (temporary password, last second factor) and password changes.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::models::NewAuditEvent;
use super::models::SubjectRow;
use super::schema::{
    audit_events, contact_index, refresh_tokens, sessions, signin_state, subjects,
};
use super::{to_db_time, DbConnection, SqlStore};
use crate::domain::Subject;
use crate::store::{
    PasswordChange, PasswordChanged, SigninState, SigninStore, StoreError, StoreResult,
};

/// The blind index of a normalised contact.
pub(super) fn contact_key(vault: &keys::Vault, contact: &str) -> String {
    vault.blind_index(&format!("contact:{contact}"))
}

/// The confirmed phone and e-mail of a person (normalised as stored in the profile).
pub(crate) fn confirmed_contacts(s: &Subject) -> Vec<String> {
    let p = &s.profile;
    let mut out = Vec::new();
    if let Some(e) = p.email.as_ref().filter(|_| p.email_verified) {
        out.push(e.clone());
    }
    if let Some(ph) = p.phone_number.as_ref().filter(|_| p.phone_number_verified) {
        out.push(ph.clone());
    }
    out
}

/// Replaces the indexed contacts of `subject_id` with `contacts`, on `c`.
pub(crate) fn index_contacts_on(
    c: &mut DbConnection,
    vault: &keys::Vault,
    subject_id: &str,
    contacts: &[String],
) -> StoreResult<()> {
    diesel::delete(contact_index::table.filter(contact_index::subject_id.eq(subject_id)))
        .execute(c)?;
    let mut keys: Vec<String> = contacts.iter().map(|ct| contact_key(vault, ct)).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        diesel::insert_into(contact_index::table)
            .values((
                contact_index::index_hash.eq(&k),
                contact_index::subject_id.eq(subject_id),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// Attempts of the UPDATE-then-INSERT upsert (MultiConnection has no ON CONFLICT).
const UPSERT_ATTEMPTS: usize = 3;

#[derive(Insertable)]
#[diesel(table_name = signin_state)]
struct NewSigninRow<'a> {
    subject_id: &'a str,
    password_must_change: bool,
    last_factor: Option<&'a str>,
    updated_at: NaiveDateTime,
}

/// Sets the columns given (`None`: leave as is) of the subject's row, creating it if needed.
fn upsert(
    c: &mut DbConnection,
    subject_id: &str,
    must_change: Option<bool>,
    last_factor: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let at = to_db_time(now);
    for _ in 0..UPSERT_ATTEMPTS {
        let target = signin_state::table.find(subject_id);
        let n = match (must_change, last_factor) {
            (Some(m), Some(f)) => diesel::update(target)
                .set((
                    signin_state::password_must_change.eq(m),
                    signin_state::last_factor.eq(Some(f)),
                    signin_state::updated_at.eq(at),
                ))
                .execute(c)?,
            (Some(m), None) => diesel::update(target)
                .set((
                    signin_state::password_must_change.eq(m),
                    signin_state::updated_at.eq(at),
                ))
                .execute(c)?,
            (None, Some(f)) => diesel::update(target)
                .set((
                    signin_state::last_factor.eq(Some(f)),
                    signin_state::updated_at.eq(at),
                ))
                .execute(c)?,
            (None, None) => return Ok(()),
        };
        if n > 0 {
            return Ok(());
        }
        let row = NewSigninRow {
            subject_id,
            password_must_change: must_change.unwrap_or(false),
            last_factor,
            updated_at: at,
        };
        match diesel::insert_into(signin_state::table)
            .values(&row)
            .execute(c)
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

impl SigninStore for SqlStore {
    fn signin_state(&self, subject_id: &str) -> StoreResult<SigninState> {
        if subject_id.contains('\0') {
            return Ok(SigninState::default());
        }
        let row: Option<(bool, Option<String>)> = signin_state::table
            .find(subject_id)
            .select((
                signin_state::password_must_change,
                signin_state::last_factor,
            ))
            .get_result(&mut *self.conn()?)
            .optional()?;
        Ok(row
            .map(|(password_must_change, last_factor)| SigninState {
                password_must_change,
                last_factor,
            })
            .unwrap_or_default())
    }

    fn set_last_factor(
        &self,
        subject_id: &str,
        factor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.transaction(|c| upsert(c, subject_id, None, Some(factor), now))
    }

    fn set_password(&self, ch: &PasswordChange<'_>) -> StoreResult<PasswordChanged> {
        let vault = self.vault()?;
        let at = to_db_time(ch.now);
        self.transaction(|c| {
            // The write comes first, so SQLite takes its write lock at once.
            let n = diesel::update(subjects::table.find(ch.subject_id))
                .set((
                    subjects::password_hash.eq(ch.password_hash),
                    subjects::updated_at.eq(at),
                ))
                .execute(c)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            upsert(c, ch.subject_id, Some(ch.must_change), None, ch.now)?;
            let live = sessions::table
                .filter(sessions::subject_id.eq(ch.subject_id))
                .filter(sessions::ended_at.is_null());
            let sessions_ended = match ch.keep_sid {
                Some(keep) => diesel::update(live.filter(sessions::sid.ne(keep)))
                    .set(sessions::ended_at.eq(Some(at)))
                    .execute(c)?,
                None => diesel::update(live)
                    .set(sessions::ended_at.eq(Some(at)))
                    .execute(c)?,
            };
            let tokens = refresh_tokens::table
                .filter(refresh_tokens::subject_id.eq(ch.subject_id))
                .filter(refresh_tokens::revoked_at.is_null());
            let refresh_tokens_revoked = match ch.keep_sid {
                Some(keep) => diesel::update(
                    tokens.filter(
                        refresh_tokens::sid
                            .is_null()
                            .or(refresh_tokens::sid.ne(keep)),
                    ),
                )
                .set(refresh_tokens::revoked_at.eq(Some(at)))
                .execute(c)?,
                None => diesel::update(tokens)
                    .set(refresh_tokens::revoked_at.eq(Some(at)))
                    .execute(c)?,
            };
            let event = NewAuditEvent::try_from(ch.event)?;
            diesel::insert_into(audit_events::table)
                .values(&event)
                .execute(c)?;
            if let Some(m) = ch.alert {
                super::outbox::insert_message(c, vault, m, ch.now)?;
            }
            Ok(PasswordChanged {
                sessions_ended,
                refresh_tokens_revoked,
            })
        })
    }

    fn index_contacts(&self, subject_id: &str, contacts: &[String]) -> StoreResult<()> {
        let vault = self.vault()?;
        self.transaction(|c| index_contacts_on(c, vault, subject_id, contacts))
    }

    fn find_subjects_by_contact(&self, contact: &str) -> StoreResult<Vec<Subject>> {
        let vault = self.vault()?;
        let mut conn = self.conn()?;
        let ids: Vec<String> = contact_index::table
            .filter(contact_index::index_hash.eq(contact_key(vault, contact)))
            .select(contact_index::subject_id)
            .order(contact_index::subject_id)
            .load(&mut *conn)?;
        let login = super::models::login_index(vault, contact);
        let rows = subjects::table
            .filter(
                subjects::id
                    .eq_any(&ids)
                    .or(subjects::login_index.eq(login)),
            )
            .order(subjects::oid)
            .select(SubjectRow::as_select())
            .load(&mut *conn)?;
        let mut out: Vec<Subject> = rows
            .into_iter()
            .map(|r| r.open(vault))
            .collect::<StoreResult<_>>()?;
        // The account whose login this is comes first.
        out.sort_by_key(|s| s.login != contact);
        Ok(out)
    }
}
