//! The dated history of a person's changes (`person_history`), old and new values sealed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::seal::{history_aad, open_json, seal_json};
use crate::domain::person::PersonChange;
use crate::store::sql::schema::person_history;
use crate::store::sql::{from_db_time, to_db_time, DbConnection};
use crate::store::StoreResult;
use keys::Vault;

/// The sealed body of a history row.
#[derive(Serialize, Deserialize)]
struct DbChange {
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = person_history)]
struct HistoryRow {
    subject_id: String,
    at: chrono::NaiveDateTime,
    collection: String,
    action: String,
    item_id: Option<String>,
    change_sealed: Vec<u8>,
}

pub(in crate::store::sql) fn append_history(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    ch: &PersonChange,
) -> StoreResult<()> {
    let body = DbChange {
        before: ch.before.clone(),
        after: ch.after.clone(),
    };
    diesel::insert_into(person_history::table)
        .values((
            person_history::subject_id.eq(subject_id),
            person_history::at.eq(to_db_time(ch.at)),
            person_history::collection.eq(&ch.collection),
            person_history::action.eq(&ch.action),
            person_history::item_id.eq(ch.item_id.as_deref()),
            person_history::change_sealed.eq(seal_json(vault, &body, &history_aad(subject_id))?),
        ))
        .execute(c)?;
    Ok(())
}

pub(in crate::store::sql) fn change(
    at: DateTime<Utc>,
    collection: &str,
    action: &str,
    item_id: Option<&str>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> PersonChange {
    PersonChange {
        at,
        collection: collection.into(),
        action: action.into(),
        item_id: item_id.map(str::to_string),
        before,
        after,
    }
}

pub(super) fn history_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
) -> StoreResult<Vec<PersonChange>> {
    let rows = person_history::table
        .filter(person_history::subject_id.eq(subject_id))
        .order(person_history::id)
        .select(HistoryRow::as_select())
        .load(c)?;
    rows.into_iter()
        .map(|r| {
            let body: DbChange = open_json(vault, &r.change_sealed, &history_aad(&r.subject_id))?;
            Ok(PersonChange {
                at: from_db_time(r.at),
                collection: r.collection,
                action: r.action,
                item_id: r.item_id,
                before: body.before,
                after: body.after,
            })
        })
        .collect()
}
