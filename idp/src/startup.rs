//! Building a node's state from its configuration.

use std::sync::Arc;

use crate::authn::password::PasswordHasher;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::ephemeral::{Ephemeral, MemoryEphemeral, RedisEphemeral};
use crate::keyring::{Keyring, KeyringError};
use crate::state::AppState;
use crate::store::SqlStore;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the database with a pool sized for the backend (`DbKind::default_pool_size` unless
/// `db_pool_size` is set).
pub fn open_store(cfg: &Config) -> Result<SqlStore, BoxError> {
    Ok(SqlStore::connect(
        &cfg.database_url,
        cfg.db_pool_size.unwrap_or(0),
    )?)
}

/// Opens the database (migrated), the master key and the data keys: a store that seals
/// personal data, and the master key for the keyring.
pub fn open_sealed_store(
    cfg: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(SqlStore, keys::Sealer), BoxError> {
    let store = open_store(cfg)?;
    store.migrate()?;
    let master = crate::vault::load_master(cfg)?;
    let vault = crate::vault::open_vault(&store, &master, now)?;
    Ok((store.with_vault(Arc::new(vault)), master))
}

/// Opens the keyring (taking due rotation steps) with the configured schedule.
pub fn open_keyring(
    cfg: &Config,
    store: &SqlStore,
    master: keys::Sealer,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Keyring, KeyringError> {
    let policy = cfg.keys.policy().map_err(KeyringError::Config)?;
    Keyring::open(store, master, policy, now)
}

pub async fn build_state(cfg: Config, store: SqlStore) -> Result<AppState, BoxError> {
    let clock: Arc<dyn Clock> = if cfg.danger_test_clock {
        tracing::error!("danger_test_clock is on: anyone can move this server's clock forward");
        Arc::new(crate::clock::OffsetClock::default())
    } else {
        Arc::new(SystemClock)
    };
    let eph: Arc<dyn Ephemeral> = match &cfg.redis_url {
        Some(url) => Arc::new(RedisEphemeral::connect(url, &cfg.redis_prefix).await?),
        None => {
            let max = usize::try_from(cfg.ephemeral_max_mib.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX);
            Arc::new(MemoryEphemeral::with_ceiling(clock.clone(), max))
        }
    };
    let now = clock.now();
    let (store, keyring, csrf_seed) = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || -> Result<_, BoxError> {
            let master = crate::vault::load_master(&cfg)?;
            let vault = Arc::new(crate::vault::open_vault(&store, &master, now)?);
            let store = store.with_vault(vault.clone());
            let keyring = open_keyring(&cfg, &store, master, now)?;
            // From the index data key: the same on every node and across master-key rotations.
            Ok((store, keyring, vault.blind_index("propusk:csrf:v1")))
        })
        .await??
    };
    let passwords = PasswordHasher::new(&cfg.password)?;
    let issuer: Arc<str> = Arc::from(cfg.issuer());
    // Derived from the master key, so every node computes the same value.
    let mut csrf = [0u8; 32];
    for (i, b) in csrf_seed.bytes().enumerate() {
        csrf[i % 32] ^= b;
    }
    let mailbox = crate::notify::DevMailbox::new(cfg.notify.dev_mailbox_size);
    let client_cache_secs = cfg.client_cache_secs;
    Ok(AppState {
        mailbox,
        jwks_cache_control: format!("public, max-age={}", cfg.keys.jwks_max_age_secs),
        discovery: Arc::from(crate::protocol::discovery::document(
            &issuer,
            &cfg.keys
                .algs()?
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
        )),
        issuer,
        cfg: Arc::new(cfg),
        store,
        eph,
        keyring: Arc::new(keyring),
        clock,
        passwords: Arc::new(passwords),
        csrf_secret: Arc::new(csrf),
        clients: Arc::new(crate::store::ClientCache::new(
            std::time::Duration::from_secs(client_cache_secs),
        )),
    })
}

/// On an interval: takes due rotation steps (when `keys.auto_rotate`), then re-reads the
/// signing keys, so every node signs and publishes what the database says.
pub fn spawn_key_refresh(state: &AppState) {
    let (keyring, store, clock) = (
        state.keyring.clone(),
        state.store.clone(),
        state.clock.clone(),
    );
    let every = std::time::Duration::from_secs(state.cfg.keys.refresh_interval_secs.max(1));
    let auto_rotate = state.cfg.keys.auto_rotate;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (k, s, now) = (keyring.clone(), store.clone(), clock.now());
            let job = move || -> Result<(), KeyringError> {
                if auto_rotate {
                    for change in k.rotate(&s, now, "schedule")? {
                        tracing::info!(?change, "signing key rotation step");
                    }
                }
                k.refresh(&s)
            };
            match tokio::task::spawn_blocking(job).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "key refresh failed"),
                Err(e) => tracing::error!(error = %e, "key refresh task failed"),
            }
        }
    });
}

/// Starts the notification dispatcher: the outbox is sent through SMTP / the HTTP gateway,
/// or, for channels without one, into the dev mailbox.
pub fn spawn_notify(state: &AppState) -> Result<(), BoxError> {
    let senders = crate::notify::Senders::from_config(&state.cfg.notify, &state.mailbox)?;
    if !state.cfg.dev && state.cfg.notify.uses_dev_mailbox() {
        tracing::error!(
            "notify: no SMTP relay or gateway configured for some channels; their messages go to the dev mailbox only"
        );
    }
    crate::notify::Dispatcher::new(
        state.store.clone(),
        senders,
        state.clock.clone(),
        &state.cfg.notify,
    )
    .spawn();
    Ok(())
}

/// Starts the registry verifier: submits due SNILS + passport checks, polls for answers,
/// retries an unavailable registry with backoff (issue 5).
pub fn spawn_registry(state: &AppState) -> Result<(), BoxError> {
    let cfg = state.cfg.identity.registry.clone();
    let registry = crate::registry::from_config(&cfg)?;
    crate::registry::Verifier::new(state.store.clone(), registry, state.clock.clone(), cfg).spawn();
    Ok(())
}
