//! SQLite's WAL checkpoints, off the write path.
//!
//! In WAL mode a commit appends to the `-wal` file; by default the commit that takes the
//! log past 1,000 pages then copies the log back into the database file and syncs both (an
//! automatic checkpoint) inside the writer's own call. SQLite has one writer, so every
//! write queued behind it waited too: under refresh load one commit in a few dozen took
//! 10–20 ms longer, which was the whole tail (refresh at half the maximum rate: p90 15–21
//! ms, p99 21–28 ms; `docs/performance.md`, eighth session).
//!
//! So the pooled connections never checkpoint (`wal_autocheckpoint = 0`) and a thread of
//! the store runs a PASSIVE checkpoint every [`EVERY`] on a connection of its own (p90 then
//! about 3 ms, p99 4.6–6.3 ms; checkpoints every 200 ms or every second left larger ones
//! and a longer tail, 5.9–37 and 11.7–17.5 ms). PASSIVE neither waits for nor blocks
//! readers and writers (what a reader still needs is left for the next round); once the
//! whole log has been copied and no reader still reads from it, the next writer starts it
//! again from the beginning. Under a steady stream of requests some reader nearly always
//! does, and the file then grows without bound (a known limit: `docs/design/
//! core-decisions.md`, "SQLite checkpoints"). The thread ends when the last clone
//! of the store is dropped. If its connection cannot be opened, the pool keeps SQLite's
//! automatic checkpoints.

use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};

/// How often the log is copied back: small, frequent checkpoints disturb the writer least
/// (an idle round is one cheap statement).
const EVERY: Duration = Duration::from_millis(50);

/// Keeps the checkpoint thread running while any clone of the store holds it.
pub(super) type Running = mpsc::Sender<()>;

/// Starts the checkpoint thread for the database file at `path`; `None` (and a warning)
/// when it cannot, in which case writers must keep checkpointing.
pub(super) fn start(path: &str) -> Option<Running> {
    match spawn(path) {
        Ok(running) => Some(running),
        Err(e) => {
            tracing::warn!(error = %e, "no background WAL checkpoints; commits will checkpoint");
            None
        }
    }
}

fn spawn(path: &str) -> Result<Running, Box<dyn std::error::Error>> {
    let mut conn = SqliteConnection::establish(path)?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
    let (running, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // Nothing is ever sent: the wait ends by timing out, or when every sender
            // (every clone of the store) is gone.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retried next round");
                }
            }
        })?;
    Ok(running)
}
