//! Group commit of refresh-token rotations.
//!
//! Every rotation is a durable write: spend the presented token, check the subject and its
//! grant, store the successor, commit. Done one by one, each costs a transaction of its own
//! (five round trips and a commit flush on Postgres, a turn of the single writer on SQLite),
//! and under load that transaction is most of the work of a refresh. Rotations that arrive
//! while one is being committed therefore wait and then go together: the first caller to
//! find no batch running leads, takes every rotation queued so far and commits them in one
//! transaction (one conditional UPDATE for all, one read of their grants, one INSERT of all
//! successors). When it is done it hands the lead to the oldest caller still
//! waiting, so nobody serves others for longer than one batch. One batch is committed at a
//! time ([`LANES`]): on Postgres four lanes were measured slower than one (smaller batches,
//! more commits competing for the same two cores), and SQLite has one writer anyway.
//!
//! Each caller gets exactly the answer of a rotation on its own:
//! - a token the batch's UPDATE did not spend (unknown, expired, revoked, used, another
//!   client's, or presented twice in the same batch) is not answered by the batch: its
//!   caller runs the one-by-one rotation, which reads the row to say why (the second of two
//!   presentations of one token sees it spent: `AlreadyUsed`, as if it had come later);
//! - a token spent by the batch whose grant or subject is gone, or whose successor the
//!   callback declines, is un-spent in the same transaction before it commits (the UPDATE
//!   set `used_at` only where it was NULL), so it is left as it was;
//! - if the batch transaction fails as a whole (a deadlock with another node's batch, a
//!   lost connection), nothing of it was committed and every caller runs its rotation on
//!   its own.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::models::{NewRefreshToken, RefreshTokenRow};
use super::schema::{grants, refresh_tokens, subjects};
use super::{to_db_time, DbConnection, SqlStore};
use crate::domain::RefreshToken;
use crate::store::{Rotation, StoreError, StoreResult, Successor};
use crate::sync::lock;

/// Most rotations in one transaction (bounds the statements' parameter lists).
const MAX_BATCH: usize = 128;

/// Most batches being committed at once.
const LANES: usize = 1;

/// The rotations waiting for the next batch, shared by every clone of a [`SqlStore`].
#[derive(Default)]
pub(super) struct RotationQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    pending: Vec<Arc<Job>>,
    /// Batches being committed, or leads handed to waiting callers; at most [`LANES`].
    /// Invariant: when below `LANES`, `pending` is empty.
    leading: usize,
}

impl QueueState {
    /// The oldest waiting rotations, at most [`MAX_BATCH`].
    fn next_batch(&mut self) -> Vec<Arc<Job>> {
        let n = self.pending.len().min(MAX_BATCH);
        self.pending.drain(..n).collect()
    }
}

/// One caller's rotation, and where its answer goes.
struct Job {
    token_hash: String,
    client_id: String,
    now: DateTime<Utc>,
    successor: Mutex<Successor>,
    slot: Mutex<Slot>,
    ready: Condvar,
}

enum Slot {
    Waiting,
    /// Take the lead: commit this batch (which holds the job itself).
    Lead(Vec<Arc<Job>>),
    /// Answered by a batch (boxed: a rotation is large beside the other states).
    Done(Box<StoreResult<Rotation>>),
    /// Not answered by the batch: rotate on your own.
    Alone,
}

impl Job {
    fn new(
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
        successor: Successor,
    ) -> Arc<Self> {
        Arc::new(Job {
            token_hash: token_hash.to_string(),
            client_id: client_id.to_string(),
            now,
            successor: Mutex::new(successor),
            slot: Mutex::new(Slot::Waiting),
            ready: Condvar::new(),
        })
    }

    fn set(&self, slot: Slot) {
        *lock(&self.slot) = slot;
        self.ready.notify_one();
    }

    /// Blocks until the slot leaves `Waiting`; returns what it became.
    fn wait(&self) -> Slot {
        let mut slot = lock(&self.slot);
        loop {
            match std::mem::replace(&mut *slot, Slot::Waiting) {
                Slot::Waiting => {
                    slot = self
                        .ready
                        .wait(slot)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                other => return other,
            }
        }
    }
}

impl SqlStore {
    /// Rotates with the callers that arrive meanwhile; see the module documentation.
    pub(super) fn rotate_grouped(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
        successor: Successor,
    ) -> StoreResult<Rotation> {
        let job = Job::new(token_hash, client_id, now, successor);
        let queue = &self.rotations;
        // A free lane: lead at once (the queue is empty then, so the batch is this job).
        let started = {
            let mut q = lock(&queue.state);
            q.pending.push(job.clone());
            (q.leading < LANES).then(|| {
                q.leading += 1;
                q.next_batch()
            })
        };
        let batch = match started {
            Some(batch) => batch,
            None => match job.wait() {
                Slot::Done(answer) => return *answer,
                Slot::Alone => return self.rotate_alone(&job),
                Slot::Lead(batch) => batch,
                Slot::Waiting => unreachable!("wait returns only a set slot"),
            },
        };
        let own = self.commit_batch(&batch, &job);
        {
            // Hand the lane on with the next batch, taken under the same lock so that two
            // leaders finishing together cannot hand over the same callers.
            let mut q = lock(&queue.state);
            if q.pending.is_empty() {
                q.leading -= 1;
            } else {
                let next = q.next_batch();
                if let Some(first) = next.first().cloned() {
                    first.set(Slot::Lead(next));
                }
            }
        }
        match own {
            Some(answer) => answer,
            None => self.rotate_alone(&job),
        }
    }

    fn rotate_alone(&self, job: &Job) -> StoreResult<Rotation> {
        let mut successor = lock(&job.successor);
        self.rotate_single(&job.token_hash, &job.client_id, job.now, &mut *successor)
    }

    /// Commits `batch` in one transaction and answers every job in it except `own`, whose
    /// answer is returned (`None`: rotate alone). A panic in a callback answers everyone
    /// with an error instead of leaving them waiting.
    fn commit_batch(&self, batch: &[Arc<Job>], own: &Arc<Job>) -> Option<StoreResult<Rotation>> {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.transaction(|db| spend_batch(db, batch))
        }));
        let mut answers: Vec<Option<StoreResult<Rotation>>> = match outcome {
            Ok(Ok(answers)) => answers.into_iter().map(|a| a.map(Ok)).collect(),
            // Nothing was committed: everyone tries again on their own.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, size = batch.len(), "rotation batch failed; rotating one by one");
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
        let mut mine = None;
        for (job, answer) in batch.iter().zip(answers.iter_mut()) {
            let answer = answer.take();
            if Arc::ptr_eq(job, own) {
                mine = answer;
                continue;
            }
            job.set(match answer {
                Some(a) => Slot::Done(Box::new(a)),
                None => Slot::Alone,
            });
        }
        mine
    }
}

/// The batch's statements. Returns, per job in order, its answer, or `None` when the job
/// must rotate alone (its token was not spent here).
fn spend_batch(db: &mut DbConnection, batch: &[Arc<Job>]) -> StoreResult<Vec<Option<Rotation>>> {
    // The rotation happens now for all of them: at the latest of their arrival times.
    let now = batch.iter().map(|j| j.now).max().unwrap_or_else(Utc::now);
    let at = to_db_time(now);
    let hashes: Vec<&str> = batch.iter().map(|j| j.token_hash.as_str()).collect();
    let pairs: Vec<String> = batch
        .iter()
        .map(|j| pair(&j.token_hash, &j.client_id))
        .collect();
    // A write first (on SQLite this takes the write lock up front). Only the tokens
    // presented with their own client are spent: the hash is base64url, so the first space
    // of a pair ends it.
    let spent: Vec<RefreshTokenRow> = diesel::update(
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
            .filter(refresh_tokens::expires_at.gt(at)),
    )
    .set(refresh_tokens::used_at.eq(Some(at)))
    .returning(refresh_tokens::all_columns)
    .get_results(db)?;
    if spent.is_empty() {
        return Ok(batch.iter().map(|_| None).collect());
    }
    let spent: Vec<RefreshToken> = spent
        .into_iter()
        .map(RefreshToken::try_from)
        .collect::<StoreResult<_>>()?;

    // Consent of every spent token, from a subject that still exists: one read.
    let subs: Vec<&str> = spent.iter().map(|t| t.subject_id.as_str()).collect();
    let clients: Vec<&str> = spent.iter().map(|t| t.client_id.as_str()).collect();
    let granted: HashSet<(String, String)> = grants::table
        .filter(grants::subject_id.eq_any(&subs))
        .filter(grants::client_id.eq_any(&clients))
        .filter(diesel::dsl::exists(
            subjects::table.filter(subjects::id.eq(grants::subject_id)),
        ))
        .select((grants::subject_id, grants::client_id))
        .load::<(String, String)>(db)?
        .into_iter()
        .collect();

    // Each spent token answers the first job that presented it with its client.
    let mut by_key: HashMap<(&str, &str), RefreshToken> = spent
        .iter()
        .map(|t| ((t.token_hash.as_str(), t.client_id.as_str()), t.clone()))
        .collect();
    let mut answers = Vec::with_capacity(batch.len());
    let mut successors = Vec::new();
    let mut unspend: Vec<&str> = Vec::new();
    for job in batch {
        let Some(old) = by_key.remove(&(job.token_hash.as_str(), job.client_id.as_str())) else {
            answers.push(None);
            continue;
        };
        let still_granted = granted.contains(&(old.subject_id.clone(), old.client_id.clone()));
        let answer = if !still_granted {
            Rotation::Withdrawn
        } else {
            let next = (lock(&job.successor))(&old);
            match next {
                Some(next) => {
                    successors.push(next);
                    Rotation::Rotated(old)
                }
                None => Rotation::Declined,
            }
        };
        if !matches!(answer, Rotation::Rotated(_)) {
            unspend.push(job.token_hash.as_str());
        }
        answers.push(Some(answer));
    }
    if !unspend.is_empty() {
        diesel::update(refresh_tokens::table.filter(refresh_tokens::token_hash.eq_any(&unspend)))
            .set(refresh_tokens::used_at.eq(None::<chrono::NaiveDateTime>))
            .execute(db)?;
    }
    let successors: Vec<NewRefreshToken<'_>> = successors
        .iter()
        .map(NewRefreshToken::try_from)
        .collect::<StoreResult<_>>()?;
    match db {
        // One multi-row INSERT on Postgres; diesel has none for SQLite rows with optional
        // columns, where a statement per row costs no round trip anyway.
        DbConnection::Pg(pg) if !successors.is_empty() => {
            diesel::insert_into(refresh_tokens::table)
                .values(&successors)
                .execute(pg)?;
        }
        _ => {
            for row in &successors {
                diesel::insert_into(refresh_tokens::table)
                    .values(row)
                    .execute(db)?;
            }
        }
    }
    Ok(answers)
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
    /// Commits `requests` as one batch, as if they had all arrived while another batch was
    /// being committed, and returns their answers in order (those the batch leaves alone
    /// rotate on their own afterwards, as their callers would).
    pub(super) fn rotate_as_batch(
        &self,
        requests: Vec<(&str, &str, DateTime<Utc>, Successor)>,
    ) -> Vec<StoreResult<Rotation>> {
        let batch: Vec<Arc<Job>> = requests
            .into_iter()
            .map(|(hash, client, now, successor)| Job::new(hash, client, now, successor))
            .collect();
        let nobody = Job::new("", "", Utc::now(), Box::new(|_| None));
        assert!(self.commit_batch(&batch, &nobody).is_none());
        batch
            .iter()
            .map(|j| match j.wait() {
                Slot::Done(answer) => *answer,
                Slot::Alone => self.rotate_alone(j),
                Slot::Lead(_) | Slot::Waiting => panic!("a batch answers or leaves alone"),
            })
            .collect()
    }
}
