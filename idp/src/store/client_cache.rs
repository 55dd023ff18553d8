//! Client registrations, cached per node for a few seconds: the token endpoint reads the
//! client on every call, and registrations change rarely. A change made through the CLI (or
//! on another node) is seen everywhere within `clients.cache_secs`; misses are not cached,
//! so a newly registered client works at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{ClientStore, SqlStore, StoreResult};
use crate::domain::Client;

/// Entries kept at most; when full, the cache starts over (it only saves round trips).
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
pub struct ClientCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (Instant, Arc<Client>)>>,
}

impl ClientCache {
    /// `ttl` zero disables caching.
    pub fn new(ttl: Duration) -> ClientCache {
        ClientCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn cached(&self, id: &str, now: Instant) -> Option<Arc<Client>> {
        let entries = self.entries.read().ok()?;
        let (at, client) = entries.get(id)?;
        (now.duration_since(*at) < self.ttl).then(|| client.clone())
    }

    /// The client `id`, from the cache while fresh, else from the store.
    pub async fn find(&self, store: &SqlStore, id: &str) -> StoreResult<Option<Arc<Client>>> {
        if let Some(c) = self.cached(id, Instant::now()) {
            return Ok(Some(c));
        }
        let key = id.to_string();
        let found = store.call(move |s| s.find_client(&key)).await?;
        let Some(client) = found.map(Arc::new) else {
            return Ok(None);
        };
        if !self.ttl.is_zero() {
            if let Ok(mut entries) = self.entries.write() {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(id.to_string(), (Instant::now(), client.clone()));
            }
        }
        Ok(Some(client))
    }

    /// Forgets `id` on this node (after a change made by this process).
    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::store::sql::tests::{backends, client};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn serves_from_cache_until_the_ttl_then_rereads() {
        for db in backends() {
            let s: &SqlStore = &db;
            run(async {
                let cache = ClientCache::new(Duration::from_millis(300));
                assert!(cache.find(s, "rp").await.unwrap().is_none());
                // A miss is not remembered: a client registered now is found at once.
                s.insert_client(&client("rp")).unwrap();
                let first = cache.find(s, "rp").await.unwrap().unwrap();
                assert_eq!(first.id, "rp");
                assert!(s.remove_client("rp").unwrap());
                let again = cache.find(s, "rp").await.unwrap().unwrap();
                assert!(Arc::ptr_eq(&first, &again), "served from the cache");
                tokio::time::sleep(Duration::from_millis(350)).await;
                assert!(
                    cache.find(s, "rp").await.unwrap().is_none(),
                    "a removed client is gone once the entry is stale"
                );
                s.insert_client(&client("rp")).unwrap();
                cache.find(s, "rp").await.unwrap().unwrap();
                cache.forget("rp");
                assert!(s.remove_client("rp").unwrap());
                assert!(cache.find(s, "rp").await.unwrap().is_none());
            });
        }
    }

    #[test]
    fn zero_ttl_always_reads_the_store() {
        for db in backends() {
            let s: &SqlStore = &db;
            run(async {
                let cache = ClientCache::new(Duration::ZERO);
                s.insert_client(&client("rp")).unwrap();
                cache.find(s, "rp").await.unwrap().unwrap();
                assert!(s.remove_client("rp").unwrap());
                assert!(cache.find(s, "rp").await.unwrap().is_none());
            });
        }
    }
}
