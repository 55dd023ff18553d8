//! Registry verification requests (`verifications`): a durable request/response with the
//! registry; a match raises the account to standard in the same transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::history::{append_history, change};
use super::items::{load_items, put_item_on, remove_item_on};
use super::record::{ensure_person, set_identifiers_on};
use super::seal::{claim_aad, open_json, seal_json};
use crate::domain::person::{
    AccountLevel, Document, DocumentKind, IdentityClaim, MismatchReason, Verification,
    VerificationState,
};
use crate::store::person::{PersonItem, VerificationEffect};
use crate::store::sql::models::{seal_profile, SubjectRow};
use crate::store::sql::schema::{persons, subjects, verifications};
use crate::store::sql::{from_db_time, to_db_time, DbConnection};
use crate::store::{StoreError, StoreResult};
use keys::Vault;

#[derive(Queryable, Selectable)]
#[diesel(table_name = verifications)]
struct VerificationRow {
    id: String,
    subject_id: String,
    state: String,
    reason: Option<String>,
    claim_sealed: Vec<u8>,
    registry_ref: Option<String>,
    attempts: i32,
    next_attempt_at: chrono::NaiveDateTime,
    last_error: Option<String>,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl VerificationRow {
    fn open(self, vault: &Vault) -> StoreResult<Verification> {
        let claim: IdentityClaim = open_json(vault, &self.claim_sealed, &claim_aad(&self.id))?;
        let state = match (self.state.as_str(), self.reason.as_deref()) {
            ("pending", _) => VerificationState::Pending,
            ("matched", _) => VerificationState::Matched,
            ("failed", _) => VerificationState::Failed,
            ("mismatch", Some(r)) => VerificationState::Mismatch {
                reason: MismatchReason::parse(r).ok_or_else(|| {
                    StoreError::Corrupt(format!("verification {}: reason {r}", self.id))
                })?,
            },
            (s, _) => {
                return Err(StoreError::Corrupt(format!(
                    "verification {}: state {s}",
                    self.id
                )))
            }
        };
        Ok(Verification {
            id: self.id,
            subject_id: self.subject_id,
            claim,
            state,
            registry_ref: self.registry_ref,
            attempts: self.attempts,
            next_attempt_at: from_db_time(self.next_attempt_at),
            last_error: self.last_error,
            created_at: from_db_time(self.created_at),
            updated_at: from_db_time(self.updated_at),
        })
    }
}

fn reason_of(s: &VerificationState) -> Option<&'static str> {
    match s {
        VerificationState::Mismatch { reason } => Some(reason.as_str()),
        _ => None,
    }
}

/// Stores a new request; `Conflict` if the subject already has one pending.
pub(super) fn insert_verification_on(
    c: &mut DbConnection,
    vault: &Vault,
    v: &Verification,
) -> StoreResult<()> {
    // A write first (SQLite takes the write lock up front): the person row.
    ensure_person(c, vault, &v.subject_id, v.created_at)?;
    let pending: i64 = verifications::table
        .filter(verifications::subject_id.eq(&v.subject_id))
        .filter(verifications::state.eq("pending"))
        .count()
        .get_result(c)?;
    if pending > 0 {
        return Err(StoreError::Conflict);
    }
    diesel::insert_into(verifications::table)
        .values((
            verifications::id.eq(&v.id),
            verifications::subject_id.eq(&v.subject_id),
            verifications::state.eq(v.state.as_str()),
            verifications::reason.eq(reason_of(&v.state)),
            verifications::claim_sealed.eq(seal_json(vault, &v.claim, &claim_aad(&v.id))?),
            verifications::registry_ref.eq(v.registry_ref.as_deref()),
            verifications::attempts.eq(v.attempts),
            verifications::next_attempt_at.eq(to_db_time(v.next_attempt_at)),
            verifications::last_error.eq(v.last_error.as_deref()),
            verifications::created_at.eq(to_db_time(v.created_at)),
            verifications::updated_at.eq(to_db_time(v.updated_at)),
        ))
        .execute(c)?;
    Ok(())
}

pub(super) fn find_verification_on(
    c: &mut DbConnection,
    vault: &Vault,
    id: &str,
) -> StoreResult<Option<Verification>> {
    verifications::table
        .find(id)
        .select(VerificationRow::as_select())
        .get_result(c)
        .optional()?
        .map(|r| r.open(vault))
        .transpose()
}

pub(super) fn latest_verification_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
) -> StoreResult<Option<Verification>> {
    verifications::table
        .filter(verifications::subject_id.eq(subject_id))
        .order((verifications::created_at.desc(), verifications::id.desc()))
        .select(VerificationRow::as_select())
        .first(c)
        .optional()?
        .map(|r| r.open(vault))
        .transpose()
}

pub(super) fn due_verifications_on(
    c: &mut DbConnection,
    vault: &Vault,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<Verification>> {
    let rows = verifications::table
        .filter(verifications::state.eq("pending"))
        .filter(verifications::next_attempt_at.le(to_db_time(now)))
        .order(verifications::next_attempt_at)
        .limit(limit.max(0))
        .select(VerificationRow::as_select())
        .load(c)?;
    rows.into_iter().map(|r| r.open(vault)).collect()
}

/// Records an attempt of a pending request; false if it is no longer pending.
pub(super) fn update_pending_verification_on(
    c: &mut DbConnection,
    v: &Verification,
) -> StoreResult<bool> {
    let n = diesel::update(
        verifications::table
            .find(&v.id)
            .filter(verifications::state.eq("pending")),
    )
    .set((
        verifications::registry_ref.eq(v.registry_ref.as_deref()),
        verifications::attempts.eq(v.attempts),
        verifications::next_attempt_at.eq(to_db_time(v.next_attempt_at)),
        verifications::last_error.eq(v.last_error.as_deref()),
        verifications::updated_at.eq(to_db_time(v.updated_at)),
    ))
    .execute(c)?;
    Ok(n > 0)
}

/// Stores the final state of a pending request and applies its effect; false if it was no
/// longer pending (another worker finished it).
pub(super) fn finish_verification_on(
    c: &mut DbConnection,
    vault: &Vault,
    v: &Verification,
    effect: &VerificationEffect,
) -> StoreResult<bool> {
    let now = v.updated_at;
    let n = diesel::update(
        verifications::table
            .find(&v.id)
            .filter(verifications::state.eq("pending")),
    )
    .set((
        verifications::state.eq(v.state.as_str()),
        verifications::reason.eq(reason_of(&v.state)),
        verifications::registry_ref.eq(v.registry_ref.as_deref()),
        verifications::attempts.eq(v.attempts),
        verifications::last_error.eq(v.last_error.as_deref()),
        verifications::updated_at.eq(to_db_time(now)),
    ))
    .execute(c)?;
    if n == 0 {
        return Ok(false);
    }
    if let VerificationEffect::RaiseToStandard { passport } = effect {
        raise_to_standard(c, vault, v, passport, now)?;
    }
    Ok(true)
}

/// A matched registry answer: SNILS, birthplace, the verified passport, the name and birth
/// date as the registry confirmed them, and the level raised to at least standard.
fn raise_to_standard(
    c: &mut DbConnection,
    vault: &Vault,
    v: &Verification,
    passport: &Document,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sid = &v.subject_id;
    set_identifiers_on(
        c,
        vault,
        sid,
        Some(&v.claim.snils),
        None,
        Some(&v.claim.birth_place),
        now,
    )?;
    // One passport: a new one replaces the previous (the history keeps it).
    let old: Vec<String> = load_items(c, vault, sid)?
        .into_iter()
        .filter_map(|i| match i {
            PersonItem::Document(d) if d.kind == DocumentKind::Passport && d.id != passport.id => {
                Some(d.id)
            }
            _ => None,
        })
        .collect();
    for id in old {
        remove_item_on(c, vault, sid, &id, now)?;
    }
    put_item_on(c, vault, sid, &PersonItem::Document(passport.clone()), now)?;
    // The name and birth date the registry confirmed become the profile's.
    if let Some(row) = subjects::table
        .find(sid)
        .select(SubjectRow::as_select())
        .get_result(c)
        .optional()?
    {
        let mut s = row.open(vault)?;
        s.profile.family_name = Some(v.claim.family_name.clone());
        s.profile.given_name = Some(v.claim.given_name.clone());
        s.profile.middle_name = v.claim.middle_name.clone();
        s.profile.birthdate = Some(v.claim.birth_date.format("%Y-%m-%d").to_string());
        diesel::update(subjects::table.find(sid))
            .set((
                subjects::profile_sealed.eq(seal_profile(vault, sid, &s.profile)?),
                subjects::updated_at.eq(to_db_time(now)),
            ))
            .execute(c)?;
    }
    let (row, _) = ensure_person(c, vault, sid, now)?;
    let current = AccountLevel::parse(&row.account_level).unwrap_or(AccountLevel::Simplified);
    if current < AccountLevel::Standard {
        diesel::update(persons::table.find(sid))
            .set(persons::account_level.eq(AccountLevel::Standard.as_str()))
            .execute(c)?;
        append_history(
            c,
            vault,
            sid,
            &change(
                now,
                "level",
                "changed",
                None,
                Some(serde_json::json!(current.as_str())),
                Some(serde_json::json!({"level": "standard", "by": "registry"})),
            ),
        )?;
    }
    Ok(())
}
