//! Group commit of refresh-token rotations.
//!
//! Every rotation is a durable write: spend the presented token, check the subject and its
//! grant, store the successor, commit. Done one by one, each costs a transaction of its own
//! (five round trips and a commit flush on Postgres, a turn of the single writer on SQLite),
//! and under load that transaction is most of the work of a refresh. Rotations that arrive
//! while one is being committed therefore wait and then go together: they queue, and one
//! writer per lane ([`LANES`]) takes every rotation queued so far and commits them
//! together: on Postgres in one statement, one round trip, that spends the tokens (checking
//! their clients, the scopes asked for, their subjects and grants) and stores the
//! successors it builds from the spent rows (`rotation_pg`); on SQLite in one transaction
//! of one conditional UPDATE for all and an INSERT per new row. The writer answers each
//! caller through its own channel and takes the next batch, until the queue is empty; the
//! next caller to find no writer starts one (an async caller on the blocking pool, a
//! blocking caller on its own thread). An async caller's task waits without holding a
//! thread, so a rotation costs no thread hand-over besides the writer's. One batch is
//! committed at a time: on Postgres four lanes were measured slower than one (smaller
//! batches, more commits competing for the same two cores), and SQLite has one writer
//! anyway. On Postgres the writers have connections of their own, on which the batch
//! statement keeps one generic plan (`SqlStore::batch_conn`).
//!
//! Each caller gets exactly the answer of a rotation on its own:
//! - a token the batch's UPDATE did not spend (unknown, expired, revoked, used, another
//!   client's, its grant or subject gone, or presented twice in the same batch) is not
//!   answered by the batch: its caller runs the one-by-one rotation, which reads the row to
//!   say why (the second of two presentations of one token sees it spent: `AlreadyUsed`, as
//!   if it had come later);
//! - a token whose successor asks for a scope beyond it is not spent by the Postgres
//!   statement (the check is one of its conditions) and goes alone; on SQLite it is
//!   un-spent in the same transaction before it commits (the UPDATE set `used_at` only
//!   where it was NULL), so it is left as it was;
//! - if the batch transaction fails as a whole (a deadlock with another node's batch, a
//!   lost connection), nothing of it was committed and every caller runs its rotation on
//!   its own.
//!
//! The first token of a family, issued at the code exchange, is the same kind of durable
//! write and joins the same batches: its row goes into the batch's INSERT. On Postgres the
//! statement stores a new row only where its subject and client exist and returns the rows
//! it stored, so a token whose subject or client is gone gets `false` from the batch (the
//! table has no foreign keys there: checking them on every insert cost about a tenth of a
//! refresh, `docs/design/core-decisions.md`). On SQLite such a row breaks the INSERT's
//! foreign keys, so the batch fails as a whole and everyone in it goes alone, where that
//! token is refused on its own.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use tokio::sync::oneshot;

use super::models::{NewRefreshToken, RefreshTokenRow};
use super::rotation_pg::{NewRows, SpendAndStore, SpendRequests};
use super::schema::refresh_tokens;
use super::{to_db_time, DbConnection, SqlStore};
use crate::domain::RefreshToken;
use crate::store::{Rotation, StoreError, StoreResult, Successor};
use crate::sync::lock;

/// Most rotations in one transaction (bounds the statements' parameter lists).
const MAX_BATCH: usize = 128;

/// Most batches being committed at once.
pub(super) const LANES: usize = 1;

/// The rotations waiting for the next batch, shared by every clone of a [`SqlStore`].
#[derive(Default)]
pub(super) struct RotationQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    pending: Vec<Job>,
    /// Writers committing batches; at most [`LANES`].
    /// Invariant: when below `LANES`, `pending` is empty.
    writing: usize,
}

impl QueueState {
    /// The oldest waiting rotations, at most [`MAX_BATCH`].
    fn next_batch(&mut self) -> Vec<Job> {
        let n = self.pending.len().min(MAX_BATCH);
        self.pending.drain(..n).collect()
    }
}

/// One caller's write, and where its answer goes.
struct Job {
    work: Work,
    reply: oneshot::Sender<Reply>,
}

enum Work {
    /// Spend `token_hash` of `client_id` and store what `successor` makes of it.
    Rotate {
        token_hash: String,
        client_id: String,
        now: DateTime<Utc>,
        successor: Successor,
    },
    /// Store the first token of a family.
    Issue(RefreshToken),
}

/// What a batch answers a job.
enum Answer {
    /// Boxed: a rotation is large beside the other answer.
    Rotation(Box<Rotation>),
    /// A family's first token: stored, or not because its subject or client is gone.
    Issued(bool),
}

enum Reply {
    /// Answered by a batch.
    Done(StoreResult<Answer>),
    /// Not answered by the batch: write on your own (the work comes back; boxed, as
    /// the rarer and larger answer).
    Alone(Box<Work>),
}

/// A batch's answer to a job of the other kind: cannot happen, but is an error rather than
/// a panic if it ever did.
fn mismatched() -> StoreError {
    StoreError::Db("refresh token batch answered the wrong kind of write".to_string())
}

/// The writer was stopped before it answered (the runtime shutting down).
fn dropped() -> StoreError {
    StoreError::Db("refresh token batch was abandoned".to_string())
}

/// A batch's answer to a rotation.
fn rotated(answer: StoreResult<Answer>) -> StoreResult<Rotation> {
    match answer? {
        Answer::Rotation(r) => Ok(*r),
        Answer::Issued(_) => Err(mismatched()),
    }
}

/// A batch's answer to a first token.
fn issued(answer: StoreResult<Answer>) -> StoreResult<bool> {
    match answer? {
        Answer::Issued(stored) => Ok(stored),
        Answer::Rotation(_) => Err(mismatched()),
    }
}

/// How a rotation is written.
pub(super) enum Route {
    /// Nothing to look up: the hash or client cannot be stored, so no token has it.
    Invalid,
    /// With the rotations that arrive meanwhile.
    Queued,
    /// On its own (see [`batchable`]).
    Single,
}

impl Route {
    pub(super) fn of(token_hash: &str, client_id: &str) -> Route {
        if !super::queries::storable(token_hash) || !super::queries::storable(client_id) {
            Route::Invalid
        } else if batchable(token_hash) {
            Route::Queued
        } else {
            Route::Single
        }
    }
}

impl SqlStore {
    /// Rotates with the callers that arrive meanwhile, for callers on a thread that may
    /// block; see the module documentation.
    pub(super) fn rotate_grouped(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
        successor: Successor,
    ) -> StoreResult<Rotation> {
        let reply = self.wait_blocking(Work::rotate(token_hash, client_id, now, successor))?;
        self.rotation_answered(reply)
    }

    /// Stores a family's first token with the writes that arrive meanwhile; Ok(false) if
    /// its subject or client is gone (see the module documentation).
    pub(super) fn issue_grouped(&self, token: RefreshToken) -> StoreResult<bool> {
        let reply = self.wait_blocking(Work::Issue(token))?;
        self.issue_answered(reply)
    }

    /// A rotation's outcome from its reply, on this thread.
    fn rotation_answered(&self, reply: Reply) -> StoreResult<Rotation> {
        match reply {
            Reply::Done(answer) => rotated(answer),
            Reply::Alone(work) => self.rotate_alone(&work),
        }
    }

    /// A first token's outcome from its reply, on this thread.
    fn issue_answered(&self, reply: Reply) -> StoreResult<bool> {
        match reply {
            Reply::Done(answer) => issued(answer),
            Reply::Alone(work) => self.issue_alone(&work),
        }
    }

    /// [`RefreshTokenStore::rotate_refresh`](crate::store::RefreshTokenStore::rotate_refresh)
    /// for async callers: the caller's task waits for the batch without holding a thread,
    /// and only a rotation the batch leaves alone goes to the blocking pool.
    pub async fn rotate_refresh_queued(
        &self,
        token_hash: String,
        client_id: String,
        now: DateTime<Utc>,
        successor: Successor,
    ) -> StoreResult<Rotation> {
        match Route::of(&token_hash, &client_id) {
            Route::Invalid => Ok(Rotation::Invalid),
            Route::Single => {
                self.call(move |s| s.rotate_single(&token_hash, &client_id, now, &successor))
                    .await
            }
            Route::Queued => {
                let work = Work::Rotate {
                    token_hash,
                    client_id,
                    now,
                    successor,
                };
                match self.wait_async(work).await? {
                    Reply::Done(answer) => rotated(answer),
                    Reply::Alone(work) => self.call(move |s| s.rotate_alone(&work)).await,
                }
            }
        }
    }

    /// [`RefreshTokenStore::issue_refresh`](crate::store::RefreshTokenStore::issue_refresh)
    /// for async callers, as [`rotate_refresh_queued`](Self::rotate_refresh_queued).
    pub async fn issue_refresh_queued(&self, token: RefreshToken) -> StoreResult<bool> {
        match self.wait_async(Work::Issue(token)).await? {
            Reply::Done(answer) => issued(answer),
            Reply::Alone(work) => self.call(move |s| s.issue_alone(&work)).await,
        }
    }

    /// Queues `work`; the receiver of its answer, and a writer to start if no lane has one.
    fn enqueue(&self, work: Work) -> (oneshot::Receiver<Reply>, Option<Writer>) {
        let (reply, answer) = oneshot::channel();
        let mut q = lock(&self.rotations.state);
        q.pending.push(Job { work, reply });
        let writer = (q.writing < LANES).then(|| {
            q.writing += 1;
            Writer {
                store: self.clone(),
                finished: false,
            }
        });
        (answer, writer)
    }

    /// Queues `work` and waits for its batch on this thread, writing the batches itself if
    /// no writer is running.
    fn wait_blocking(&self, work: Work) -> StoreResult<Reply> {
        let (answer, writer) = self.enqueue(work);
        if let Some(writer) = writer {
            writer.run();
        }
        answer.blocking_recv().map_err(|_| dropped())
    }

    /// Queues `work` and awaits its batch, starting a writer on the blocking pool if no
    /// writer is running.
    async fn wait_async(&self, work: Work) -> StoreResult<Reply> {
        let (answer, writer) = self.enqueue(work);
        if let Some(writer) = writer {
            // Not awaited: the writer answers through the jobs' channels. If the runtime
            // cannot run it, dropping it hands its queue back (see `Writer`'s Drop).
            drop(tokio::task::spawn_blocking(move || writer.run()));
        }
        answer.await.map_err(|_| dropped())
    }

    fn rotate_alone(&self, work: &Work) -> StoreResult<Rotation> {
        match work {
            Work::Rotate {
                token_hash,
                client_id,
                now,
                successor,
            } => self.rotate_single(token_hash, client_id, *now, successor),
            Work::Issue(_) => Err(mismatched()),
        }
    }

    fn issue_alone(&self, work: &Work) -> StoreResult<bool> {
        match work {
            Work::Issue(token) => self.issue_single(token),
            Work::Rotate { .. } => Err(mismatched()),
        }
    }

    /// Commits `batch` and answers every job in it. A panic while writing answers everyone
    /// with an error instead of leaving them waiting.
    fn commit_batch(&self, batch: Vec<Job>) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write_batch(&batch)));
        let answers: Vec<Option<StoreResult<Answer>>> = match outcome {
            Ok(Ok(answers)) => answers.into_iter().map(|a| a.map(Ok)).collect(),
            // Nothing was committed: everyone tries again on their own.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, size = batch.len(), "refresh token batch failed; writing one by one");
                batch.iter().map(|_| None).collect()
            }
            Err(_) => batch
                .iter()
                .map(|_| {
                    Some(Err(StoreError::Db(
                        "refresh token rotation failed".to_string(),
                    )))
                })
                .collect(),
        };
        for (Job { work, reply }, answer) in batch.into_iter().zip(answers) {
            // A caller that stopped waiting (its request dropped) needs no answer; what
            // the batch committed for it stands, as it would had it waited.
            let _ = reply.send(match answer {
                Some(a) => Reply::Done(a),
                None => Reply::Alone(Box::new(work)),
            });
        }
    }
}

/// A lane's writer: commits the queue's batches, oldest first, until the queue is empty.
/// Callers wait on their own channels, so a queue under load costs one thread, not one per
/// caller, and no hand-over between batches.
struct Writer {
    store: SqlStore,
    /// Whether [`run`](Self::run) gave the lane back itself.
    finished: bool,
}

impl Writer {
    fn run(mut self) {
        loop {
            let batch = {
                let mut q = lock(&self.store.rotations.state);
                if q.pending.is_empty() {
                    // Under the same lock as the check, so that a job queued after it
                    // finds the lane free and starts a writer of its own.
                    q.writing -= 1;
                    self.finished = true;
                    return;
                }
                q.next_batch()
            };
            self.store.commit_batch(batch);
        }
    }
}

impl Drop for Writer {
    /// A writer that never ran (its task was refused) or stopped by a panic gives its lane
    /// back; if it was the last lane, the queued jobs are dropped, and their callers get an
    /// error instead of waiting for ever.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let abandoned = {
            let mut q = lock(&self.store.rotations.state);
            q.writing -= 1;
            if q.writing == 0 {
                std::mem::take(&mut q.pending)
            } else {
                Vec::new()
            }
        };
        drop(abandoned);
    }
}

impl Work {
    fn rotate(token_hash: &str, client_id: &str, now: DateTime<Utc>, successor: Successor) -> Work {
        Work::Rotate {
            token_hash: token_hash.to_string(),
            client_id: client_id.to_string(),
            now,
            successor,
        }
    }
}

impl SqlStore {
    /// The batch's statements. Returns, per job in order, its answer, or `None` when the job
    /// must write alone (its token was not spent here).
    fn write_batch(&self, batch: &[Job]) -> StoreResult<Vec<Option<Answer>>> {
        let mut conn = self.batch_conn()?;
        match &mut *conn {
            DbConnection::Pg(pg) => write_batch_pg(pg, batch),
            db => db.transaction(|db| write_batch_sqlite(db, batch)),
        }
    }
}

/// The batch on Postgres: one statement (`rotation_pg`), atomic without a transaction.
fn write_batch_pg(
    pg: &mut diesel::PgConnection,
    batch: &[Job],
) -> StoreResult<Vec<Option<Answer>>> {
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(batch.len());
    let mut requests = SpendRequests::default();
    // Which job each request is (by position), and the hashes already requested: a hash
    // presented again (by its client or another) is left alone, where it finds the token
    // spent by the first presentation or says why not.
    let mut requested_by = Vec::new();
    let mut requested: HashSet<&str> = HashSet::new();
    let mut new = Vec::new();
    let mut issued_by: HashMap<&str, usize> = HashMap::new();
    let mut at = None;
    for (i, job) in batch.iter().enumerate() {
        match &job.work {
            Work::Rotate {
                token_hash,
                client_id,
                now,
                successor,
            } => {
                if requested.insert(token_hash) {
                    requests.push(token_hash, client_id, successor)?;
                    requested_by.push(i);
                    at = at.max(Some(*now));
                }
                answers.push(None);
            }
            Work::Issue(token) => {
                new.push(NewRefreshToken::try_from(token)?);
                issued_by.insert(token.token_hash.as_str(), i);
                // Stored if the statement returns it.
                answers.push(Some(Answer::Issued(false)));
            }
        }
    }
    // The rotation happens now for all of them: at the latest of their arrival times.
    let at = to_db_time(at.unwrap_or_else(Utc::now));
    let spent: Vec<(RefreshTokenRow, i32)> = SpendAndStore {
        requests,
        at,
        new: NewRows::new(&new),
    }
    .get_results(pg)?;
    for (row, n) in spent {
        if n == 0 {
            let job = issued_by
                .get(row.token_hash.as_str())
                .ok_or_else(mismatched)?;
            answers[*job] = Some(Answer::Issued(true));
            continue;
        }
        let job = usize::try_from(n - 1)
            .ok()
            .and_then(|n| requested_by.get(n))
            .ok_or_else(mismatched)?;
        answers[*job] = Some(Answer::Rotation(Box::new(Rotation::Rotated(
            RefreshToken::try_from(row)?,
        ))));
    }
    Ok(answers)
}

/// The batch on SQLite, inside a transaction: one UPDATE for all rotations, then a statement
/// per new row (diesel has no multi-row INSERT for SQLite rows with optional columns, and
/// a statement costs no round trip there).
fn write_batch_sqlite(db: &mut DbConnection, batch: &[Job]) -> StoreResult<Vec<Option<Answer>>> {
    let (rotated, successors) = spend(db, batch)?;
    let mut rotated = rotated.into_iter();
    let mut answers = Vec::with_capacity(batch.len());
    let mut issued = Vec::new();
    for job in batch {
        match &job.work {
            Work::Rotate { .. } => answers.push(
                rotated
                    .next()
                    .flatten()
                    .map(|r| Answer::Rotation(Box::new(r))),
            ),
            Work::Issue(token) => {
                issued.push(token);
                // A gone subject or client fails the INSERT's foreign keys, and the batch.
                answers.push(Some(Answer::Issued(true)));
            }
        }
    }
    for token in successors.iter().chain(issued) {
        diesel::insert_into(refresh_tokens::table)
            .values(NewRefreshToken::try_from(token)?)
            .execute(db)?;
    }
    Ok(answers)
}

/// Spends the tokens of the batch's rotations: per rotation in order its answer (`None`:
/// not spent here, rotate alone), and the successors to store.
fn spend(
    db: &mut DbConnection,
    batch: &[Job],
) -> StoreResult<(Vec<Option<Rotation>>, Vec<RefreshToken>)> {
    let requests: Vec<(&str, &str, DateTime<Utc>, &Successor)> = batch
        .iter()
        .filter_map(|j| match &j.work {
            Work::Rotate {
                token_hash,
                client_id,
                now,
                successor,
            } => Some((token_hash.as_str(), client_id.as_str(), *now, successor)),
            Work::Issue(_) => None,
        })
        .collect();
    if requests.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // The rotation happens now for all of them: at the latest of their arrival times.
    let now = requests.iter().map(|r| r.2).max().unwrap_or_else(Utc::now);
    let at = to_db_time(now);
    let hashes: Vec<&str> = requests.iter().map(|r| r.0).collect();
    let pairs: Vec<String> = requests.iter().map(|r| pair(r.0, r.1)).collect();
    // A write first (on SQLite this takes the write lock up front). Only the tokens
    // presented with their own client are spent (the hash is base64url, so the first space
    // of a pair ends it), and only while their subject and its consent to the client are
    // there: a withdrawn one is left to its caller's rotation alone, which says why.
    let spent: Vec<RefreshTokenRow> = on_backend!(db, |c| {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq_any(&hashes))
                .filter(
                    refresh_tokens::token_hash
                        .concat(" ")
                        .concat(refresh_tokens::client_id)
                        .eq_any(&pairs),
                )
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::revoked_at.is_null())
                .filter(refresh_tokens::expires_at.gt(at))
                .filter(StillGranted),
        )
        .set(refresh_tokens::used_at.eq(Some(at)))
        .returning(refresh_tokens::all_columns)
        .get_results(c)
    })?;
    if spent.is_empty() {
        return Ok((requests.iter().map(|_| None).collect(), Vec::new()));
    }
    let spent: Vec<RefreshToken> = spent
        .into_iter()
        .map(RefreshToken::try_from)
        .collect::<StoreResult<_>>()?;

    // Each spent token answers the first rotation that presented it with its client.
    let mut by_key: HashMap<(&str, &str), RefreshToken> = spent
        .iter()
        .map(|t| ((t.token_hash.as_str(), t.client_id.as_str()), t.clone()))
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    let mut successors = Vec::new();
    let mut unspend: Vec<&str> = Vec::new();
    for &(token_hash, client_id, _, successor) in &requests {
        let Some(old) = by_key.remove(&(token_hash, client_id)) else {
            answers.push(None);
            continue;
        };
        let answer = match successor.of(&old) {
            Some(next) => {
                successors.push(next);
                Rotation::Rotated(old)
            }
            None => Rotation::Declined,
        };
        if !matches!(answer, Rotation::Rotated(_)) {
            unspend.push(token_hash);
        }
        answers.push(Some(answer));
    }
    if !unspend.is_empty() {
        diesel::update(refresh_tokens::table.filter(refresh_tokens::token_hash.eq_any(&unspend)))
            .set(refresh_tokens::used_at.eq(None::<chrono::NaiveDateTime>))
            .execute(db)?;
    }
    Ok((answers, successors))
}

/// `WHERE` condition of an UPDATE of `refresh_tokens`: the row's subject is there and has
/// consented to the row's client. diesel checks that a subquery's conditions name only its
/// own tables, so this one, which names the outer row, is written out; its text is fixed,
/// so the statement is still found in the cache by type.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
pub(super) struct StillGranted;

impl diesel::Expression for StillGranted {
    type SqlType = diesel::sql_types::Bool;
}

impl diesel::AppearsOnTable<refresh_tokens::table> for StillGranted {}

impl<GB> diesel::expression::ValidGrouping<GB> for StillGranted {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for StillGranted {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql(
            "EXISTS (SELECT 1 FROM grants WHERE grants.subject_id = refresh_tokens.subject_id \
             AND grants.client_id = refresh_tokens.client_id) \
             AND EXISTS (SELECT 1 FROM subjects WHERE subjects.id = refresh_tokens.subject_id)",
        );
        Ok(())
    }
}

/// Whether a rotation may join a batch: the batch tells tokens apart by `hash client`, so a
/// hash must hold no space (real ones are base64url).
pub(super) fn batchable(token_hash: &str) -> bool {
    !token_hash.contains(' ')
}

fn pair(token_hash: &str, client_id: &str) -> String {
    format!("{token_hash} {client_id}")
}

#[cfg(test)]
impl SqlStore {
    /// Commits `rotations` and `issues` as one batch, as if they had all arrived while
    /// another batch was being committed, and returns their answers in order (those the
    /// batch leaves alone write on their own afterwards, as their callers would).
    pub(super) fn write_as_batch(
        &self,
        rotations: Vec<(&str, &str, DateTime<Utc>, Successor)>,
        issues: &[RefreshToken],
    ) -> (Vec<StoreResult<Rotation>>, Vec<StoreResult<bool>>) {
        let mut rotating = Vec::new();
        let mut issuing = Vec::new();
        // Interleaved, so that the answers must be matched to jobs by kind.
        let mut batch = Vec::new();
        let mut job = |work: Work| {
            let (reply, answer) = oneshot::channel();
            batch.push(Job { work, reply });
            answer
        };
        let (mut r, mut i) = (rotations.into_iter(), issues.iter());
        loop {
            let (a, b) = (r.next(), i.next());
            if a.is_none() && b.is_none() {
                break;
            }
            if let Some((hash, client, now, successor)) = a {
                rotating.push(job(Work::rotate(hash, client, now, successor)));
            }
            if let Some(token) = b {
                issuing.push(job(Work::Issue(token.clone())));
            }
        }
        self.commit_batch(batch);
        let answer =
            |answer: oneshot::Receiver<Reply>| answer.blocking_recv().map_err(|_| dropped());
        let rotated = rotating
            .into_iter()
            .map(|a| self.rotation_answered(answer(a)?))
            .collect();
        let issued = issuing
            .into_iter()
            .map(|a| self.issue_answered(answer(a)?))
            .collect();
        (rotated, issued)
    }

    /// [`write_as_batch`](Self::write_as_batch) with rotations only.
    pub(super) fn rotate_as_batch(
        &self,
        requests: Vec<(&str, &str, DateTime<Utc>, Successor)>,
    ) -> Vec<StoreResult<Rotation>> {
        self.write_as_batch(requests, &[]).0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A writer that never runs (the runtime refused its task) gives the lane back and
    /// drops the queue, so its callers get an error rather than waiting for ever, and the
    /// next caller starts a writer of its own.
    #[test]
    fn a_writer_that_never_runs_fails_its_queue_and_frees_the_lane() {
        super::super::tests::each(|s| {
            let work = || Work::Issue(super::super::tests::refresh("h", "f", "rp", "sub"));
            let (first, writer) = s.enqueue(work());
            let writer = writer.expect("the lane was free");
            let (second, none) = s.enqueue(work());
            assert!(none.is_none(), "one lane, taken");
            drop(writer);
            assert!(first.blocking_recv().is_err());
            assert!(second.blocking_recv().is_err());
            let (third, writer) = s.enqueue(work());
            assert!(writer.is_some(), "the lane is free again");
            // Its job is answered: the client is unknown, so the token is not stored (by the
            // batch on Postgres; on SQLite the batch fails and it goes alone).
            writer.unwrap().run();
            let stored = match third.blocking_recv().unwrap() {
                Reply::Alone(work) => s.issue_alone(&work).unwrap(),
                Reply::Done(answer) => issued(answer).unwrap(),
            };
            assert!(!stored, "a token of an unknown client cannot be stored");
        });
    }
}
