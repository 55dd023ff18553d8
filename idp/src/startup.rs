//! Building a node's state from its configuration.

use std::sync::Arc;

use crate::authn::password::PasswordHasher;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::ephemeral::{Ephemeral, MemoryEphemeral, RedisEphemeral};
use crate::keyring::{load_master_key, Keyring};
use crate::state::AppState;
use crate::store::SqlStore;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the database with a pool sized for the backend.
pub fn open_store(cfg: &Config) -> Result<SqlStore, BoxError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2);
    let is_pg = cfg.database_url.starts_with("postgres");
    let size = cfg
        .db_pool_size
        .unwrap_or(if is_pg { cores * 4 } else { cores * 2 });
    Ok(SqlStore::connect(&cfg.database_url, size)?)
}

pub async fn build_state(cfg: Config, store: SqlStore) -> Result<AppState, BoxError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let eph: Arc<dyn Ephemeral> = match &cfg.redis_url {
        Some(url) => Arc::new(RedisEphemeral::connect(url, &cfg.redis_prefix).await?),
        None => Arc::new(MemoryEphemeral::new(clock.clone())),
    };
    let master = load_master_key(&cfg)?;
    let now = clock.now();
    let s2 = store.clone();
    let keyring = tokio::task::spawn_blocking(move || Keyring::open(&s2, master, now)).await??;
    let passwords = PasswordHasher::new(&cfg.password)?;
    let issuer: Arc<str> = Arc::from(cfg.issuer());
    // Derived from the master key, so every node computes the same value.
    let mut csrf = [0u8; 32];
    let derived = keyring.derive_secret("propusk:csrf:v1");
    for (i, b) in derived.bytes().enumerate() {
        csrf[i % 32] ^= b;
    }
    Ok(AppState {
        discovery: Arc::from(crate::protocol::discovery::document(&issuer)),
        issuer,
        cfg: Arc::new(cfg),
        store,
        eph,
        keyring: Arc::new(keyring),
        clock,
        passwords: Arc::new(passwords),
        csrf_secret: Arc::new(csrf),
    })
}

/// Re-reads signing keys on an interval so every node uses what the database says.
pub fn spawn_key_refresh(state: &AppState) {
    let (keyring, store) = (state.keyring.clone(), state.store.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let (k, s) = (keyring.clone(), store.clone());
            match tokio::task::spawn_blocking(move || k.refresh(&s)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "key refresh failed"),
                Err(e) => tracing::error!(error = %e, "key refresh task failed"),
            }
        }
    });
}
