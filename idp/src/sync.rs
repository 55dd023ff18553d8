//! Locking shared by the in-process queues and caches.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking it over if a panicking thread left it poisoned. For the locks in this
/// crate that is safe: each guards state that is complete between statements (one map
/// call, one assignment), so a panic elsewhere cannot leave it half-changed.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
