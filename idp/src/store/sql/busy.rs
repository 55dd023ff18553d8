//! How a SQLite connection waits for a lock another one holds.
//!
//! `PRAGMA busy_timeout` installs SQLite's default busy handler, which sleeps 1, 2, 5, 10,
//! 15, 20, 25 … 100 ms between tries. Our lock holders keep a lock for a millisecond or a
//! few (a batch of writes; the checkpoint thread's RESTART, `checkpoint.rs`), so a writer
//! that found the lock taken slept 1 ms, then 2 more, then 5 more, long after the lock was
//! free, and every request queued behind it waited too: that was most of SQLite's tail.
//!
//! So every SQLite connection of the process gets [`wait`] instead, installed when SQLite
//! opens it (`sqlite3_auto_extension`): it tries again after a few tens of microseconds
//! for the first milliseconds, then less often, and gives up after the thread's limit,
//! [`DEFAULT_LIMIT`] unless the thread set another one ([`limit_waits`]). The pooled
//! connections must therefore not set `busy_timeout`, which would put the default back.
//! Measured on the refresh scenario at half its maximum rate, SQLite, the log bounded by
//! RESTART checkpoints: p99 10.2–11.2 ms with SQLite's handler on the pooled connections,
//! 6.8–8.9 ms with this one (`docs/performance-log.md`, sixteenth session).
//!
//! The only `unsafe` of the workspace (which denies it elsewhere): diesel does not expose a
//! connection's handle, and SQLite's C API is how a handler is set. The two calls keep no
//! pointer and [`wait`] touches nothing but this thread's own state.

#![allow(unsafe_code)]

use std::cell::Cell;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

/// How long a connection waits for a lock before its statement fails with `SQLITE_BUSY`,
/// unless its thread set another limit.
pub(super) const DEFAULT_LIMIT: Duration = Duration::from_secs(5);

/// Until this long into a wait, tries again every [`SHORT_PAUSE`]: the holders of our
/// locks are usually done within it.
const SHORT_PHASE: Duration = Duration::from_millis(2);
const SHORT_PAUSE: Duration = Duration::from_micros(20);
/// Until this long, every [`MIDDLE_PAUSE`]; after it, every [`LONG_PAUSE`].
const MIDDLE_PHASE: Duration = Duration::from_millis(20);
const MIDDLE_PAUSE: Duration = Duration::from_micros(250);
const LONG_PAUSE: Duration = Duration::from_millis(2);

thread_local! {
    /// This thread's limit, and when its current wait began.
    static LIMIT: Cell<Duration> = const { Cell::new(DEFAULT_LIMIT) };
    static SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Installs [`wait`] on every SQLite connection opened from now on in this process; false
/// when SQLite refused, and then connections must set `busy_timeout`.
pub(super) fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: `on_open` has the signature SQLite calls an automatic extension with; it
        // only calls `sqlite3_busy_handler` on the connection it is given.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(on_open)) };
        if rc != ffi::SQLITE_OK {
            tracing::warn!(
                rc,
                "cannot install the SQLite busy handler; using busy_timeout"
            );
        }
        rc == ffi::SQLITE_OK
    })
}

/// Sets how long SQLite statements on this thread wait for a lock.
pub(super) fn limit_waits(limit: Duration) {
    LIMIT.with(|l| l.set(limit));
}

unsafe extern "C" fn on_open(
    db: *mut ffi::sqlite3,
    _err: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite hands over a connection it is opening; `wait` keeps no pointer.
    unsafe { ffi::sqlite3_busy_handler(db, Some(wait), std::ptr::null_mut()) }
}

/// SQLite's busy handler: `tries` is 0 on the first call of a wait. Returns non-zero to try
/// again, 0 to give up.
unsafe extern "C" fn wait(_arg: *mut c_void, tries: c_int) -> c_int {
    let now = Instant::now();
    // `try_with`: nothing here may panic across the C boundary, not even on a thread whose
    // thread-locals are being torn down (then the wait is the default one).
    let since = SINCE
        .try_with(|s| match s.get() {
            Some(since) if tries > 0 => since,
            _ => {
                s.set(Some(now));
                now
            }
        })
        .unwrap_or(now);
    let limit = LIMIT.try_with(Cell::get).unwrap_or(DEFAULT_LIMIT);
    match pause(now - since, limit) {
        Some(pause) => {
            std::thread::sleep(pause);
            1
        }
        None => 0,
    }
}

/// The pause before the next try, after `waited` of a wait limited to `limit`; `None` when
/// the wait is over.
fn pause(waited: Duration, limit: Duration) -> Option<Duration> {
    if waited >= limit {
        return None;
    }
    let pause = if waited < SHORT_PHASE {
        SHORT_PAUSE
    } else if waited < MIDDLE_PHASE {
        MIDDLE_PAUSE
    } else {
        LONG_PAUSE
    };
    Some(pause.min(limit - waited))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_the_wait_ends_at_the_limit() {
        let limit = Duration::from_millis(100);
        assert_eq!(pause(Duration::ZERO, limit), Some(SHORT_PAUSE));
        assert_eq!(pause(Duration::from_millis(5), limit), Some(MIDDLE_PAUSE));
        assert_eq!(pause(Duration::from_millis(50), limit), Some(LONG_PAUSE));
        assert_eq!(
            pause(Duration::from_micros(99_900), limit),
            Some(Duration::from_micros(100))
        );
        assert_eq!(pause(limit, limit), None);
    }
}
