//! Account status and level, and the minimum level a client requires.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::history::{append_history, change};
use super::record::{ensure_person, save_data};
use crate::domain::person::{AccountLevel, AccountStatus, Confirmation};
use crate::store::sql::schema::{client_levels, persons, refresh_tokens, sessions};
use crate::store::sql::{to_db_time, DbConnection};
use crate::store::{StoreError, StoreResult};
use keys::Vault;

/// Sets the status; blocking ends the subject's sessions and revokes its refresh tokens.
/// False if the status was already this one.
pub(super) fn set_status_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    status: AccountStatus,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let (row, _) = ensure_person(c, vault, subject_id, now)?;
    if row.status == status.as_str() {
        return Ok(false);
    }
    write_status(c, subject_id, status, now)?;
    if status == AccountStatus::Blocked {
        let at = to_db_time(now);
        diesel::update(
            sessions::table
                .filter(sessions::subject_id.eq(subject_id))
                .filter(sessions::ended_at.is_null()),
        )
        .set(sessions::ended_at.eq(Some(at)))
        .execute(c)?;
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::subject_id.eq(subject_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(Some(at)))
        .execute(c)?;
    }
    let (before, after) = (
        serde_json::json!(row.status),
        serde_json::json!(status.as_str()),
    );
    record_account_change(c, vault, subject_id, now, "status", before, after)?;
    Ok(true)
}

/// Writes the status column of a person row.
pub(in crate::store::sql) fn write_status(
    c: &mut DbConnection,
    subject_id: &str,
    status: AccountStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::update(persons::table.find(subject_id))
        .set((
            persons::status.eq(status.as_str()),
            persons::updated_at.eq(to_db_time(now)),
        ))
        .execute(c)?;
    Ok(())
}

/// Records in the history that the account's `field` (`status`, `level`) changed.
pub(in crate::store::sql) fn record_account_change(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    now: DateTime<Utc>,
    field: &str,
    before: serde_json::Value,
    after: serde_json::Value,
) -> StoreResult<()> {
    append_history(
        c,
        vault,
        subject_id,
        &change(now, field, "changed", None, Some(before), Some(after)),
    )
}

/// Sets the level, recording who confirmed the identity if given.
pub(super) fn set_level_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    level: AccountLevel,
    confirmation: Option<&Confirmation>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (row, mut data) = ensure_person(c, vault, subject_id, now)?;
    if let Some(conf) = confirmation {
        data.confirmation = Some(conf.clone());
        save_data(c, vault, subject_id, &data, now)?;
    }
    diesel::update(persons::table.find(subject_id))
        .set((
            persons::account_level.eq(level.as_str()),
            persons::updated_at.eq(to_db_time(now)),
        ))
        .execute(c)?;
    let before = serde_json::json!(row.account_level);
    let after = serde_json::json!({"level": level.as_str(), "confirmation": confirmation});
    record_account_change(c, vault, subject_id, now, "level", before, after)
}

pub(super) fn client_min_level_on(
    c: &mut DbConnection,
    client_id: &str,
) -> StoreResult<Option<AccountLevel>> {
    let l: Option<String> = client_levels::table
        .find(client_id)
        .select(client_levels::min_account_level)
        .get_result(c)
        .optional()?;
    min_level(client_id, l)
}

/// A client's stored minimum level, parsed.
pub(crate) fn min_level(client_id: &str, l: Option<String>) -> StoreResult<Option<AccountLevel>> {
    l.map(|l| {
        AccountLevel::parse(&l)
            .ok_or_else(|| StoreError::Corrupt(format!("client {client_id}: level {l}")))
    })
    .transpose()
}

pub(super) fn set_client_min_level_on(
    c: &mut DbConnection,
    client_id: &str,
    level: Option<AccountLevel>,
) -> StoreResult<()> {
    diesel::delete(client_levels::table.find(client_id)).execute(c)?;
    if let Some(l) = level {
        diesel::insert_into(client_levels::table)
            .values((
                client_levels::client_id.eq(client_id),
                client_levels::min_account_level.eq(l.as_str()),
            ))
            .execute(c)?;
    }
    Ok(())
}
