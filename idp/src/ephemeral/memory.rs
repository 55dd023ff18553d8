//! In-process ephemeral store for the embedded mode: one map behind a mutex, with expiry
//! computed from the injected clock, and a ceiling on what it holds.
//!
//! Anyone can make the node store something (a login transaction per authorization
//! request, for 15 minutes), so the store has a ceiling (`ephemeral_max_mib`): a write that
//! would add bytes beyond it, once a sweep has given back what expired, is refused with
//! [`EphemeralError::Full`], which the pages and endpoints answer as "temporarily
//! unavailable". What is held is counted as its keys' and values' bytes plus
//! [`ENTRY_OVERHEAD`] per entry, about what the process spends on it. Taking a code and
//! marking it spent is never refused: the mark replaces what it takes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{EphResult, Ephemeral, EphemeralError, FullWarnings};
use crate::clock::Clock;

/// Expired entries are swept once the writes since the last sweep reach a quarter of the
/// entries held, and at least this many: a sweep visits every entry, so each write pays
/// for a few visits at most, and what is held stays bounded by what is live plus what was
/// written since the last sweep. (A sweep on every 256th write had each write pay for
/// visiting 1/256 of the map: under a minute of steady SSO sign-ins, with an hour's spent
/// codes held, several sweeps of ~300 000 entries a second.)
const SWEEP_EVERY: u64 = 256;

/// ... and at least this often while there are writes, so that what expired after a burst
/// is given back within a minute rather than after a quarter of the burst's writes again.
const SWEEP_AFTER: Millis = 60_000;

/// While full, a write sweeps at most this often before it is refused: a sweep visits every
/// entry, and a flood of refused writes must not each pay for one.
const FULL_SWEEP_AFTER: Millis = 1_000;

/// What an entry costs beyond its key's and value's bytes: its map slot (40 bytes, and the
/// map's spare room) and the allocator's headers and rounding of its two allocations.
/// Measured: an authorization code's spent mark of 123 bytes of key and value holds 244.
pub(crate) const ENTRY_OVERHEAD: usize = 128;

/// A moment, in milliseconds since the Unix epoch: 8 bytes where a `DateTime<Utc>` took 12
/// (16 with its alignment in [`Entry`]).
type Millis = i64;

/// One value: 24 bytes beside its key, 40 with it (a `Vec` and a `String` key, with a
/// `DateTime` expiry, took 64).
#[derive(Debug)]
struct Entry {
    value: Box<[u8]>,
    expires_at: Millis,
}

/// What an entry under `key` holding `value` counts for against the ceiling.
fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Box<str>, Entry>,
    /// What the entries held count for ([`cost`]).
    bytes: usize,
    /// The ceiling on `bytes`; 0: none.
    max_bytes: usize,
    /// Writes refused at the ceiling, warned about once a second.
    full: FullWarnings,
    /// Writes since the last sweep.
    writes: u64,
    /// Sweeps so far; for tests.
    sweeps: u64,
    /// When the last sweep ran.
    swept_at: Option<Millis>,
}

impl Inner {
    /// [`Ephemeral::incr`] under the caller's lock; `expires_at` for a new counter.
    fn incr(&mut self, key: &str, now: Millis, expires_at: Millis) -> EphResult<u64> {
        let (next, grown) = match self.live(key, now) {
            Some(entry) => {
                let current: u64 = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| EphemeralError::Unavailable("value is not a counter".into()))?;
                let next = current.saturating_add(1);
                let value = next.to_string().into_bytes().into_boxed_slice();
                let grown = value.len().saturating_sub(entry.value.len());
                entry.value = value;
                (next, grown)
            }
            None => {
                self.insert(key, b"1", expires_at, now)?;
                return Ok(1);
            }
        };
        // A counter's value only grows, by a digit now and then: counted, never refused.
        self.bytes += grown;
        self.wrote(now);
        Ok(next)
    }

    /// Stores `value` under `key` until `expires_at`, replacing any previous value; refused
    /// when what it adds would pass the ceiling.
    fn insert(
        &mut self,
        key: &str,
        value: &[u8],
        expires_at: Millis,
        now: Millis,
    ) -> EphResult<()> {
        let new = cost(key, value);
        // Under the ceiling with room to spare (nearly always), no look for what it replaces.
        if self.max_bytes != 0 && self.bytes + new > self.max_bytes {
            let old = self.map.get(key).map_or(0, |e| cost(key, &e.value));
            if new > old {
                self.make_room(new - old, now)?;
            }
        }
        self.store(key, value, expires_at, now);
        Ok(())
    }

    /// [`insert`](Self::insert) without the ceiling.
    fn store(&mut self, key: &str, value: &[u8], expires_at: Millis, now: Millis) {
        let value: Box<[u8]> = value.into();
        self.bytes += cost(key, &value);
        if let Some(old) = self.map.insert(key.into(), Entry { value, expires_at }) {
            self.bytes -= cost(key, &old.value);
        }
        self.wrote(now);
    }

    /// Ok when `more` bytes fit under the ceiling, after a sweep if they did not (at most
    /// one a second while full).
    fn make_room(&mut self, more: usize, now: Millis) -> EphResult<()> {
        if self.max_bytes == 0 || self.bytes + more <= self.max_bytes {
            return Ok(());
        }
        if self.swept_at.is_none_or(|at| now - at >= FULL_SWEEP_AFTER) {
            self.sweep(now);
        }
        if self.bytes + more <= self.max_bytes {
            return Ok(());
        }
        Err(self.full.refused(
            now,
            format!(
                "the in-process store holds {} bytes, its ceiling (ephemeral_max_mib) {}",
                self.bytes, self.max_bytes
            ),
        ))
    }

    /// Removes the entry under `key`, live or not.
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.bytes -= cost(key, &entry.value);
        Some(entry)
    }

    /// The live entry under `key`; an expired one is removed and reported absent.
    fn live(&mut self, key: &str, now: Millis) -> Option<&mut Entry> {
        let expired = self.map.get(key).is_some_and(|e| e.expires_at <= now);
        if expired {
            self.remove(key);
        }
        self.map.get_mut(key)
    }

    fn wrote(&mut self, now: Millis) {
        self.writes += 1;
        let paid = self.writes >= SWEEP_EVERY.max(self.map.len() as u64 / 4);
        let stale =
            self.writes >= SWEEP_EVERY && self.swept_at.is_none_or(|at| now - at >= SWEEP_AFTER);
        if paid || stale {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: Millis) {
        let mut freed = 0;
        self.map.retain(|k, e| {
            let keep = e.expires_at > now;
            if !keep {
                freed += cost(k, &e.value);
            }
            keep
        });
        self.bytes -= freed;
        self.writes = 0;
        self.sweeps += 1;
        self.swept_at = Some(now);
    }
}

#[derive(Debug)]
pub struct MemoryEphemeral {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl MemoryEphemeral {
    /// A store without a ceiling (tests, tools).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_ceiling(clock, 0)
    }

    /// A store that holds at most `max_bytes` (counted as in [`cost`]); 0: no ceiling.
    pub fn with_ceiling(clock: Arc<dyn Clock>, max_bytes: usize) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner {
                max_bytes,
                ..Inner::default()
            }),
        }
    }

    /// What the entries held count for against the ceiling.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Number of entries held, live or not yet swept; for tests and metrics.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sweeps so far.
    #[cfg(test)]
    fn sweeps(&self) -> u64 {
        self.lock().sweeps
    }

    /// Drops every expired entry now.
    pub fn sweep(&self) {
        let now = self.now();
        self.lock().sweep(now);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    fn now(&self) -> Millis {
        self.clock.now().timestamp_millis()
    }

    fn expiry(&self, now: Millis, ttl: Duration) -> Millis {
        let ttl = Millis::try_from(ttl.as_millis()).unwrap_or(Millis::MAX);
        now.saturating_add(ttl)
    }
}

#[async_trait::async_trait]
impl Ephemeral for MemoryEphemeral {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> EphResult<()> {
        let now = self.now();
        let expires_at = self.expiry(now, ttl);
        self.lock().insert(key, value, expires_at, now)
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphResult<bool> {
        let now = self.now();
        let expires_at = self.expiry(now, ttl);
        let mut inner = self.lock();
        if inner.live(key, now).is_some() {
            return Ok(false);
        }
        inner.insert(key, value, expires_at, now)?;
        Ok(true)
    }

    async fn get(&self, key: &str) -> EphResult<Option<Vec<u8>>> {
        let now = self.now();
        Ok(self.lock().live(key, now).map(|e| e.value.to_vec()))
    }

    async fn touch(&self, key: &str, ttl: Duration) -> EphResult<bool> {
        let now = self.now();
        let expires_at = self.expiry(now, ttl);
        Ok(match self.lock().live(key, now) {
            Some(e) => {
                e.expires_at = expires_at;
                true
            }
            None => false,
        })
    }

    async fn touch_and_put(
        &self,
        live: &str,
        live_ttl: Duration,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> EphResult<bool> {
        let now = self.now();
        let (live_until, expires_at) = (self.expiry(now, live_ttl), self.expiry(now, ttl));
        let mut inner = self.lock();
        let Some(entry) = inner.live(live, now) else {
            return Ok(false);
        };
        entry.expires_at = live_until;
        inner.insert(key, value, expires_at, now)?;
        Ok(true)
    }

    async fn take(&self, key: &str) -> EphResult<Option<Vec<u8>>> {
        let now = self.now();
        let mut inner = self.lock();
        Ok(inner
            .remove(key)
            .filter(|e| e.expires_at > now)
            .map(|e| e.value.into_vec()))
    }

    async fn take_and_mark(
        &self,
        key: &str,
        mark_key: &str,
        mark: &[u8],
        ttl: Duration,
    ) -> EphResult<Option<Vec<u8>>> {
        let now = self.now();
        let expires_at = self.expiry(now, ttl);
        let mut inner = self.lock();
        let Some(taken) = inner.remove(key).filter(|e| e.expires_at > now) else {
            return Ok(None);
        };
        // Never refused: the mark stands in for the code it takes.
        inner.store(mark_key, mark, expires_at, now);
        Ok(Some(taken.value.into_vec()))
    }

    async fn delete(&self, key: &str) -> EphResult<()> {
        self.lock().remove(key);
        Ok(())
    }

    /// Like Redis INCR: the value is a decimal counter; the TTL is set when it is created.
    async fn incr(&self, key: &str, ttl: Duration) -> EphResult<u64> {
        Ok(self.incr_and_get(key, ttl, &[]).await?.0)
    }

    async fn count_and_put(
        &self,
        counter: &str,
        window: Duration,
        max: u64,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> EphResult<u64> {
        let now = self.now();
        let (counted_until, expires_at) = (self.expiry(now, window), self.expiry(now, ttl));
        let mut inner = self.lock();
        let n = inner.incr(counter, now, counted_until)?;
        if n <= max {
            inner.insert(key, value, expires_at, now)?;
        }
        Ok(n)
    }

    async fn incr_and_get(
        &self,
        counter: &str,
        ttl: Duration,
        keys: &[&str],
    ) -> EphResult<(u64, Vec<Option<Vec<u8>>>)> {
        let now = self.now();
        let expires_at = self.expiry(now, ttl);
        let mut inner = self.lock();
        let n = inner.incr(counter, now, expires_at)?;
        let values = keys
            .iter()
            .map(|k| inner.live(k, now).map(|e| e.value.to_vec()))
            .collect();
        Ok((n, values))
    }
}

/// Ephemeral contract tests: every body runs on memory, and on Redis when `TEST_REDIS_URL`
/// is set (each run under its own random key prefix).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::TimeZone;

    use super::MemoryEphemeral;
    use crate::clock::FixedClock;
    use crate::ephemeral::{Ephemeral, RedisEphemeral};

    struct Backend {
        eph: Arc<dyn Ephemeral>,
        /// Memory moves this clock; Redis has real time only.
        clock: Option<FixedClock>,
    }

    impl Backend {
        /// A TTL short enough to wait out on Redis; on memory the clock is moved instead.
        fn short_ttl(&self) -> Duration {
            match self.clock {
                Some(_) => Duration::from_secs(60),
                None => Duration::from_millis(200),
            }
        }

        async fn pass(&self, d: Duration) {
            match &self.clock {
                Some(c) => c.advance(chrono::Duration::from_std(d).unwrap()),
                None => tokio::time::sleep(d).await,
            }
        }
    }

    fn clock() -> FixedClock {
        FixedClock::new(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
                .unwrap(),
        )
    }

    async fn backends() -> Vec<Backend> {
        let c = clock();
        let mut all = vec![Backend {
            eph: Arc::new(MemoryEphemeral::new(Arc::new(c.clone()))),
            clock: Some(c),
        }];
        if let Ok(url) = std::env::var("TEST_REDIS_URL") {
            if !url.is_empty() {
                let prefix = format!("propusk_t_{}", uuid::Uuid::new_v4().simple());
                let eph = RedisEphemeral::connect(&url, &prefix).await.unwrap();
                all.push(Backend {
                    eph: Arc::new(eph),
                    clock: None,
                });
            }
        }
        all
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn put_get_overwrite() {
        for b in backends().await {
            let e = &b.eph;
            assert_eq!(e.get("k").await.unwrap(), None, "{e:?}");
            e.put("k", b"one", MINUTE).await.unwrap();
            assert_eq!(e.get("k").await.unwrap().as_deref(), Some(&b"one"[..]));
            e.put("k", b"\x00two\xff", MINUTE).await.unwrap();
            assert_eq!(
                e.get("k").await.unwrap().as_deref(),
                Some(&b"\x00two\xff"[..])
            );
            assert_eq!(e.get("other").await.unwrap(), None);
        }
    }

    /// A worker's copy (`Ephemeral::for_worker`) sees what the original stores and the
    /// other way round, working on a thread with its own single-threaded runtime as an HTTP
    /// worker does; the original keeps answering after that runtime (and with it the copy's
    /// connection) is gone.
    #[tokio::test]
    async fn a_worker_copy_shares_the_data() {
        for b in backends().await {
            let e = b.eph.clone();
            let copy = e.for_worker().unwrap_or_else(|| e.clone());
            e.put("w", b"from the original", MINUTE).await.unwrap();
            let seen = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let seen = copy.get("w").await.unwrap();
                    copy.put("w2", b"from the worker", MINUTE).await.unwrap();
                    seen
                })
            })
            .join()
            .unwrap();
            assert_eq!(seen.as_deref(), Some(&b"from the original"[..]), "{e:?}");
            assert_eq!(
                e.get("w2").await.unwrap().as_deref(),
                Some(&b"from the worker"[..])
            );
        }
    }

    /// Only the Redis store keeps per-worker connections; the in-process one is shared.
    #[tokio::test]
    async fn only_redis_makes_worker_copies() {
        for b in backends().await {
            let redis = format!("{:?}", b.eph).starts_with("RedisEphemeral");
            assert_eq!(b.eph.for_worker().is_some(), redis, "{:?}", b.eph);
        }
    }

    #[tokio::test]
    async fn touch_extends_only_a_live_key() {
        for b in backends().await {
            let e = &b.eph;
            let ttl = b.short_ttl();
            assert!(!e.touch("t", MINUTE).await.unwrap(), "{e:?}: absent");
            assert_eq!(e.get("t").await.unwrap(), None, "touch stores nothing");
            e.put("t", b"1", ttl).await.unwrap();
            assert!(e.touch("t", ttl * 4).await.unwrap());
            // Past the first TTL, within the new one.
            b.pass(ttl * 2).await;
            assert_eq!(e.get("t").await.unwrap().as_deref(), Some(&b"1"[..]));
            b.pass(ttl * 3).await;
            assert!(!e.touch("t", ttl).await.unwrap(), "expired");
            assert_eq!(e.get("t").await.unwrap(), None);
        }
    }

    /// The value is stored only while the live key is there, and storing it extends that
    /// key; once the live key has expired nothing is stored.
    #[tokio::test]
    async fn touch_and_put_stores_only_while_the_live_key_lives() {
        for b in backends().await {
            let e = &b.eph;
            let ttl = b.short_ttl();
            let long = ttl * 100;
            assert!(
                !e.touch_and_put("live", ttl, "v", b"x", long).await.unwrap(),
                "{e:?}"
            );
            assert_eq!(
                e.get("v").await.unwrap(),
                None,
                "stored without the live key"
            );
            assert_eq!(
                e.get("live").await.unwrap(),
                None,
                "the live key was created"
            );
            e.put("live", b"1", ttl).await.unwrap();
            assert!(e
                .touch_and_put("live", ttl * 4, "v", b"one", long)
                .await
                .unwrap());
            assert_eq!(e.get("v").await.unwrap().as_deref(), Some(&b"one"[..]));
            // Past the live key's first TTL, within the one the store gave it.
            b.pass(ttl * 2).await;
            assert_eq!(e.get("live").await.unwrap().as_deref(), Some(&b"1"[..]));
            assert!(e
                .touch_and_put("live", ttl, "w", b"two", long)
                .await
                .unwrap());
            b.pass(ttl * 2).await;
            assert!(!e
                .touch_and_put("live", ttl, "u", b"three", long)
                .await
                .unwrap());
            assert_eq!(
                e.get("u").await.unwrap(),
                None,
                "stored after the live key expired"
            );
            assert_eq!(e.get("w").await.unwrap().as_deref(), Some(&b"two"[..]));
        }
    }

    #[tokio::test]
    async fn put_if_absent_stores_once() {
        for b in backends().await {
            let e = &b.eph;
            assert!(
                e.put_if_absent("k", b"first", MINUTE).await.unwrap(),
                "{e:?}"
            );
            assert!(!e.put_if_absent("k", b"second", MINUTE).await.unwrap());
            assert_eq!(e.get("k").await.unwrap().as_deref(), Some(&b"first"[..]));
            e.delete("k").await.unwrap();
            assert!(e.put_if_absent("k", b"third", MINUTE).await.unwrap());
        }
    }

    #[tokio::test]
    async fn take_is_single_use() {
        for b in backends().await {
            let e = &b.eph;
            e.put("code", b"payload", MINUTE).await.unwrap();
            assert_eq!(
                e.take("code").await.unwrap().as_deref(),
                Some(&b"payload"[..]),
                "{e:?}"
            );
            assert_eq!(e.take("code").await.unwrap(), None);
            assert_eq!(e.get("code").await.unwrap(), None);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_takes_yield_one_value() {
        for b in backends().await {
            b.eph.put("code", b"payload", MINUTE).await.unwrap();
            let barrier = Arc::new(tokio::sync::Barrier::new(16));
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (e, barrier) = (b.eph.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        e.take("code").await.unwrap()
                    })
                })
                .collect();
            let mut got = 0;
            for t in tasks {
                if t.await.unwrap().is_some() {
                    got += 1;
                }
            }
            assert_eq!(got, 1, "{:?}", b.eph);
        }
    }

    #[tokio::test]
    async fn take_and_mark_marks_only_what_it_took() {
        for b in backends().await {
            let e = &b.eph;
            // Nothing to take: nothing marked.
            assert_eq!(
                e.take_and_mark("code", "spent", b"first", MINUTE)
                    .await
                    .unwrap(),
                None,
                "{e:?}"
            );
            assert_eq!(e.get("spent").await.unwrap(), None, "{e:?}");
            e.put("code", b"payload", MINUTE).await.unwrap();
            assert_eq!(
                e.take_and_mark("code", "spent", b"first", MINUTE)
                    .await
                    .unwrap()
                    .as_deref(),
                Some(&b"payload"[..]),
                "{e:?}"
            );
            assert_eq!(e.get("code").await.unwrap(), None, "{e:?}");
            // A replay takes nothing and leaves the first use's mark as it was.
            assert_eq!(
                e.take_and_mark("code", "spent", b"replay", MINUTE)
                    .await
                    .unwrap(),
                None,
                "{e:?}"
            );
            assert_eq!(
                e.get("spent").await.unwrap().as_deref(),
                Some(&b"first"[..]),
                "{e:?}"
            );
        }
    }

    /// The value is stored only while the count is within the limit; the count goes on, and
    /// starts again once its window has passed.
    #[tokio::test]
    async fn count_and_put_stores_only_within_the_limit() {
        for b in backends().await {
            let e = &b.eph;
            let window = b.short_ttl();
            for (i, want) in [(1, true), (2, true), (3, false), (4, false)] {
                let key = format!("tx-{i}");
                let n = e
                    .count_and_put("starts", window, 2, &key, b"tx", MINUTE * 10)
                    .await
                    .unwrap();
                assert_eq!(n, i, "{e:?}");
                assert_eq!(e.get(&key).await.unwrap().is_some(), want, "{e:?}: {key}");
            }
            b.pass(window * 2).await;
            let n = e
                .count_and_put("starts", window, 2, "tx-5", b"tx", MINUTE * 10)
                .await
                .unwrap();
            assert_eq!(n, 1, "{e:?}: a new window");
            assert!(e.get("tx-5").await.unwrap().is_some());
            assert!(
                e.get("tx-1").await.unwrap().is_some(),
                "kept for its own ttl"
            );
        }
    }

    /// What the store holds is counted as it changes: writes, overwrites, counters, takes,
    /// deletes, expiry and sweeps.
    #[tokio::test]
    async fn memory_counts_what_it_holds() {
        let c = clock();
        let m = MemoryEphemeral::new(Arc::new(c.clone()));
        let cost = |k: &str, v: &[u8]| super::cost(k, v);
        m.put("a", b"12345", MINUTE).await.unwrap();
        m.put("b", b"x", MINUTE * 2).await.unwrap();
        assert_eq!(m.bytes(), cost("a", b"12345") + cost("b", b"x"));
        m.put("a", b"1", MINUTE).await.unwrap();
        assert_eq!(m.bytes(), cost("a", b"1") + cost("b", b"x"));
        for _ in 0..10 {
            m.incr("n", MINUTE).await.unwrap();
        }
        assert_eq!(
            m.bytes(),
            cost("a", b"1") + cost("b", b"x") + cost("n", b"10")
        );
        m.take_and_mark("a", "spent", b"mark", MINUTE)
            .await
            .unwrap();
        m.delete("n").await.unwrap();
        assert_eq!(m.bytes(), cost("spent", b"mark") + cost("b", b"x"));
        c.advance(chrono::Duration::seconds(61));
        assert_eq!(m.get("spent").await.unwrap(), None);
        assert_eq!(
            m.bytes(),
            cost("b", b"x"),
            "an expired entry found is removed"
        );
        c.advance(chrono::Duration::seconds(60));
        m.sweep();
        assert_eq!((m.len(), m.bytes()), (0, 0));
    }

    /// At its ceiling the store refuses what would add to it, and only that: reads,
    /// smaller overwrites, deletes and the spent mark of a taken code go on, and once
    /// entries expire writes are taken again (after one sweep, at most one a second).
    #[tokio::test]
    async fn memory_refuses_what_passes_its_ceiling() {
        use crate::ephemeral::EphemeralError;
        let c = clock();
        let one = super::cost("k-00", &[0u8; 100]);
        let m = MemoryEphemeral::with_ceiling(Arc::new(c.clone()), 10 * one);
        for i in 0..10 {
            m.put(&format!("k-{i:02}"), &[0u8; 100], MINUTE)
                .await
                .unwrap();
        }
        assert_eq!(m.bytes(), 10 * one);
        let full = |r: Result<(), EphemeralError>| matches!(r, Err(EphemeralError::Full(_)));
        assert!(
            full(m.put("k-10", &[0u8; 100], MINUTE).await),
            "an eleventh"
        );
        assert!(
            full(m.put("k-00", &[0u8; 101], MINUTE).await),
            "a larger overwrite"
        );
        assert!(matches!(
            m.put_if_absent("k-10", b"v", MINUTE).await,
            Err(EphemeralError::Full(_))
        ));
        assert!(matches!(
            m.incr("counter", MINUTE).await,
            Err(EphemeralError::Full(_))
        ));
        assert!(matches!(
            m.count_and_put("starts", MINUTE, 5, "tx", b"v", MINUTE)
                .await,
            Err(EphemeralError::Full(_))
        ));
        assert_eq!(
            m.get("k-10").await.unwrap(),
            None,
            "nothing refused was stored"
        );
        assert!(m.get("k-05").await.unwrap().is_some());
        m.put("k-00", &[0u8; 50], MINUTE).await.unwrap();
        assert!(
            m.take_and_mark("k-01", "spent:k-01", &[0u8; 200], MINUTE)
                .await
                .unwrap()
                .is_some(),
            "a code's spent mark is never refused"
        );
        m.delete("k-02").await.unwrap();
        m.delete("k-03").await.unwrap();
        m.put("k-10", &[0u8; 100], MINUTE).await.unwrap();
        c.advance(chrono::Duration::seconds(61));
        m.put("after", &[0u8; 100], MINUTE).await.unwrap();
        assert_eq!(m.len(), 1, "the expired were swept to make room");
        assert_eq!(m.bytes(), super::cost("after", &[0u8; 100]));
    }

    #[tokio::test]
    async fn take_and_mark_gives_the_mark_its_ttl() {
        for b in backends().await {
            let e = &b.eph;
            e.put("code", b"payload", MINUTE).await.unwrap();
            let short = b.short_ttl();
            e.take_and_mark("code", "spent", b"m", short).await.unwrap();
            assert!(e.get("spent").await.unwrap().is_some(), "{e:?}");
            b.pass(short * 2).await;
            assert_eq!(e.get("spent").await.unwrap(), None, "{e:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_take_and_mark_has_one_winner_whose_mark_stays() {
        for b in backends().await {
            b.eph.put("code", b"payload", MINUTE).await.unwrap();
            let barrier = Arc::new(tokio::sync::Barrier::new(16));
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let (e, barrier) = (b.eph.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        let mark = format!("taker {i}");
                        let got = e
                            .take_and_mark("code", "spent", mark.as_bytes(), MINUTE)
                            .await
                            .unwrap();
                        got.map(|_| mark)
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for t in tasks {
                winners.extend(t.await.unwrap());
            }
            assert_eq!(winners.len(), 1, "{:?}", b.eph);
            assert_eq!(
                b.eph.get("spent").await.unwrap().as_deref(),
                Some(winners[0].as_bytes()),
                "{:?}",
                b.eph
            );
        }
    }

    #[tokio::test]
    async fn delete_removes() {
        for b in backends().await {
            let e = &b.eph;
            e.put("k", b"v", MINUTE).await.unwrap();
            e.delete("k").await.unwrap();
            assert_eq!(e.get("k").await.unwrap(), None, "{e:?}");
            e.delete("never-there").await.unwrap();
        }
    }

    #[tokio::test]
    async fn incr_counts_and_expires() {
        for b in backends().await {
            let e = &b.eph;
            let ttl = b.short_ttl();
            assert_eq!(e.incr("n", ttl).await.unwrap(), 1, "{e:?}");
            assert_eq!(e.incr("n", ttl).await.unwrap(), 2);
            assert_eq!(e.incr("n", ttl).await.unwrap(), 3);
            assert_eq!(e.incr("m", ttl).await.unwrap(), 1);
            // The window is fixed at the first increment, not extended by later ones.
            b.pass(ttl + ttl / 2).await;
            assert_eq!(e.incr("n", ttl).await.unwrap(), 1);
        }
    }

    #[tokio::test]
    async fn incr_and_get_counts_and_reads_in_one_step() {
        for b in backends().await {
            let e = &b.eph;
            let ttl = b.short_ttl();
            e.put("a", b"one", ttl).await.unwrap();
            e.put("b", b"", ttl).await.unwrap();
            let (n, values) = e
                .incr_and_get("n", ttl, &["a", "missing", "b"])
                .await
                .unwrap();
            assert_eq!(n, 1, "{e:?}");
            assert_eq!(values, [Some(b"one".to_vec()), None, Some(Vec::new())]);
            // The same counter as incr's, its window fixed at the first count.
            assert_eq!(e.incr("n", ttl).await.unwrap(), 2);
            let (n, values) = e.incr_and_get("n", ttl, &[]).await.unwrap();
            assert_eq!((n, values.len()), (3, 0));
            b.pass(ttl + ttl / 2).await;
            let (n, values) = e.incr_and_get("n", ttl, &["a"]).await.unwrap();
            assert_eq!((n, values), (1, vec![None]), "counter and value expired");
        }
    }

    #[tokio::test]
    async fn values_expire_after_ttl() {
        for b in backends().await {
            let e = &b.eph;
            let ttl = b.short_ttl();
            e.put("a", b"v", ttl).await.unwrap();
            e.put("b", b"v", ttl).await.unwrap();
            e.put("long", b"v", ttl * 100).await.unwrap();
            b.pass(ttl + ttl / 2).await;
            assert_eq!(e.get("a").await.unwrap(), None, "{e:?}");
            assert_eq!(e.take("b").await.unwrap(), None);
            assert!(e.put_if_absent("a", b"again", ttl).await.unwrap());
            assert_eq!(e.get("long").await.unwrap().as_deref(), Some(&b"v"[..]));
        }
    }

    /// A sweep visits every entry held, so it comes once the writes since the last one
    /// reach a quarter of them: with 40 000 entries held, a write does not pay for a sweep
    /// of them all (every 256th write did).
    #[tokio::test]
    async fn memory_sweeps_are_paid_for_by_the_writes_since_the_last() {
        const HOUR: Duration = Duration::from_secs(3600);
        let m = MemoryEphemeral::new(Arc::new(clock()));
        for i in 0..40_000 {
            m.put(&format!("held-{i}"), b"v", HOUR).await.unwrap();
        }
        m.sweep();
        let swept = m.sweeps();
        // The k-th write sweeps when k >= (40 000 + k) / 4, at k = 13 334.
        for i in 0..13_000 {
            m.put(&format!("more-{i}"), b"v", HOUR).await.unwrap();
        }
        assert_eq!(
            m.sweeps(),
            swept,
            "no sweep of the whole map every 256 writes"
        );
        for i in 13_000..13_400 {
            m.put(&format!("more-{i}"), b"v", HOUR).await.unwrap();
        }
        assert_eq!(m.sweeps(), swept + 1);
        assert_eq!(m.len(), 53_400, "nothing live was swept");
    }

    /// After a burst, what expired is given back once a minute has passed and some writes
    /// come, not only after a quarter of the burst's writes again.
    #[tokio::test]
    async fn memory_a_bursts_expired_entries_go_within_a_minute() {
        let c = clock();
        let m = MemoryEphemeral::new(Arc::new(c.clone()));
        for i in 0..40_000 {
            m.put(&format!("burst-{i}"), b"v", MINUTE).await.unwrap();
        }
        m.sweep();
        c.advance(chrono::Duration::seconds(61));
        for i in 0..super::SWEEP_EVERY {
            m.put(&format!("later-{i}"), b"v", MINUTE).await.unwrap();
        }
        assert_eq!(m.len(), super::SWEEP_EVERY as usize, "the burst was swept");
    }

    #[tokio::test]
    async fn memory_boundary_of_expiry_and_sweep() {
        let c = clock();
        let m = MemoryEphemeral::new(Arc::new(c.clone()));
        m.put("k", b"v", Duration::from_secs(10)).await.unwrap();
        c.advance(chrono::Duration::milliseconds(9_999));
        assert!(m.get("k").await.unwrap().is_some());
        c.advance(chrono::Duration::milliseconds(1));
        assert!(
            m.get("k").await.unwrap().is_none(),
            "gone exactly at expiry"
        );

        for i in 0..1000 {
            m.put(&format!("old-{i}"), b"v", Duration::from_secs(1))
                .await
                .unwrap();
        }
        c.advance(chrono::Duration::seconds(2));
        for i in 0..super::SWEEP_EVERY {
            m.put(&format!("new-{i}"), b"v", Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(
            m.len() <= 2 * super::SWEEP_EVERY as usize,
            "expired entries were swept: {}",
            m.len()
        );
        m.sweep();
        assert_eq!(m.len(), super::SWEEP_EVERY as usize);
    }
}
