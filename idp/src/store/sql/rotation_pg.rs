//! A refresh batch on Postgres as one statement, run outside any transaction: it spends the
//! tokens presented, stores their successors and the families' first tokens, and returns
//! what it spent. One statement is atomic on its own, so a batch is one round trip and one
//! commit, where BEGIN, UPDATE, INSERT and COMMIT were four.
//!
//! The spend is the UPDATE of a data-modifying `WITH`; the INSERT reads its `RETURNING`
//! rows, so each successor is built by Postgres from the row it replaces (this is why a
//! [`Successor`](crate::store::Successor) is data, not code). The requests and the new rows
//! are passed as one array per column, so the statement's text does not depend on the batch
//! size: it has a type of its own as diesel's cache key and is prepared once per connection.
//!
//! The UPDATE finds its rows by `token_hash = ANY(hashes)` and reads each row's request by
//! its position in the array (`array_position`), rather than joining the rows to the
//! requests: a prepared statement keeps the plan made at its first uses, and with a join
//! that plan, made while `refresh_tokens` was small (a new deployment, a fresh benchmark),
//! was a sequential scan of the table, kept as the table grew (measured: 870 rotations/s
//! instead of 6,900); `= ANY` on the primary key is planned as an index scan from the start.
//! A hash is therefore requested at most once per batch (see `write_batch_pg`).

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::models::{to_json, NewRefreshToken};
use super::schema::refresh_tokens;
use crate::store::{StoreResult, Successor, SuccessorScopes};

/// `refresh_tokens`' columns in the order of its rows (`RefreshTokenRow`).
const COLUMNS: &str = "token_hash, family_id, client_id, subject_id, scopes, sid, auth_time, \
     acr, amr, created_at, expires_at, used_at, revoked_at";

/// The tokens to spend, column by column, in the order of their requests; no hash twice.
#[derive(Default)]
pub(super) struct SpendRequests<'a> {
    token_hash: Vec<&'a str>,
    client_id: Vec<&'a str>,
    next_hash: Vec<&'a str>,
    next_created: Vec<NaiveDateTime>,
    next_expires: Vec<NaiveDateTime>,
    /// JSON array of the scopes the spent token must hold (`None`: no condition).
    asked: Vec<Option<String>>,
    /// JSON array of the successor's scopes (`None`: the spent token's).
    narrowed: Vec<Option<String>>,
}

impl<'a> SpendRequests<'a> {
    /// Adds a request; its position (from 1) is the `n` the statement returns with the row
    /// it spent. The caller requests a hash only once.
    pub(super) fn push(
        &mut self,
        token_hash: &'a str,
        client_id: &'a str,
        successor: &'a Successor,
    ) -> StoreResult<()> {
        let (asked, narrowed) = match &successor.scopes {
            SuccessorScopes::Same => (None, None),
            SuccessorScopes::Within(scopes) => (Some(to_json(scopes)?), None),
            SuccessorScopes::Narrowed(scopes) => {
                let json = to_json(scopes)?;
                (Some(json.clone()), Some(json))
            }
        };
        self.token_hash.push(token_hash);
        self.client_id.push(client_id);
        self.next_hash.push(&successor.token_hash);
        self.next_created
            .push(super::to_db_time(successor.created_at));
        self.next_expires
            .push(super::to_db_time(successor.expires_at));
        self.asked.push(asked);
        self.narrowed.push(narrowed);
        Ok(())
    }
}

/// New rows to store as they are (a family's first token), column by column.
#[derive(Default)]
pub(super) struct NewRows<'a> {
    token_hash: Vec<&'a str>,
    family_id: Vec<&'a str>,
    client_id: Vec<&'a str>,
    subject_id: Vec<&'a str>,
    scopes: Vec<&'a str>,
    sid: Vec<Option<&'a str>>,
    auth_time: Vec<NaiveDateTime>,
    acr: Vec<&'a str>,
    amr: Vec<&'a str>,
    created_at: Vec<NaiveDateTime>,
    expires_at: Vec<NaiveDateTime>,
    used_at: Vec<Option<NaiveDateTime>>,
    revoked_at: Vec<Option<NaiveDateTime>>,
}

impl<'a> NewRows<'a> {
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

/// The whole batch: spend `requests` at `at` (each only if presented by its own client,
/// unused, unrevoked, unexpired, holding the scopes asked for, and while its subject and its
/// subject's consent to the client are there), store each spent token's successor and the
/// `new` rows whose subject and client exist. Returns the spent rows (after the spend), each
/// with its request's position, and the `new` rows stored, with position 0.
pub(super) struct SpendAndStore<'a> {
    pub(super) requests: SpendRequests<'a>,
    pub(super) at: NaiveDateTime,
    pub(super) new: NewRows<'a>,
}

/// The statement's cache key: the same for every batch.
pub(super) struct SpendAndStoreQuery;

impl QueryId for SpendAndStore<'_> {
    type QueryId = SpendAndStoreQuery;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for SpendAndStore<'_> {
    type SqlType = (refresh_tokens::SqlType, Integer);
}

impl<Conn> RunQueryDsl<Conn> for SpendAndStore<'_> {}

/// Binds one item of a list (`UNNEST(…)`, `VALUES (…)`), after a comma unless `first`.
pub(super) fn bind_list<'b, T, U>(
    out: &mut AstPass<'_, 'b, Pg>,
    first: bool,
    values: &'b U,
) -> QueryResult<()>
where
    U: diesel::serialize::ToSql<T, Pg>,
    Pg: diesel::sql_types::HasSqlType<T>,
    T: diesel::sql_types::SqlType,
{
    if !first {
        out.push_sql(", ");
    }
    out.push_bind_param::<T, U>(values)
}

impl QueryFragment<Pg> for SpendAndStore<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let r = &self.requests;
        // The request of the row at hand: its position in the hashes.
        let position = |out: &mut AstPass<'_, 'b, Pg>| -> QueryResult<()> {
            out.push_sql("array_position(");
            out.push_bind_param::<Array<Text>, _>(&r.token_hash)?;
            out.push_sql(", refresh_tokens.token_hash)");
            Ok(())
        };
        out.push_sql("WITH spent AS (UPDATE refresh_tokens SET used_at = ");
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" WHERE refresh_tokens.token_hash = ANY(");
        out.push_bind_param::<Array<Text>, _>(&r.token_hash)?;
        out.push_sql(") AND refresh_tokens.client_id = (");
        out.push_bind_param::<Array<Text>, _>(&r.client_id)?;
        out.push_sql(")[");
        position(&mut out)?;
        out.push_sql(
            "] AND refresh_tokens.used_at IS NULL AND refresh_tokens.revoked_at IS NULL \
             AND refresh_tokens.expires_at > ",
        );
        out.push_bind_param::<Timestamp, _>(&self.at)?;
        out.push_sql(" AND COALESCE(refresh_tokens.scopes::jsonb @> (");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&r.asked)?;
        out.push_sql(")[");
        position(&mut out)?;
        out.push_sql("]::jsonb, TRUE) AND ");
        super::rotation::StillGranted.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING refresh_tokens.*, ");
        position(&mut out)?;
        out.push_sql(" AS n), stored AS (INSERT INTO refresh_tokens (");
        out.push_sql(COLUMNS);
        out.push_sql(") SELECT (");
        out.push_bind_param::<Array<Text>, _>(&r.next_hash)?;
        out.push_sql(")[n], family_id, client_id, subject_id, COALESCE((");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&r.narrowed)?;
        out.push_sql(")[n], scopes), sid, auth_time, acr, amr, (");
        out.push_bind_param::<Array<Timestamp>, _>(&r.next_created)?;
        out.push_sql(")[n], (");
        out.push_bind_param::<Array<Timestamp>, _>(&r.next_expires)?;
        out.push_sql(")[n], NULL, NULL FROM spent UNION ALL SELECT u.* FROM UNNEST(");
        let n = &self.new;
        bind_list::<Array<Text>, _>(&mut out, true, &n.token_hash)?;
        bind_list::<Array<Text>, _>(&mut out, false, &n.family_id)?;
        bind_list::<Array<Text>, _>(&mut out, false, &n.client_id)?;
        bind_list::<Array<Text>, _>(&mut out, false, &n.subject_id)?;
        bind_list::<Array<Text>, _>(&mut out, false, &n.scopes)?;
        bind_list::<Array<Nullable<Text>>, _>(&mut out, false, &n.sid)?;
        bind_list::<Array<Timestamp>, _>(&mut out, false, &n.auth_time)?;
        bind_list::<Array<Text>, _>(&mut out, false, &n.acr)?;
        bind_list::<Array<Text>, _>(&mut out, false, &n.amr)?;
        bind_list::<Array<Timestamp>, _>(&mut out, false, &n.created_at)?;
        bind_list::<Array<Timestamp>, _>(&mut out, false, &n.expires_at)?;
        bind_list::<Array<Nullable<Timestamp>>, _>(&mut out, false, &n.used_at)?;
        bind_list::<Array<Nullable<Timestamp>>, _>(&mut out, false, &n.revoked_at)?;
        out.push_sql(") AS u (");
        out.push_sql(COLUMNS);
        out.push_sql(
            ") WHERE EXISTS (SELECT 1 FROM subjects WHERE subjects.id = u.subject_id) \
             AND EXISTS (SELECT 1 FROM clients WHERE clients.id = u.client_id) \
             RETURNING refresh_tokens.*) SELECT ",
        );
        out.push_sql(COLUMNS);
        out.push_sql(", n FROM spent UNION ALL SELECT ");
        out.push_sql(COLUMNS);
        out.push_sql(", 0 FROM stored WHERE stored.token_hash = ANY(");
        out.push_bind_param::<Array<Text>, _>(&n.token_hash)?;
        out.push_sql(")");
        Ok(())
    }
}
