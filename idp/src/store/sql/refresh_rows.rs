//! The refresh batch's INSERT on Postgres, as one statement whose text does not depend on
//! the number of rows: one array per column, `UNNEST`ed into rows.
//!
//! diesel's multi-row INSERT writes one `VALUES` tuple per row, so its text changes with
//! the batch size and diesel never caches it: every batch paid a round trip to prepare it
//! before the one that runs it. This statement has thirteen parameters whatever the size,
//! a type of its own as its cache key, and is prepared once per connection.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::models::NewRefreshToken;

/// The rows to insert, column by column.
#[derive(Default)]
pub(super) struct RefreshRows<'a> {
    token_hash: Vec<&'a str>,
    family_id: Vec<&'a str>,
    client_id: Vec<&'a str>,
    subject_id: Vec<&'a str>,
    scopes: Vec<&'a str>,
    sid: Vec<Option<&'a str>>,
    auth_time: Vec<chrono::NaiveDateTime>,
    acr: Vec<&'a str>,
    amr: Vec<&'a str>,
    created_at: Vec<chrono::NaiveDateTime>,
    expires_at: Vec<chrono::NaiveDateTime>,
    used_at: Vec<Option<chrono::NaiveDateTime>>,
    revoked_at: Vec<Option<chrono::NaiveDateTime>>,
}

impl<'a> RefreshRows<'a> {
    pub(super) fn new(rows: &'a [NewRefreshToken<'a>]) -> Self {
        let mut columns = Self::default();
        for r in rows {
            columns.token_hash.push(r.token_hash);
            columns.family_id.push(r.family_id);
            columns.client_id.push(r.client_id);
            columns.subject_id.push(r.subject_id);
            columns.scopes.push(&r.scopes);
            columns.sid.push(r.sid);
            columns.auth_time.push(r.auth_time);
            columns.acr.push(r.acr);
            columns.amr.push(&r.amr);
            columns.created_at.push(r.created_at);
            columns.expires_at.push(r.expires_at);
            columns.used_at.push(r.used_at);
            columns.revoked_at.push(r.revoked_at);
        }
        columns
    }
}

/// The statement's cache key: the same for every batch.
pub(super) struct InsertRefreshRows;

impl QueryId for RefreshRows<'_> {
    type QueryId = InsertRefreshRows;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for RefreshRows<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, subject_id, scopes, \
             sid, auth_time, acr, amr, created_at, expires_at, used_at, revoked_at) \
             SELECT * FROM UNNEST(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.token_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.family_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.client_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.subject_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.scopes)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.sid)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.auth_time)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.acr)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.amr)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.used_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Timestamp>>, _>(&self.revoked_at)?;
        out.push_sql(")");
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for RefreshRows<'_> {}
