//! Documents, contacts and addresses (`person_items`), each sealed on its own row; every
//! change goes to the history.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::history::{append_history, change};
use super::record::ensure_person;
use super::seal::{item_aad, open_json, seal_json};
use crate::domain::person::{Address, Contact, Document};
use crate::store::person::PersonItem;
use crate::store::sql::schema::person_items;
use crate::store::sql::{to_db_time, DbConnection};
use crate::store::StoreResult;
use keys::Vault;

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum DbItem {
    #[serde(rename = "1")]
    V1 { item: DbItemBody },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "collection", rename_all = "snake_case")]
enum DbItemBody {
    Document(Document),
    Contact(Contact),
    Address(Address),
}

impl From<&PersonItem> for DbItemBody {
    fn from(i: &PersonItem) -> Self {
        match i {
            PersonItem::Document(d) => Self::Document(d.clone()),
            PersonItem::Contact(c) => Self::Contact(c.clone()),
            PersonItem::Address(a) => Self::Address(a.clone()),
        }
    }
}

impl From<DbItemBody> for PersonItem {
    fn from(b: DbItemBody) -> Self {
        match b {
            DbItemBody::Document(d) => Self::Document(d),
            DbItemBody::Contact(c) => Self::Contact(c),
            DbItemBody::Address(a) => Self::Address(a),
        }
    }
}

fn item_kind(i: &PersonItem) -> &'static str {
    match i {
        PersonItem::Document(d) => d.kind.as_str(),
        PersonItem::Contact(c) => c.kind.as_str(),
        PersonItem::Address(a) => a.kind.as_str(),
    }
}

fn item_json(i: &PersonItem) -> serde_json::Value {
    let v = match i {
        PersonItem::Document(d) => serde_json::to_value(d),
        PersonItem::Contact(c) => serde_json::to_value(c),
        PersonItem::Address(a) => serde_json::to_value(a),
    };
    v.unwrap_or(serde_json::Value::Null)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = person_items)]
struct ItemRow {
    id: String,
    data_sealed: Vec<u8>,
}

impl ItemRow {
    fn open(&self, vault: &Vault) -> StoreResult<PersonItem> {
        let DbItem::V1 { item } = open_json(vault, &self.data_sealed, &item_aad(&self.id))?;
        Ok(item.into())
    }
}

/// The item `id` of the subject, opened.
fn find_item(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    id: &str,
) -> StoreResult<Option<PersonItem>> {
    person_items::table
        .find(id)
        .filter(person_items::subject_id.eq(subject_id))
        .select(ItemRow::as_select())
        .get_result(c)
        .optional()?
        .map(|r| r.open(vault))
        .transpose()
}

pub(super) fn load_items(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
) -> StoreResult<Vec<PersonItem>> {
    let rows = person_items::table
        .filter(person_items::subject_id.eq(subject_id))
        .order((person_items::created_at, person_items::id))
        .select(ItemRow::as_select())
        .load(c)?;
    rows.iter().map(|r| r.open(vault)).collect()
}

pub(super) fn put_item_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    item: &PersonItem,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    ensure_person(c, vault, subject_id, now)?;
    let id = item.id();
    let sealed = seal_json(vault, &DbItem::V1 { item: item.into() }, &item_aad(id))?;
    let before = find_item(c, vault, subject_id, id)?.map(|old| item_json(&old));
    if before.is_some() {
        diesel::update(person_items::table.find(id))
            .set((
                person_items::kind.eq(item_kind(item)),
                person_items::data_sealed.eq(&sealed),
                person_items::updated_at.eq(to_db_time(now)),
            ))
            .execute(c)?;
    } else {
        diesel::insert_into(person_items::table)
            .values((
                person_items::id.eq(id),
                person_items::subject_id.eq(subject_id),
                person_items::collection.eq(item.collection()),
                person_items::kind.eq(item_kind(item)),
                person_items::data_sealed.eq(&sealed),
                person_items::created_at.eq(to_db_time(now)),
                person_items::updated_at.eq(to_db_time(now)),
            ))
            .execute(c)?;
    }
    let action = if before.is_some() { "changed" } else { "added" };
    append_history(
        c,
        vault,
        subject_id,
        &change(
            now,
            item.collection(),
            action,
            Some(id),
            before,
            Some(item_json(item)),
        ),
    )
}

/// Removes one item of the subject, with its history entry; false if there is none.
pub(super) fn remove_item_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    item_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let Some(item) = find_item(c, vault, subject_id, item_id)? else {
        return Ok(false);
    };
    diesel::delete(person_items::table.find(item_id)).execute(c)?;
    append_history(
        c,
        vault,
        subject_id,
        &change(
            now,
            item.collection(),
            "removed",
            Some(item_id),
            Some(item_json(&item)),
            None,
        ),
    )?;
    Ok(true)
}
