//! SQLite's WAL checkpoints, off the write path.
//!
//! In WAL mode a commit appends to the `-wal` file; by default the commit that takes the
//! log past 1,000 pages then copies the log back into the database file and syncs both (an
//! automatic checkpoint) inside the writer's own call. SQLite has one writer, so every
//! write queued behind it waited too: under refresh load one commit in a few dozen took
//! 10–20 ms longer, which was the whole tail (refresh at half the maximum rate: p90 15–21
//! ms, p99 21–28 ms; `docs/performance-log.md`, eighth session).
//!
//! So the pooled connections never checkpoint (`wal_autocheckpoint = 0`) and a thread of
//! the store runs a PASSIVE checkpoint every [`EVERY`] on a connection of its own (p90 then
//! about 3 ms, p99 4.6–6.3 ms; checkpoints every 200 ms or every second left larger ones
//! and a longer tail, 5.9–37 and 11.7–17.5 ms). PASSIVE neither waits for nor blocks
//! readers and writers (what a reader still needs is left for the next round); once the
//! whole log has been copied and no reader still reads from it, the next writer starts it
//! again from the beginning. The thread ends when the last clone of the store is dropped.
//! If its connection cannot be opened, the pool keeps SQLite's automatic checkpoints.
//!
//! Under a steady stream of requests some reader is nearly always reading from the log, so
//! PASSIVE alone never let it start again and the `-wal` file grew without bound (3.5 GB
//! after 30 s of SSO sign-ins) although every round copied all of it. So a round that finds
//! more than [`RESTART_AFTER_FRAMES`] pages in the log also checkpoints in RESTART mode: it
//! waits (at most [`RESTART_WAIT`]) for the readers of the log to finish their
//! statement, holding new writes back meanwhile, after which the next writer starts the
//! log again. That wait is the price: refresh at half the maximum rate on SQLite, p99
//! ≈4 ms with the unbounded log, 7–9 ms with this bound (10–13 ms while writers waited
//! with SQLite's own busy handler: `busy.rs`, `docs/performance-log.md`). The
//! pooled connections' `journal_size_limit` cuts the file back to [`JOURNAL_SIZE_LIMIT`]
//! when a burst left it larger.

use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};

/// How often the log is copied back: small, frequent checkpoints disturb the writer least
/// (an idle round is one cheap statement).
const EVERY: Duration = Duration::from_millis(50);

/// Pages in the log past which a round waits for its readers so that the log starts again
/// (16 MiB of 4 KiB pages; at the highest write rates about five times a second).
const RESTART_AFTER_FRAMES: i32 = 4096;

/// How long a RESTART waits for the log's readers (`busy.rs`) before it gives up until the
/// next round; new writes wait for it meanwhile.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// Bytes the `-wal` file is cut back to when a writer starts it again
/// (`PRAGMA journal_size_limit` of the pooled connections).
pub(super) const JOURNAL_SIZE_LIMIT: u64 = 64 << 20;

/// The answer of `PRAGMA wal_checkpoint`.
#[derive(diesel::QueryableByName)]
struct Checkpointed {
    /// 1 when a RESTART could not finish within its wait.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    /// Pages in the log.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
}

/// Keeps the checkpoint thread running while any clone of the store holds it.
pub(super) type Running = mpsc::Sender<()>;

/// Starts the checkpoint thread for the database file at `path`; `None` (and a warning)
/// when it cannot, in which case writers must keep checkpointing.
/// `busy_handler`: the store's busy handler is installed (`busy.rs`); without it the
/// connection waits by `busy_timeout`.
pub(super) fn start(path: &str, busy_handler: bool) -> Option<Running> {
    match spawn(path, busy_handler) {
        Ok(running) => Some(running),
        Err(e) => {
            tracing::warn!(error = %e, "no background WAL checkpoints; commits will checkpoint");
            None
        }
    }
}

fn spawn(path: &str, busy_handler: bool) -> Result<Running, Box<dyn std::error::Error>> {
    let mut conn = SqliteConnection::establish(path)?;
    if !busy_handler {
        let ms = RESTART_WAIT.as_millis();
        conn.batch_execute(&format!("PRAGMA busy_timeout = {ms};"))?;
    }
    let (running, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            super::busy::limit_waits(RESTART_WAIT);
            // Nothing is ever sent: the wait ends by timing out, or when every sender
            // (every clone of the store) is gone.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                if let Err(e) = round(&mut conn) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retried next round");
                }
            }
        })?;
    Ok(running)
}

/// One round: a PASSIVE checkpoint and, when the log is long, a RESTART one.
fn round(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    if checkpoint(conn, "PASSIVE")?.log > RESTART_AFTER_FRAMES {
        let restart = checkpoint(conn, "RESTART")?;
        if restart.busy != 0 {
            tracing::debug!(
                pages = restart.log,
                "the WAL's readers stayed; restart next round"
            );
        }
    }
    Ok(())
}

fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> diesel::QueryResult<Checkpointed> {
    diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")).get_result(conn)
}
