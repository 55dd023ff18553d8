//! Redis-backed ephemeral store, shared by every node. Values are never logged.
//!
//! Each HTTP worker thread talks to Redis over a connection of its own
//! ([`Ephemeral::for_worker`]): the connection's driver task then runs on the same thread
//! as the requests that use it, so a command and its answer never wait for another thread
//! to be woken (with one shared connection, every command crossed threads twice).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{EphResult, Ephemeral, EphemeralError, FullWarnings};

/// INCR of KEYS[1], setting the TTL whenever the key has none (i.e. it was just created, so
/// a counter can never outlive its window), then GET of every other key: one atomic step.
const INCR_AND_GET: &str = r"
local v = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local out = {v}
for i = 2, #KEYS do
  out[i] = redis.call('GET', KEYS[i])
end
return out
";

/// INCR of KEYS[1] (its TTL set as in INCR_AND_GET) and, only when the count is at most
/// ARGV[2], SET of KEYS[2] with its expiry: one atomic step.
const COUNT_AND_PUT: &str = r"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if n <= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
end
return n
";

/// GETDEL, and only when the key was there, SET the mark with its expiry: one atomic step.
const TAKE_AND_MARK: &str = r"
local v = redis.call('GETDEL', KEYS[1])
if v then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return v
";

/// PEXPIRE of KEYS[1] and, only when it was there, SET of KEYS[2] with its expiry.
const TOUCH_AND_PUT: &str = r"
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

#[derive(Clone)]
pub struct RedisEphemeral {
    client: redis::Client,
    /// Opened by `connect`, or on first use by a worker's copy (so that its driver task is
    /// spawned on the worker's own runtime).
    conn: Arc<tokio::sync::OnceCell<ConnectionManager>>,
    prefix: String,
    incr_and_get: Script,
    count_and_put: Script,
    take_and_mark: Script,
    touch_and_put: Script,
}

impl std::fmt::Debug for RedisEphemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEphemeral")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> EphemeralError {
    if e.code() == Some("OOM") {
        return full(&e);
    }
    EphemeralError::Unavailable(e.to_string())
}

/// Redis at its `maxmemory` (with `noeviction`) refuses writes: [`EphemeralError::Full`],
/// warned about once a second for the whole process.
fn full(e: &redis::RedisError) -> EphemeralError {
    static WARNINGS: FullWarnings = FullWarnings::new();
    WARNINGS.refused(
        chrono::Utc::now().timestamp_millis(),
        format!("Redis is at its maxmemory ({e})"),
    )
}

/// Redis rejects a zero expiry; anything shorter than a millisecond becomes one.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisEphemeral {
    /// Connects to `url`; every key is stored as `<prefix>:<key>` so deployments and test
    /// runs can share one Redis.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, EphemeralError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let conn = open(&client).await?;
        let prefix = if prefix.is_empty() || prefix.ends_with(':') {
            prefix.to_owned()
        } else {
            format!("{prefix}:")
        };
        Ok(Self {
            client,
            conn: Arc::new(tokio::sync::OnceCell::new_with(Some(conn))),
            prefix,
            incr_and_get: Script::new(INCR_AND_GET),
            count_and_put: Script::new(COUNT_AND_PUT),
            take_and_mark: Script::new(TAKE_AND_MARK),
            touch_and_put: Script::new(TOUCH_AND_PUT),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// This copy's connection, opened on first use (a failed attempt is retried by the
    /// next command).
    async fn conn(&self) -> EphResult<ConnectionManager> {
        self.conn
            .get_or_try_init(|| open(&self.client))
            .await
            .cloned()
    }
}

async fn open(client: &redis::Client) -> EphResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(5))
        .set_response_timeout(Duration::from_secs(5))
        .set_number_of_retries(3);
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(unavailable)
}

#[async_trait::async_trait]
impl Ephemeral for RedisEphemeral {
    fn for_worker(&self) -> Option<Arc<dyn Ephemeral>> {
        Some(Arc::new(Self {
            conn: Arc::new(tokio::sync::OnceCell::new()),
            ..self.clone()
        }))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> EphResult<()> {
        let mut conn = self.conn().await?;
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> EphResult<bool> {
        let mut conn = self.conn().await?;
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(stored.is_some())
    }

    async fn get(&self, key: &str) -> EphResult<Option<Vec<u8>>> {
        let mut conn = self.conn().await?;
        conn.get(self.key(key)).await.map_err(unavailable)
    }

    async fn touch(&self, key: &str, ttl: Duration) -> EphResult<bool> {
        let mut conn = self.conn().await?;
        redis::cmd("PEXPIRE")
            .arg(self.key(key))
            .arg(ttl_ms(ttl))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn touch_and_put(
        &self,
        live: &str,
        live_ttl: Duration,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> EphResult<bool> {
        let mut conn = self.conn().await?;
        self.touch_and_put
            .key(self.key(live))
            .key(self.key(key))
            .arg(ttl_ms(live_ttl))
            .arg(value)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn take(&self, key: &str) -> EphResult<Option<Vec<u8>>> {
        let mut conn = self.conn().await?;
        redis::cmd("GETDEL")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn take_and_mark(
        &self,
        key: &str,
        mark_key: &str,
        mark: &[u8],
        ttl: Duration,
    ) -> EphResult<Option<Vec<u8>>> {
        let mut conn = self.conn().await?;
        self.take_and_mark
            .key(self.key(key))
            .key(self.key(mark_key))
            .arg(mark)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> EphResult<()> {
        let mut conn = self.conn().await?;
        conn.del::<_, ()>(self.key(key)).await.map_err(unavailable)
    }

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
        let mut conn = self.conn().await?;
        self.count_and_put
            .key(self.key(counter))
            .key(self.key(key))
            .arg(ttl_ms(window))
            .arg(max)
            .arg(value)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn incr_and_get(
        &self,
        counter: &str,
        ttl: Duration,
        keys: &[&str],
    ) -> EphResult<(u64, Vec<Option<Vec<u8>>>)> {
        let mut conn = self.conn().await?;
        let mut call = self.incr_and_get.key(self.key(counter));
        for k in keys {
            call.key(self.key(k));
        }
        // A missing key is Lua's false, which Redis answers as nil.
        let (n, values): (u64, Vec<Option<Vec<u8>>>) = call
            .arg(ttl_ms(ttl))
            .invoke_async::<redis::Value>(&mut conn)
            .await
            .and_then(|v| match v {
                redis::Value::Array(mut items) if !items.is_empty() => {
                    let n = redis::from_redis_value(&items.remove(0))?;
                    let values = items
                        .iter()
                        .map(redis::from_redis_value)
                        .collect::<redis::RedisResult<_>>()?;
                    Ok((n, values))
                }
                other => Err(redis::RedisError::from((
                    redis::ErrorKind::TypeError,
                    "incr_and_get answered",
                    format!("{other:?}"),
                ))),
            })
            .map_err(unavailable)?;
        Ok((n, values))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use super::RedisEphemeral;
    use crate::ephemeral::{Ephemeral, EphemeralError};

    const MINUTE: Duration = Duration::from_secs(60);

    /// A Redis of the test's own (the shared one's memory is not ours to fill): a free
    /// port, 3 MB of `maxmemory` with `noeviction`, nothing on disk.
    struct OwnRedis(Child);

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Redis at its `maxmemory` refuses writes, plain and scripted, as a full store (503
    /// without a log line each); reads go on, and a write fits again once room is made.
    #[tokio::test]
    async fn a_redis_at_its_maxmemory_is_a_full_store() {
        // With the Redis tests: where they run, the test command has installed Redis.
        if std::env::var("TEST_REDIS_URL").map_or(true, |u| u.is_empty()) {
            return;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/ensure-services.sh installs it)");
        let _redis = OwnRedis(child);
        let url = format!("redis://127.0.0.1:{port}");
        let mut eph = None;
        for _ in 0..100 {
            if let Ok(e) = RedisEphemeral::connect(&url, "full").await {
                eph = Some(e);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let eph = eph.expect("own redis-server did not start");
        let big = vec![b'x'; 64 * 1024];
        let mut refused = None;
        for i in 0..500 {
            if let Err(e) = eph.put(&format!("k{i}"), &big, MINUTE).await {
                refused = Some((i, e));
                break;
            }
        }
        let (stored, e) = refused.expect("3 MB never filled");
        assert!(matches!(e, EphemeralError::Full(_)), "{e:?}");
        assert!(stored > 5, "refused after {stored}");
        let scripted = eph.count_and_put("c", MINUTE, 5, "tx", b"v", MINUTE).await;
        assert!(
            matches!(scripted, Err(EphemeralError::Full(_))),
            "{scripted:?}"
        );
        assert!(eph.get("k0").await.unwrap().is_some(), "reads go on");
        for i in 0..4 {
            eph.delete(&format!("k{i}")).await.unwrap();
        }
        eph.put("after", b"v", MINUTE).await.unwrap();
    }
}
