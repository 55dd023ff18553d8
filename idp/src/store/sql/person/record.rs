//! The `persons` row: level, status and the sealed identifiers (SNILS, INN, birthplace) with
//! their blind indexes; reading a whole person.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::history::{append_history, change};
use super::items::load_items;
use super::organisations::memberships_on;
use super::seal::{data_aad, open_json, seal_json};
use crate::domain::person::{AccountLevel, AccountStatus, Confirmation, Person};
use crate::store::person::PersonItem;
use crate::store::sql::models::{login_index, SubjectRow};
use crate::store::sql::schema::{persons, subjects};
use crate::store::sql::{from_db_time, to_db_time, DbConnection};
use crate::store::{StoreError, StoreResult};
use keys::Vault;

/// The sealed part of a `persons` row, versioned.
#[derive(Serialize, Deserialize, Default, Clone)]
pub(in crate::store::sql) struct PersonDataV1 {
    pub(super) snils: Option<String>,
    pub(super) inn: Option<String>,
    pub(super) birth_place: Option<String>,
    pub(super) citizenship: Option<String>,
    pub(super) confirmation: Option<Confirmation>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum DbPersonData {
    #[serde(rename = "1")]
    V1(PersonDataV1),
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = persons)]
pub(in crate::store::sql) struct PersonRow {
    pub(super) account_level: String,
    pub(super) status: String,
    pub(super) data_sealed: Vec<u8>,
    pub(super) updated_at: chrono::NaiveDateTime,
}

/// The subject a SNILS/INN blind index names (used by sign-in through `find_subject_by_login`).
pub(in crate::store::sql) fn subject_by_identifier_index(
    c: &mut DbConnection,
    index: &str,
) -> StoreResult<Option<SubjectRow>> {
    let sid: Option<String> = persons::table
        .filter(
            persons::snils_index
                .eq(index)
                .or(persons::inn_index.eq(index)),
        )
        .select(persons::subject_id)
        .first(c)
        .optional()?;
    let Some(sid) = sid else {
        return Ok(None);
    };
    Ok(subjects::table
        .find(sid)
        .select(SubjectRow::as_select())
        .get_result(c)
        .optional()?)
}

fn subject_exists(c: &mut DbConnection, subject_id: &str) -> StoreResult<bool> {
    let n: i64 = subjects::table.find(subject_id).count().get_result(c)?;
    Ok(n > 0)
}

/// The person row of a subject with its sealed data opened, if there is one.
fn person_row(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
) -> StoreResult<Option<(PersonRow, PersonDataV1)>> {
    let Some(row) = persons::table
        .find(subject_id)
        .select(PersonRow::as_select())
        .get_result(c)
        .optional()?
    else {
        return Ok(None);
    };
    let DbPersonData::V1(data) = open_json(vault, &row.data_sealed, &data_aad(subject_id))?;
    Ok(Some((row, data)))
}

/// The person row of a subject, created (simplified, active, nothing recorded) if missing.
/// `NotFound` if the subject does not exist.
pub(in crate::store::sql) fn ensure_person(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<(PersonRow, PersonDataV1)> {
    if let Some(found) = person_row(c, vault, subject_id)? {
        return Ok(found);
    }
    if !subject_exists(c, subject_id)? {
        return Err(StoreError::NotFound);
    }
    let data = PersonDataV1::default();
    let sealed = seal_json(
        vault,
        &DbPersonData::V1(data.clone()),
        &data_aad(subject_id),
    )?;
    diesel::insert_into(persons::table)
        .values((
            persons::subject_id.eq(subject_id),
            persons::account_level.eq(AccountLevel::Simplified.as_str()),
            persons::status.eq(AccountStatus::Active.as_str()),
            persons::snils_index.eq(None::<String>),
            persons::inn_index.eq(None::<String>),
            persons::data_sealed.eq(&sealed),
            persons::updated_at.eq(to_db_time(now)),
        ))
        .execute(c)?;
    Ok((
        PersonRow {
            account_level: AccountLevel::Simplified.as_str().into(),
            status: AccountStatus::Active.as_str().into(),
            data_sealed: sealed,
            updated_at: to_db_time(now),
        },
        data,
    ))
}

pub(super) fn save_data(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    data: &PersonDataV1,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sealed = seal_json(
        vault,
        &DbPersonData::V1(data.clone()),
        &data_aad(subject_id),
    )?;
    let snils_index = data.snils.as_deref().map(|s| login_index(vault, s));
    let inn_index = data.inn.as_deref().map(|s| login_index(vault, s));
    diesel::update(persons::table.find(subject_id))
        .set((
            persons::data_sealed.eq(sealed),
            persons::snils_index.eq(snils_index),
            persons::inn_index.eq(inn_index),
            persons::updated_at.eq(to_db_time(now)),
        ))
        .execute(c)?;
    Ok(())
}

pub(super) fn person_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
) -> StoreResult<Option<Person>> {
    let created: Option<chrono::NaiveDateTime> = subjects::table
        .find(subject_id)
        .select(subjects::updated_at)
        .get_result(c)
        .optional()?;
    let Some(created) = created else {
        return Ok(None);
    };
    let mut p = Person::new(subject_id, from_db_time(created));
    if let Some((row, data)) = person_row(c, vault, subject_id)? {
        p.level = AccountLevel::parse(&row.account_level)
            .ok_or_else(|| StoreError::Corrupt(format!("person {subject_id}: level")))?;
        p.status = AccountStatus::parse(&row.status)
            .ok_or_else(|| StoreError::Corrupt(format!("person {subject_id}: status")))?;
        p.snils = data.snils;
        p.inn = data.inn;
        p.birth_place = data.birth_place;
        p.citizenship = data.citizenship;
        p.confirmation = data.confirmation;
        p.updated_at = from_db_time(row.updated_at);
    }
    for item in load_items(c, vault, subject_id)? {
        match item {
            PersonItem::Document(d) => p.documents.push(d),
            PersonItem::Contact(x) => p.contacts.push(x),
            PersonItem::Address(a) => p.addresses.push(a),
        }
    }
    p.organizations = memberships_on(c, subject_id)?;
    Ok(Some(p))
}

pub(super) fn set_identifiers_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    snils: Option<&str>,
    inn: Option<&str>,
    birth_place: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let (_, mut data) = ensure_person(c, vault, subject_id, now)?;
    let mut changed = Vec::new();
    if let Some(s) = snils {
        if data.snils.as_deref() != Some(s) {
            data.snils = Some(s.to_string());
            changed.push("snils");
        }
    }
    if let Some(i) = inn {
        if data.inn.as_deref() != Some(i) {
            data.inn = Some(i.to_string());
            changed.push("inn");
        }
    }
    if let Some(b) = birth_place {
        if data.birth_place.as_deref() != Some(b) {
            data.birth_place = Some(b.to_string());
            changed.push("birth_place");
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    // A unique index violation (the number is another person's) becomes `Conflict`.
    save_data(c, vault, subject_id, &data, now)?;
    for what in changed {
        let value = match what {
            "snils" => data.snils.clone(),
            "inn" => data.inn.clone(),
            _ => data.birth_place.clone(),
        };
        append_history(
            c,
            vault,
            subject_id,
            &change(
                now,
                what,
                "changed",
                None,
                None,
                Some(serde_json::json!(value)),
            ),
        )?;
    }
    Ok(())
}
