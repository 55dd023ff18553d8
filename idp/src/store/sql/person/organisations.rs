//! Organisations (`organizations`) and a person's memberships (`org_members`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::history::{append_history, change};
use super::record::ensure_person;
use crate::domain::person::{Membership, Ogrn, OrgRole};
use crate::store::sql::queries::next_oid;
use crate::store::sql::schema::{org_members, organizations};
use crate::store::sql::{from_db_time, to_db_time, DbConnection};
use crate::store::{StoreError, StoreResult};
use keys::Vault;

pub(super) fn memberships_on(
    c: &mut DbConnection,
    subject_id: &str,
) -> StoreResult<Vec<Membership>> {
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

/// Adds the subject to the organisation with this OGRN (created on first use), or changes
/// the role; returns the organisation's oid.
pub(super) fn add_membership_on(
    c: &mut DbConnection,
    vault: &Vault,
    subject_id: &str,
    ogrn: &Ogrn,
    name: &str,
    role: OrgRole,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
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
    Ok(oid)
}
