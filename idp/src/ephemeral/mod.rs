//! Short-lived state with a TTL: authorization codes, login transactions, counters,
//! revoked access-token ids. Redis in production, in-process when embedded.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod memory;
pub mod redis_store;

pub use memory::MemoryEphemeral;
pub use redis_store::RedisEphemeral;

#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    #[error("ephemeral store unavailable: {0}")]
    Unavailable(String),
    /// The store refused a write for want of room: the in-process store at its ceiling
    /// (`ephemeral_max_mib`), or Redis at its `maxmemory`. Logged where it arose, once a
    /// second with a count.
    #[error("ephemeral store full: {0}")]
    Full(String),
}

pub type EphResult<T> = Result<T, EphemeralError>;

/// Writes a store refused for want of room, counted and warned about once a second at most:
/// the requests refused are answered 503 without a log line each
/// ([`OAuthError::logged`](crate::protocol::OAuthError)).
#[derive(Debug, Default)]
pub(crate) struct FullWarnings {
    refused: AtomicU64,
    /// When the last warning was given (ms since the epoch).
    warned_at: AtomicI64,
}

impl FullWarnings {
    pub(crate) const fn new() -> Self {
        Self {
            refused: AtomicU64::new(0),
            warned_at: AtomicI64::new(0),
        }
    }

    /// Counts a refused write at `now_ms` (`what`: why there was no room), warns if a
    /// second has passed since the last warning, and gives the error to answer with.
    pub(crate) fn refused(&self, now_ms: i64, what: String) -> EphemeralError {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1_000
            && self
                .warned_at
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.fetch_sub(refused, Ordering::Relaxed);
            tracing::warn!(refused, "ephemeral store full: {what}; writes refused");
        }
        EphemeralError::Full(what)
    }
}

#[async_trait::async_trait]
pub trait Ephemeral: Send + Sync + std::fmt::Debug {
    /// A copy for one HTTP worker thread, sharing the stored data but holding connections
    /// of its own that are opened on that thread; `None` when one instance serves every
    /// thread equally well (the in-process store).
    fn for_worker(&self) -> Option<Arc<dyn Ephemeral>> {
        None
    }
    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> EphResult<()>;
    /// Stores only if the key is absent; true if stored.
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphResult<bool>;
    async fn get(&self, key: &str) -> EphResult<Option<Vec<u8>>>;
    /// Gives a live key a new `ttl` (Redis PEXPIRE); false, and nothing stored, when it
    /// is absent or expired. One round trip for "is it there, and keep it".
    async fn touch(&self, key: &str, ttl: Duration) -> EphResult<bool>;
    /// [`touch`](Self::touch) of `live` and, only when it is there, [`put`](Self::put) of
    /// `value` under `key`, in one atomic step: something stored only while what it
    /// depends on lives (a code issued only from a session still in use, extending its
    /// use). False, and nothing stored, when `live` is absent or expired.
    async fn touch_and_put(
        &self,
        live: &str,
        live_ttl: Duration,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> EphResult<bool>;
    /// Atomically reads and deletes (Redis GETDEL): at most one caller gets the value.
    async fn take(&self, key: &str) -> EphResult<Option<Vec<u8>>>;
    /// [`take`](Self::take) that, in the same atomic step and only when `key` was there,
    /// stores `mark` under `mark_key` for `ttl`: whoever comes after the taker finds the
    /// mark (a single-use value and the record of its use, in one round trip).
    async fn take_and_mark(
        &self,
        key: &str,
        mark_key: &str,
        mark: &[u8],
        ttl: Duration,
    ) -> EphResult<Option<Vec<u8>>>;
    async fn delete(&self, key: &str) -> EphResult<()>;
    /// Increments a counter, creating it with `ttl` on first use; returns the new value.
    async fn incr(&self, key: &str, ttl: Duration) -> EphResult<u64>;
    /// [`incr`](Self::incr) of `counter` (created with `window`) and, only when the new count
    /// is at most `max`, [`put`](Self::put) of `value` under `key` for `ttl`, in one atomic
    /// step; the count. Something anyone may have stored, stored only within a limit.
    async fn count_and_put(
        &self,
        counter: &str,
        window: Duration,
        max: u64,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> EphResult<u64>;
    /// [`incr`](Self::incr) of `counter` and the values of `keys`, read in the same atomic
    /// step: one round trip where a count and the checks that follow it were several.
    async fn incr_and_get(
        &self,
        counter: &str,
        ttl: Duration,
        keys: &[&str],
    ) -> EphResult<(u64, Vec<Option<Vec<u8>>>)>;
}
