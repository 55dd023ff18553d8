//! [`PersonStore`] over SQL. Personal numbers, birthplace, documents, contacts, addresses
//! and the history are sealed by the vault, each bound (AAD) to its row; SNILS and INN are
//! also kept as blind indexes (the same HMAC as the login index) so sign-in by them works.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::models::{login_index, seal_profile, SubjectRow};
use super::queries::next_oid;
use super::schema::{
    audit_events, client_levels, org_members, organizations, person_history, person_items, persons,
    refresh_tokens, sessions, subjects, verifications,
};
use super::{from_db_time, to_db_time, DbConnection, SqlStore};
use crate::audit::AuditEvent;
use crate::domain::person::{
    AccountLevel, AccountStatus, Address, Confirmation, Contact, Document, DocumentKind,
    IdentityClaim, Membership, MismatchReason, Ogrn, OrgRole, Person, PersonChange, Verification,
    VerificationState,
};
use crate::domain::Subject;
use crate::store::person::{PersonItem, PersonStore, VerificationEffect};
use crate::store::{StoreError, StoreResult};
use keys::Vault;

// ---- sealing helpers ----

fn seal_json<T: Serialize>(vault: &Vault, v: &T, aad: &str) -> StoreResult<Vec<u8>> {
    let json = serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    vault
        .seal(&json, aad.as_bytes())
        .map_err(|e| StoreError::Sealing(e.to_string()))
}

fn open_json<T: DeserializeOwned>(vault: &Vault, sealed: &[u8], aad: &str) -> StoreResult<T> {
    let plain = vault
        .open(sealed, aad.as_bytes())
        .map_err(|e| StoreError::Sealing(format!("{aad}: {e}")))?;
    serde_json::from_slice(plain.expose()).map_err(|e| StoreError::Corrupt(format!("{aad}: {e}")))
}

fn data_aad(subject_id: &str) -> String {
    format!("persons.data:{subject_id}")
}
fn item_aad(id: &str) -> String {
    format!("person_items:{id}")
}
fn history_aad(subject_id: &str) -> String {
    format!("person_history:{subject_id}")
}
fn claim_aad(id: &str) -> String {
    format!("verifications.claim:{id}")
}

/// The sealed part of a `persons` row, versioned.
#[derive(Serialize, Deserialize, Default, Clone)]
struct PersonDataV1 {
    snils: Option<String>,
    inn: Option<String>,
    birth_place: Option<String>,
    citizenship: Option<String>,
    confirmation: Option<Confirmation>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum DbPersonData {
    #[serde(rename = "1")]
    V1(PersonDataV1),
}

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

/// The sealed body of a history row.
#[derive(Serialize, Deserialize)]
struct DbChange {
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

// ---- rows ----

#[derive(Queryable, Selectable)]
#[diesel(table_name = persons)]
struct PersonRow {
    account_level: String,
    status: String,
    data_sealed: Vec<u8>,
    updated_at: chrono::NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = person_items)]
struct ItemRow {
    id: String,
    data_sealed: Vec<u8>,
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

// ---- helpers on a connection ----

/// The subject a SNILS/INN blind index names (used by sign-in through `find_subject_by_login`).
pub(super) fn subject_by_identifier_index(
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

/// The person row of a subject, created (simplified, active, nothing recorded) if missing.
/// `NotFound` if the subject does not exist.
fn ensure_person(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<(PersonRow, PersonDataV1)> {
    if let Some(row) = persons::table
        .find(subject_id)
        .select(PersonRow::as_select())
        .get_result(c)
        .optional()?
    {
        let DbPersonData::V1(data) = open_json(vault, &row.data_sealed, &data_aad(subject_id))?;
        return Ok((row, data));
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

fn save_data(
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

fn append_history(
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

fn change(
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

fn audit(c: &mut DbConnection, e: &AuditEvent) -> StoreResult<()> {
    let row = super::models::NewAuditEvent::try_from(e)?;
    diesel::insert_into(audit_events::table)
        .values(&row)
        .execute(c)?;
    Ok(())
}

fn load_items(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
) -> StoreResult<Vec<PersonItem>> {
    let rows = person_items::table
        .filter(person_items::subject_id.eq(subject_id))
        .order((person_items::created_at, person_items::id))
        .select(ItemRow::as_select())
        .load(c)?;
    rows.into_iter()
        .map(|r| {
            let DbItem::V1 { item } = open_json(vault, &r.data_sealed, &item_aad(&r.id))?;
            Ok(item.into())
        })
        .collect()
}

fn put_item_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    item: &PersonItem,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    ensure_person(c, vault, subject_id, now)?;
    let id = item.id();
    let sealed = seal_json(vault, &DbItem::V1 { item: item.into() }, &item_aad(id))?;
    let existing = person_items::table
        .find(id)
        .filter(person_items::subject_id.eq(subject_id))
        .select(ItemRow::as_select())
        .get_result(c)
        .optional()?;
    let before = match existing {
        Some(r) => {
            let DbItem::V1 { item: old } = open_json(vault, &r.data_sealed, &item_aad(&r.id))?;
            Some(item_json(&old.into()))
        }
        None => None,
    };
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

fn memberships_on(c: &mut DbConnection, subject_id: &str) -> StoreResult<Vec<Membership>> {
    let rows: Vec<(i64, String, chrono::NaiveDateTime)> = org_members::table
        .filter(org_members::subject_id.eq(subject_id))
        .order(org_members::since)
        .select((org_members::org_oid, org_members::role, org_members::since))
        .load(c)?;
    let mut out = Vec::new();
    for (oid, role, since) in rows {
        let (ogrn, name): (String, String) = organizations::table
            .find(oid)
            .select((organizations::ogrn, organizations::name))
            .get_result(c)?;
        out.push(Membership {
            org_oid: oid,
            ogrn: Ogrn::parse(&ogrn)
                .map_err(|_| StoreError::Corrupt(format!("org {oid}: ogrn")))?,
            name,
            role: OrgRole::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("org {oid}: role {role}")))?,
            since: from_db_time(since),
        });
    }
    Ok(out)
}

fn person_on(c: &mut DbConnection, vault: &Vault, subject_id: &str) -> StoreResult<Option<Person>> {
    let created: Option<chrono::NaiveDateTime> = subjects::table
        .find(subject_id)
        .select(subjects::updated_at)
        .get_result(c)
        .optional()?;
    let Some(created) = created else {
        return Ok(None);
    };
    let mut p = Person::new(subject_id, from_db_time(created));
    if let Some(row) = persons::table
        .find(subject_id)
        .select(PersonRow::as_select())
        .get_result(c)
        .optional()?
    {
        let DbPersonData::V1(data) = open_json(vault, &row.data_sealed, &data_aad(subject_id))?;
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

impl PersonStore for SqlStore {
    fn find_person(&self, subject_id: &str) -> StoreResult<Option<Person>> {
        if subject_id.contains('\0') {
            return Ok(None);
        }
        let vault = self.vault()?;
        person_on(&mut *self.conn()?, vault, subject_id)
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
        let person = person_on(&mut conn, vault, &subject.id)?
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
        let now = event.at;
        self.transaction(|c| {
            let (row, _) = ensure_person(c, vault, subject_id, now)?;
            if row.status == status.as_str() {
                return Ok(false);
            }
            diesel::update(persons::table.find(subject_id))
                .set((
                    persons::status.eq(status.as_str()),
                    persons::updated_at.eq(to_db_time(now)),
                ))
                .execute(c)?;
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
            append_history(
                c,
                vault,
                subject_id,
                &change(
                    now,
                    "status",
                    "changed",
                    None,
                    Some(serde_json::json!(row.status)),
                    Some(serde_json::json!(status.as_str())),
                ),
            )?;
            audit(c, event)?;
            Ok(true)
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
        let now = event.at;
        self.transaction(|c| {
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
            append_history(
                c,
                vault,
                subject_id,
                &change(
                    now,
                    "level",
                    "changed",
                    None,
                    Some(serde_json::json!(row.account_level)),
                    Some(
                        serde_json::json!({"level": level.as_str(), "confirmation": confirmation}),
                    ),
                ),
            )?;
            audit(c, event)
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
        let now = event.at;
        self.transaction(|c| {
            set_identifiers_on(c, vault, subject_id, snils, inn, birth_place, now)?;
            audit(c, event)
        })
    }

    fn put_item(&self, subject_id: &str, item: &PersonItem, event: &AuditEvent) -> StoreResult<()> {
        let vault = self.vault()?;
        self.transaction(|c| {
            put_item_on(c, vault, subject_id, item, event.at)?;
            audit(c, event)
        })
    }

    fn remove_item(
        &self,
        subject_id: &str,
        item_id: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let vault = self.vault()?;
        let now = event.at;
        self.transaction(|c| {
            let Some(r) = person_items::table
                .find(item_id)
                .filter(person_items::subject_id.eq(subject_id))
                .select(ItemRow::as_select())
                .get_result(c)
                .optional()?
            else {
                return Ok(false);
            };
            let DbItem::V1 { item } = open_json(vault, &r.data_sealed, &item_aad(&r.id))?;
            let item: PersonItem = item.into();
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
            audit(c, event)?;
            Ok(true)
        })
    }

    fn person_history(&self, subject_id: &str) -> StoreResult<Vec<PersonChange>> {
        let vault = self.vault()?;
        let rows = person_history::table
            .filter(person_history::subject_id.eq(subject_id))
            .order(person_history::id)
            .select(HistoryRow::as_select())
            .load(&mut *self.conn()?)?;
        rows.into_iter()
            .map(|r| {
                let body: DbChange =
                    open_json(vault, &r.change_sealed, &history_aad(&r.subject_id))?;
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

    fn add_membership(
        &self,
        subject_id: &str,
        ogrn: &Ogrn,
        name: &str,
        role: OrgRole,
        event: &AuditEvent,
    ) -> StoreResult<i64> {
        let vault = self.vault()?;
        let now = event.at;
        self.transaction(|c| {
            ensure_person(c, vault, subject_id, now)?;
            let existing: Option<i64> = organizations::table
                .filter(organizations::ogrn.eq(ogrn.as_str()))
                .select(organizations::oid)
                .first(c)
                .optional()?;
            let oid = match existing {
                Some(o) => o,
                None => {
                    let o = next_oid(c)?;
                    diesel::insert_into(organizations::table)
                        .values((
                            organizations::oid.eq(o),
                            organizations::ogrn.eq(ogrn.as_str()),
                            organizations::name.eq(name),
                            organizations::created_at.eq(to_db_time(now)),
                        ))
                        .execute(c)?;
                    o
                }
            };
            let n = diesel::update(org_members::table.find((subject_id, oid)))
                .set(org_members::role.eq(role.as_str()))
                .execute(c)?;
            if n == 0 {
                diesel::insert_into(org_members::table)
                    .values((
                        org_members::subject_id.eq(subject_id),
                        org_members::org_oid.eq(oid),
                        org_members::role.eq(role.as_str()),
                        org_members::since.eq(to_db_time(now)),
                    ))
                    .execute(c)?;
            }
            append_history(
                c,
                vault,
                subject_id,
                &change(
                    now,
                    "organization",
                    if n == 0 { "added" } else { "changed" },
                    Some(&oid.to_string()),
                    None,
                    Some(serde_json::json!({"ogrn": ogrn.as_str(), "name": name, "role": role.as_str()})),
                ),
            )?;
            audit(c, event)?;
            Ok(oid)
        })
    }

    fn memberships(&self, subject_id: &str) -> StoreResult<Vec<Membership>> {
        memberships_on(&mut *self.conn()?, subject_id)
    }

    fn insert_verification(&self, v: &Verification, event: &AuditEvent) -> StoreResult<()> {
        let vault = self.vault()?;
        self.transaction(|c| {
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
            audit(c, event)
        })
    }

    fn find_verification(&self, id: &str) -> StoreResult<Option<Verification>> {
        let vault = self.vault()?;
        verifications::table
            .find(id)
            .select(VerificationRow::as_select())
            .get_result(&mut *self.conn()?)
            .optional()?
            .map(|r| r.open(vault))
            .transpose()
    }

    fn latest_verification(&self, subject_id: &str) -> StoreResult<Option<Verification>> {
        let vault = self.vault()?;
        verifications::table
            .filter(verifications::subject_id.eq(subject_id))
            .order((verifications::created_at.desc(), verifications::id.desc()))
            .select(VerificationRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?
            .map(|r| r.open(vault))
            .transpose()
    }

    fn due_verifications(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Verification>> {
        let vault = self.vault()?;
        let rows = verifications::table
            .filter(verifications::state.eq("pending"))
            .filter(verifications::next_attempt_at.le(to_db_time(now)))
            .order(verifications::next_attempt_at)
            .limit(limit.max(0))
            .select(VerificationRow::as_select())
            .load(&mut *self.conn()?)?;
        rows.into_iter().map(|r| r.open(vault)).collect()
    }

    fn update_pending_verification(&self, v: &Verification) -> StoreResult<bool> {
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
        .execute(&mut *self.conn()?)?;
        Ok(n > 0)
    }

    fn finish_verification(
        &self,
        v: &Verification,
        effect: &VerificationEffect,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let vault = self.vault()?;
        let now = v.updated_at;
        self.transaction(|c| {
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
            audit(c, event)?;
            Ok(true)
        })
    }

    fn client_min_level(&self, client_id: &str) -> StoreResult<Option<AccountLevel>> {
        if client_id.contains('\0') {
            return Ok(None);
        }
        let l: Option<String> = client_levels::table
            .find(client_id)
            .select(client_levels::min_account_level)
            .get_result(&mut *self.conn()?)
            .optional()?;
        l.map(|l| {
            AccountLevel::parse(&l)
                .ok_or_else(|| StoreError::Corrupt(format!("client {client_id}: level {l}")))
        })
        .transpose()
    }

    fn set_client_min_level(
        &self,
        client_id: &str,
        level: Option<AccountLevel>,
    ) -> StoreResult<()> {
        self.transaction(|c| {
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
        })
    }
}

fn set_identifiers_on(
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
        let r = person_items::table
            .find(&id)
            .select(ItemRow::as_select())
            .get_result(c)?;
        let DbItem::V1 { item } = open_json(vault, &r.data_sealed, &item_aad(&r.id))?;
        diesel::delete(person_items::table.find(&id)).execute(c)?;
        append_history(
            c,
            vault,
            sid,
            &change(
                now,
                "document",
                "removed",
                Some(&id),
                Some(item_json(&item.into())),
                None,
            ),
        )?;
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
