//! A sign-in's writes on Postgres as one statement, run outside any transaction: the
//! browser's previous session ended, the new session stored and its audit event appended.
//! One statement is atomic on its own (a data-modifying `WITH`), so a sign-in is one round
//! trip and one commit where BEGIN, UPDATE, INSERT, INSERT and COMMIT were five; if any
//! part fails, nothing is written.
//!
//! Every value is bound, NULLs too (without a previous session the UPDATE looks for
//! `sid = NULL`, which no row matches), so the text never varies: the statement has a type
//! of its own as diesel's cache key and is prepared once per connection. diesel's own
//! INSERT of an `Insertable` writes `DEFAULT` for a `None` and so is prepared afresh each
//! time.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Nullable, Text, Timestamp};
use diesel::{QueryResult, RunQueryDsl};

use super::models::{NewAuditEvent, NewSession};
use super::rotation_pg::bind_list;

/// The previous session (by sid, if any) ended at `ended_at`, `session` stored, `event`
/// appended.
pub(super) struct OpenSession<'a> {
    pub(super) session: &'a NewSession<'a>,
    pub(super) replaces: Option<&'a str>,
    pub(super) ended_at: NaiveDateTime,
    pub(super) event: &'a NewAuditEvent<'a>,
}

/// The statement's cache key: the same for every sign-in.
pub(super) struct OpenSessionQuery;

impl QueryId for OpenSession<'_> {
    type QueryId = OpenSessionQuery;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn> RunQueryDsl<Conn> for OpenSession<'_> {}

impl QueryFragment<Pg> for OpenSession<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (s, e) = (self.session, self.event);
        out.push_sql("WITH ended AS (UPDATE sessions SET ended_at = ");
        out.push_bind_param::<Timestamp, _>(&self.ended_at)?;
        out.push_sql(" WHERE sid = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.replaces)?;
        out.push_sql(
            " AND ended_at IS NULL), \
             event AS (INSERT INTO audit_events (at, kind, subject_id, client_id, ip, detail) \
             VALUES (",
        );
        bind_list::<Timestamp, _>(&mut out, true, &e.at)?;
        bind_list::<Text, _>(&mut out, false, &e.kind)?;
        bind_list::<Nullable<Text>, _>(&mut out, false, &e.subject_id)?;
        bind_list::<Nullable<Text>, _>(&mut out, false, &e.client_id)?;
        bind_list::<Nullable<Text>, _>(&mut out, false, &e.ip)?;
        bind_list::<Text, _>(&mut out, false, &e.detail)?;
        out.push_sql(
            ")) INSERT INTO sessions (id_hash, sid, subject_id, auth_time, acr, amr, remember, \
             created_at, expires_at, ended_at) VALUES (",
        );
        bind_list::<Text, _>(&mut out, true, &s.id_hash)?;
        bind_list::<Text, _>(&mut out, false, &s.sid)?;
        bind_list::<Text, _>(&mut out, false, &s.subject_id)?;
        bind_list::<Timestamp, _>(&mut out, false, &s.auth_time)?;
        bind_list::<Text, _>(&mut out, false, &s.acr)?;
        bind_list::<Text, _>(&mut out, false, &s.amr)?;
        bind_list::<Bool, _>(&mut out, false, &s.remember)?;
        bind_list::<Timestamp, _>(&mut out, false, &s.created_at)?;
        bind_list::<Timestamp, _>(&mut out, false, &s.expires_at)?;
        bind_list::<Nullable<Timestamp>, _>(&mut out, false, &s.ended_at)?;
        out.push_sql(")");
        Ok(())
    }
}
