//! The SQL store: one diesel code path for Postgres and SQLite through
//! `#[derive(MultiConnection)]`. The backend is chosen only when a connection is opened and
//! when migrations run; queries never branch on it.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, PooledConnection, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, ConnectionError, PgConnection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

/// Runs `$body` with `$c` bound to the backend's own connection rather than the
/// [`DbConnection`] that wraps both. Through the wrapper every execution writes the
/// statement's SQL text again (to find its prepared statement by text); on the backend's
/// own connection a statement whose type fixes its SQL is found by type, so hot statements
/// go this way. `$body` is compiled once per backend.
macro_rules! on_backend {
    ($db:expr, |$c:ident| $body:expr) => {
        match $db {
            $crate::store::sql::DbConnection::Pg($c) => $body,
            $crate::store::sql::DbConnection::Sqlite($c) => $body,
        }
    };
}

mod busy;
mod checkpoint;
#[cfg(test)]
mod credential_tests;
mod credentials;
#[cfg(test)]
mod esia_client_tests;
mod esia_clients;
mod key_store;
#[cfg(test)]
mod key_tests;
mod models;
mod outbox;
#[cfg(test)]
mod outbox_tests;
mod person;
mod person_edits;
#[cfg(test)]
mod person_edits_tests;
#[cfg(test)]
mod person_tests;
mod push;
#[cfg(test)]
mod push_tests;
mod queries;
#[cfg(test)]
mod refresh_tests;
mod rotation;
mod rotation_pg;
pub mod schema;
mod session_pg;
mod signin;
#[cfg(test)]
mod signin_tests;
#[cfg(test)]
pub(crate) mod tests;
mod webauthn;
#[cfg(test)]
mod webauthn_tests;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Serialises concurrent `migrate` calls of several nodes on one Postgres database.
const PG_MIGRATION_LOCK: i64 = 0x7072_6f70_7573_6b00; // "propusk\0"

/// SQLite settings applied to every pooled connection. No `busy_timeout`: it would replace
/// the busy handler every connection gets when it opens (`busy.rs`), which also makes
/// switching to WAL wait for other connections instead of failing.
const SQLITE_PRAGMAS: &str =
    "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

/// What a pooled SQLite connection waits with when the busy handler could not be
/// installed; it comes first so that switching to WAL waits too.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000;";

/// A connection to either database; every query is written once against this type.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Postgres,
    Sqlite,
}

impl DbKind {
    /// `postgres://` / `postgresql://` are Postgres; `sqlite://path`, `sqlite:path` and plain
    /// paths are SQLite files. Returns the kind and the string to hand to the driver.
    pub fn parse(database_url: &str) -> (DbKind, String) {
        let url = database_url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return (DbKind::Postgres, url.to_string());
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        (DbKind::Sqlite, path.to_string())
    }

    /// Pool size when the configuration gives none: Postgres serves many concurrent
    /// statements; SQLite has one writer, so a few connections suffice.
    pub fn default_pool_size(self) -> u32 {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2);
        match self {
            // Requests wait on the network round trip, so more connections than cores.
            DbKind::Postgres => cores * 4,
            // One writer at a time; readers run beside it in WAL mode.
            DbKind::Sqlite => cores * 2,
        }
    }
}

/// Opens connections of the kind the URL names. (diesel's `ConnectionManager` would call
/// `DbConnection::establish`, which falls back to SQLite when Postgres is unreachable and
/// would then create a file named after the Postgres URL.)
#[derive(Debug, Clone)]
pub struct DbManager {
    kind: DbKind,
    target: String,
}

impl ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        match self.kind {
            DbKind::Postgres => PgConnection::establish(&self.target).map(DbConnection::Pg),
            DbKind::Sqlite => SqliteConnection::establish(&self.target).map(DbConnection::Sqlite),
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        conn.ping()
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Applies [`SQLITE_PRAGMAS`] to each new SQLite connection, and leaves checkpoints to the
/// store's checkpoint thread when it runs (`checkpoint.rs`).
#[derive(Debug, Clone, Copy)]
pub struct SqlitePragmas {
    background_checkpoints: bool,
    /// The store's busy handler is installed (`busy.rs`).
    busy_handler: bool,
}

impl CustomizeConnection<DbConnection, ConnectionError> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        match conn {
            DbConnection::Sqlite(c) => {
                if !self.busy_handler {
                    c.batch_execute(SQLITE_BUSY_TIMEOUT)
                        .map_err(ConnectionError::CouldntSetupConfiguration)?;
                }
                c.batch_execute(SQLITE_PRAGMAS)
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                if self.background_checkpoints {
                    let limit = checkpoint::JOURNAL_SIZE_LIMIT;
                    c.batch_execute(&format!(
                        "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {limit};"
                    ))
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                }
                Ok(())
            }
            DbConnection::Pg(_) => Ok(()),
        }
    }
}

/// Postgres's `plan_cache_mode` for the connection that writes the refresh batches: one
/// generic plan for the batch statement (see [`SqlStore::batch_conn`]).
#[derive(Debug, Clone, Copy)]
struct GenericPlans;

impl CustomizeConnection<DbConnection, ConnectionError> for GenericPlans {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        match conn {
            DbConnection::Pg(c) => c
                .batch_execute("SET plan_cache_mode = force_generic_plan")
                .map_err(ConnectionError::CouldntSetupConfiguration),
            DbConnection::Sqlite(_) => Ok(()),
        }
    }
}

pub type DbPool = r2d2::Pool<DbManager>;
pub type PooledDb = PooledConnection<DbManager>;

/// Durable storage over a connection pool. Cheap to clone.
#[derive(Clone)]
pub struct SqlStore {
    pool: DbPool,
    /// Postgres: the connections of the refresh batches' writers (`rotation.rs`), apart
    /// from `pool`, with the batch statement planned once.
    batch_pool: Option<DbPool>,
    kind: DbKind,
    /// Seals personal data; attached by [`SqlStore::with_vault`] once the data keys are open.
    vault: Option<std::sync::Arc<keys::Vault>>,
    /// Refresh-token rotations waiting to be committed together (`rotation.rs`).
    rotations: std::sync::Arc<rotation::RotationQueue>,
    /// Keeps a SQLite file's checkpoint thread running (`checkpoint.rs`).
    _checkpoints: Option<checkpoint::Running>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict
            }
            DieselError::NotFound => StoreError::NotFound,
            other => StoreError::Db(other.to_string()),
        }
    }
}

impl SqlStore {
    /// Opens a pool for `database_url` (see [`DbKind::parse`]); `pool_size` 0 means the
    /// backend's default. Creates the parent directory of a SQLite file.
    pub fn connect(database_url: &str, pool_size: u32) -> Result<SqlStore, StoreError> {
        let (kind, target) = DbKind::parse(database_url);
        if target.is_empty() {
            return Err(StoreError::Db("empty database url".into()));
        }
        let mut size = if pool_size == 0 {
            kind.default_pool_size()
        } else {
            pool_size
        };
        let (mut checkpoints, mut busy_handler) = (None, false);
        if kind == DbKind::Sqlite {
            busy_handler = busy::install();
            if target == ":memory:" {
                // Every connection would see its own empty database.
                size = 1;
            } else {
                if let Some(dir) = Path::new(&target).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::Db(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                checkpoints = checkpoint::start(&target, busy_handler);
            }
        }
        let pool = r2d2::Pool::builder()
            .max_size(size.max(1))
            // No `SELECT 1` before every query (it doubled the round trips per request); a
            // connection that failed is dropped by `has_broken` instead.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SqlitePragmas {
                background_checkpoints: checkpoints.is_some(),
                busy_handler,
            }))
            .build(DbManager {
                kind,
                target: target.clone(),
            })
            .map_err(|e| StoreError::Db(format!("cannot open database: {e}")))?;
        let batch_pool = match kind {
            DbKind::Postgres => Some(
                r2d2::Pool::builder()
                    .max_size(rotation::LANES as u32)
                    .min_idle(Some(0))
                    .test_on_check_out(false)
                    .connection_timeout(Duration::from_secs(10))
                    .connection_customizer(Box::new(GenericPlans))
                    .build(DbManager { kind, target })
                    .map_err(|e| StoreError::Db(format!("cannot open database: {e}")))?,
            ),
            DbKind::Sqlite => None,
        };
        Ok(SqlStore {
            pool,
            batch_pool,
            kind,
            vault: None,
            rotations: Default::default(),
            _checkpoints: checkpoints,
        })
    }

    /// The store with personal data sealed by `vault` (see `crate::vault`).
    pub fn with_vault(mut self, vault: std::sync::Arc<keys::Vault>) -> SqlStore {
        self.vault = Some(vault);
        self
    }

    /// The vault that seals personal data; an error until one is attached.
    pub fn vault(&self) -> Result<&keys::Vault, StoreError> {
        self.vault
            .as_deref()
            .ok_or_else(|| StoreError::Sealing("personal data keys are not loaded".into()))
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// A pooled connection, for callers composing their own queries.
    pub fn conn(&self) -> Result<PooledDb, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Db(format!("no database connection: {e}")))
    }

    /// A connection for a batch of refresh-token writes (`rotation.rs`). On Postgres, one of
    /// its own, on which every statement has a generic plan: the batch statement's arrays
    /// would otherwise have it planned afresh for every batch whose arrays make a custom
    /// plan look cheaper than the generic one (a batch of first tokens only, as the code
    /// exchanges make: its UPDATE's arrays are empty), measured at ≈0.4 ms of planning
    /// per batch against ≈0.5 ms to run it. The generic plan is the one the statement was
    /// written for (`rotation_pg`: `= ANY` on the primary key).
    pub(super) fn batch_conn(&self) -> Result<PooledDb, StoreError> {
        self.batch_pool
            .as_ref()
            .unwrap_or(&self.pool)
            .get()
            .map_err(|e| StoreError::Db(format!("no database connection: {e}")))
    }

    /// Applies pending embedded migrations of the connected backend.
    pub fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            StoreError::Db(format!("migration failed: {e}"))
        };
        match &mut *conn {
            DbConnection::Pg(c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                    .execute(c)?;
                let res = c
                    .run_pending_migrations(PG_MIGRATIONS)
                    .map(|_| ())
                    .map_err(failed);
                let unlocked =
                    diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                        .execute(c);
                res?;
                unlocked?;
            }
            DbConnection::Sqlite(c) => {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|_| ())
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// Runs `f` on tokio's blocking pool; for async callers of the synchronous store traits.
    pub async fn call<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&SqlStore) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Db(format!("store task failed: {e}")))?
    }

    /// Runs `f` in one database transaction: committed if it returns Ok, rolled back otherwise.
    ///
    /// On SQLite a transaction starts deferred; begin with a write (as the stores here do) so
    /// the write lock is taken up front and waits (`busy.rs`) instead of failing on upgrade.
    pub fn transaction<R>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn()?;
        let db: &mut DbConnection = &mut conn;
        db.transaction(f)
    }
}

/// Times are stored as UTC without zone, truncated to microseconds (Postgres precision) so
/// both backends return exactly what was written.
pub(crate) fn to_db_time(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc().trunc_subsecs(6)
}

pub(crate) fn from_db_time(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}
