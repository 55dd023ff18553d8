//! [`OutboxStore`] over [`SqlStore`]: the `outbox` table (migration `*_outbox`).
//!
//! The recipient and the body are sealed with the store's vault, bound to the row id. Claims
//! are compare-and-set UPDATEs on `attempts`, the same statement on both backends: of
//! several dispatchers that saw a message due, exactly one changes the row.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{from_db_time, to_db_time, DbConnection, SqlStore};
use crate::notify::{
    Channel, FailureOutcome, Message, NewMessage, OutboxEntry, OutboxStore, RetryPolicy, SendError,
};
use crate::store::{StoreError, StoreResult};
use keys::Vault;

diesel::table! {
    outbox (id) {
        id -> Text,
        channel -> Text,
        recipient_sealed -> Binary,
        body_sealed -> Binary,
        kind -> Text,
        locale -> Text,
        created_at -> Timestamp,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        failed_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
    }
}

/// Stored for a message that could not be opened.
const UNREADABLE: &str = "sealed message cannot be opened";
/// Stored for a message whose last allowed attempt never reported back.
const LEASE_EXPIRED: &str = "last attempt's lease expired without a result";

/// The sealed body: versioned so the layout can change.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum DbBody {
    #[serde(rename = "1")]
    V1 {
        subject: Option<String>,
        text: String,
    },
}

fn recipient_aad(id: &str) -> String {
    format!("outbox.recipient:{id}")
}

fn body_aad(id: &str) -> String {
    format!("outbox.body:{id}")
}

fn seal(vault: &Vault, plain: &[u8], aad: &str) -> StoreResult<Vec<u8>> {
    vault
        .seal(plain, aad.as_bytes())
        .map_err(|e| StoreError::Sealing(e.to_string()))
}

fn open(vault: &Vault, sealed: &[u8], aad: &str) -> StoreResult<Vec<u8>> {
    vault
        .open(sealed, aad.as_bytes())
        .map(|p| p.expose().to_vec())
        .map_err(|e| StoreError::Sealing(format!("{aad}: {e}")))
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewOutboxRow<'a> {
    id: &'a str,
    channel: &'static str,
    recipient_sealed: Vec<u8>,
    body_sealed: Vec<u8>,
    kind: &'a str,
    locale: &'a str,
    created_at: NaiveDateTime,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
}

impl<'a> NewOutboxRow<'a> {
    fn new(id: &'a str, m: &'a NewMessage, vault: &Vault, now: DateTime<Utc>) -> StoreResult<Self> {
        let body = serde_json::to_vec(&DbBody::V1 {
            subject: m.subject.clone(),
            text: m.text.clone(),
        })
        .map_err(|e| StoreError::Corrupt(format!("cannot serialise message: {e}")))?;
        Ok(NewOutboxRow {
            id,
            channel: m.channel.as_str(),
            recipient_sealed: seal(vault, m.recipient.as_bytes(), &recipient_aad(id))?,
            body_sealed: seal(vault, &body, &body_aad(id))?,
            kind: &m.kind,
            locale: &m.locale,
            created_at: to_db_time(now),
            attempts: 0,
            next_attempt_at: to_db_time(now),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = outbox)]
struct OutboxRow {
    id: String,
    channel: String,
    recipient_sealed: Vec<u8>,
    body_sealed: Vec<u8>,
    kind: String,
    locale: String,
    created_at: NaiveDateTime,
    attempts: i32,
}

impl OutboxRow {
    fn open(self, vault: &Vault) -> StoreResult<Message> {
        let channel = parse_channel(&self.id, &self.channel)?;
        let recipient = String::from_utf8(open(
            vault,
            &self.recipient_sealed,
            &recipient_aad(&self.id),
        )?)
        .map_err(|_| StoreError::Corrupt(format!("outbox {}: recipient not UTF-8", self.id)))?;
        let body = open(vault, &self.body_sealed, &body_aad(&self.id))?;
        let DbBody::V1 { subject, text } = serde_json::from_slice(&body)
            .map_err(|e| StoreError::Corrupt(format!("outbox {}: body: {e}", self.id)))?;
        Ok(Message {
            channel,
            recipient,
            subject,
            text,
            kind: self.kind,
            locale: self.locale,
            created_at: from_db_time(self.created_at),
            attempt: count(self.attempts),
            id: self.id,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = outbox)]
struct OutboxEntryRow {
    id: String,
    channel: String,
    kind: String,
    locale: String,
    created_at: NaiveDateTime,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    sent_at: Option<NaiveDateTime>,
    failed_at: Option<NaiveDateTime>,
    last_error: Option<String>,
}

impl TryFrom<OutboxEntryRow> for OutboxEntry {
    type Error = StoreError;
    fn try_from(r: OutboxEntryRow) -> StoreResult<OutboxEntry> {
        Ok(OutboxEntry {
            channel: parse_channel(&r.id, &r.channel)?,
            id: r.id,
            kind: r.kind,
            locale: r.locale,
            created_at: from_db_time(r.created_at),
            attempts: count(r.attempts),
            next_attempt_at: from_db_time(r.next_attempt_at),
            sent_at: r.sent_at.map(from_db_time),
            failed_at: r.failed_at.map(from_db_time),
            last_error: r.last_error,
        })
    }
}

fn parse_channel(id: &str, s: &str) -> StoreResult<Channel> {
    Channel::parse(s).ok_or_else(|| StoreError::Corrupt(format!("outbox {id}: channel {s}")))
}

/// Inserts a message with `c`, so a caller can queue it in the transaction of the change it
/// reports. Returns the new id.
pub(crate) fn insert_message(
    c: &mut DbConnection,
    vault: &Vault,
    m: &NewMessage,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let row = NewOutboxRow::new(&id, m, vault, now)?;
    diesel::insert_into(outbox::table).values(&row).execute(c)?;
    Ok(id)
}

/// Marks a pending message given up. Ok(false) if it was no longer pending.
fn give_up(c: &mut DbConnection, id: &str, reason: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let n = diesel::update(
        outbox::table
            .find(id)
            .filter(outbox::sent_at.is_null())
            .filter(outbox::failed_at.is_null()),
    )
    .set((
        outbox::failed_at.eq(to_db_time(now)),
        outbox::last_error.eq(reason),
    ))
    .execute(c)?;
    Ok(n == 1)
}

impl OutboxStore for SqlStore {
    fn enqueue(&self, m: &NewMessage, now: DateTime<Utc>) -> StoreResult<String> {
        let vault = self.vault()?;
        insert_message(&mut *self.conn()?, vault, m, now)
    }

    fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        policy: &RetryPolicy,
    ) -> StoreResult<Vec<Message>> {
        let vault = self.vault()?;
        let mut conn = self.conn()?;
        let c: &mut DbConnection = &mut conn;
        let at = to_db_time(now);
        let candidates: Vec<(String, i32)> = outbox::table
            .filter(outbox::sent_at.is_null())
            .filter(outbox::failed_at.is_null())
            .filter(outbox::next_attempt_at.le(at))
            .order((outbox::next_attempt_at, outbox::id))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select((outbox::id, outbox::attempts))
            .load(c)?;
        let lease_end = to_db_time(now + policy.lease);
        let mut claimed = Vec::with_capacity(candidates.len());
        for (id, seen) in candidates {
            if count(seen) >= policy.max_attempts {
                // The last attempt was claimed and its lease ran out with no result (the node
                // stopped mid-send). Another attempt would exceed the limit.
                give_up(c, &id, LEASE_EXPIRED, now)?;
                continue;
            }
            // Compare-and-set on `attempts`: a concurrent claimer that saw the same row due
            // updates nothing once this one has counted its attempt. On Postgres the second
            // UPDATE waits for the first's row lock and re-checks the condition; on SQLite
            // writes are serialised.
            let won = diesel::update(
                outbox::table
                    .find(&id)
                    .filter(outbox::attempts.eq(seen))
                    .filter(outbox::sent_at.is_null())
                    .filter(outbox::failed_at.is_null())
                    .filter(outbox::next_attempt_at.le(at)),
            )
            .set((
                outbox::attempts.eq(seen + 1),
                outbox::next_attempt_at.eq(lease_end),
            ))
            .execute(c)?;
            if won != 1 {
                continue;
            }
            let row: OutboxRow = outbox::table
                .find(&id)
                .select(OutboxRow::as_select())
                .first(c)?;
            match row.open(vault) {
                Ok(m) => claimed.push(m),
                Err(e) => {
                    // A row that cannot be opened would fail every round; take it out.
                    tracing::error!(id = %id, error = %e, "outbox message cannot be opened; giving up");
                    give_up(c, &id, UNREADABLE, now)?;
                }
            }
        }
        Ok(claimed)
    }

    fn mark_sent(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let n = diesel::update(outbox::table.find(id).filter(outbox::sent_at.is_null()))
            .set((
                outbox::sent_at.eq(to_db_time(now)),
                outbox::failed_at.eq(None::<NaiveDateTime>),
            ))
            .execute(&mut *self.conn()?)?;
        Ok(n == 1)
    }

    fn record_failure(
        &self,
        id: &str,
        attempt: u32,
        error: &SendError,
        policy: &RetryPolicy,
        now: DateTime<Utc>,
    ) -> StoreResult<FailureOutcome> {
        let Ok(attempt_db) = i32::try_from(attempt) else {
            return Ok(FailureOutcome::Stale);
        };
        let current = outbox::table
            .find(id)
            .filter(outbox::attempts.eq(attempt_db))
            .filter(outbox::sent_at.is_null())
            .filter(outbox::failed_at.is_null());
        let reason = error.reason();
        let (n, outcome) = match policy.retry_at(attempt, error.is_permanent(), now) {
            Some(at) => {
                let n = diesel::update(current)
                    .set((
                        outbox::next_attempt_at.eq(to_db_time(at)),
                        outbox::last_error.eq(reason),
                    ))
                    .execute(&mut *self.conn()?)?;
                (n, FailureOutcome::RetryAt(from_db_time(to_db_time(at))))
            }
            None => {
                let n = diesel::update(current)
                    .set((
                        outbox::failed_at.eq(to_db_time(now)),
                        outbox::last_error.eq(reason),
                    ))
                    .execute(&mut *self.conn()?)?;
                (n, FailureOutcome::GaveUp)
            }
        };
        Ok(if n == 1 {
            outcome
        } else {
            FailureOutcome::Stale
        })
    }

    fn purge_finished(&self, before: DateTime<Utc>) -> StoreResult<usize> {
        let before = to_db_time(before);
        let n = diesel::delete(
            outbox::table.filter(outbox::sent_at.lt(before).or(outbox::failed_at.lt(before))),
        )
        .execute(&mut *self.conn()?)?;
        Ok(n)
    }

    fn outbox_entry(&self, id: &str) -> StoreResult<Option<OutboxEntry>> {
        if id.contains('\0') {
            return Ok(None);
        }
        outbox::table
            .find(id)
            .select(OutboxEntryRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?
            .map(OutboxEntry::try_from)
            .transpose()
    }
}
