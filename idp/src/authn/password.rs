//! Password hashing with argon2id on a few dedicated threads; equal time for unknown users.
//!
//! Each worker thread owns its argon2 memory (19 MiB at the OWASP parameters), allocated
//! at its first check and reused: a sign-in allocates nothing, the resident size stays at
//! `max_concurrent` buffers instead of growing with every thread that ever hashed (glibc keeps
//! freed buffers in per-thread arenas), and password work can never occupy more than
//! `max_concurrent` cores, so it cannot starve token calls.
//!
//! When no check has arrived for `release_idle_secs`, the buffers of the workers that are
//! not hashing are wiped and given back to the system, so a node that is done with a burst
//! of sign-ins returns to its idle size. Each buffer is reserved larger than glibc's
//! largest dynamic mmap threshold (32 MiB), so it is always a mapping of its own and
//! freeing it unmaps it (a smaller one would be kept in an arena); only the part argon2
//! uses is ever touched.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use crate::config::PasswordConfig;
use crate::sync::lock;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2: {0}")]
    Hash(String),
    #[error("password worker failed")]
    Worker,
}

/// One check for a worker; the password is wiped when the job is dropped, and the queue
/// place is given back with it.
struct Job {
    phc: String,
    password: Zeroizing<String>,
    reply: oneshot::Sender<bool>,
    _place: OwnedSemaphorePermit,
}

/// Blocks reserved per buffer: more than glibc's 32 MiB ceiling for serving an allocation
/// from an arena, so every buffer is its own mapping (see the module comment).
const RESERVE_BLOCKS: usize = 32 * 1024 + 1;

/// The workers' argon2 memory, one buffer per worker, each locked while it hashes.
type Buffers = Arc<Vec<Mutex<Vec<Block>>>>;

pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist.
    dummy: String,
    jobs: std_mpsc::Sender<Job>,
    /// Places in the queue: a sign-in beyond them waits here, not in a worker's memory.
    queue: Arc<Semaphore>,
    buffers: Buffers,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher")
    }
}

/// Gives back the memory of every worker that is not hashing (its buffer was wiped after
/// its last check).
fn release_idle(buffers: &[Mutex<Vec<Block>>]) {
    for buffer in buffers {
        if let Ok(mut memory) = buffer.try_lock() {
            if memory.capacity() > 0 {
                *memory = Vec::new();
            }
        }
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Checks `password` against a PHC string with the caller's memory (grown if the stored
/// hash asks for more than the current parameters).
fn verify_with(memory: &mut Vec<Block>, phc: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(params), Ok(alg)) = (
        Params::try_from(&parsed),
        Algorithm::try_from(parsed.algorithm),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
        None => Version::V0x13,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let need = params.block_count();
    if memory.capacity() == 0 {
        memory.reserve_exact(need.max(RESERVE_BLOCKS));
    }
    if memory.len() < need {
        memory.resize(need, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(alg, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        &mut memory[..need],
    );
    hashed.is_ok() && keys::constant_time_eq(&out, expected.as_bytes())
}

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig) -> Result<Self, PasswordError> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let random = keys::random_token(16).map_err(|e| PasswordError::Hash(e.to_string()))?;
        let dummy = hash_with(&params, &random)?;
        let workers = cfg.max_concurrent.unwrap_or(cores).max(1);
        let idle = (cfg.release_idle_secs > 0).then(|| Duration::from_secs(cfg.release_idle_secs));
        let (tx, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let buffers: Buffers = Arc::new((0..workers).map(|_| Mutex::new(Vec::new())).collect());
        for i in 0..workers {
            let (rx, buffers) = (rx.clone(), buffers.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&rx, &buffers, i, idle))
                .map_err(|_| PasswordError::Worker)?;
        }
        Ok(Self {
            params,
            dummy,
            jobs: tx,
            // A short queue: waiting sign-ins wait here, not in memory-hungry threads.
            queue: Arc::new(Semaphore::new(workers * 64)),
            buffers,
        })
    }

    /// Workers holding argon2 memory now (for tests and metrics).
    pub fn resident_buffers(&self) -> usize {
        self.buffers
            .iter()
            .filter(|b| lock(b).capacity() > 0)
            .count()
    }

    /// Hashes synchronously (CLI use).
    pub fn hash_blocking(&self, password: &str) -> Result<String, PasswordError> {
        hash_with(&self.params, password)
    }

    /// Verifies on a password worker. `None` as the stored hash (unknown account) costs the
    /// same as a real check and returns false.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, PasswordError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.clone());
        let place = self
            .queue
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Worker)?;
        let answer = self.submit(phc, password, place)?;
        let ok = answer.await.map_err(|_| PasswordError::Worker)?;
        Ok(ok && known)
    }

    /// Hands one check to the workers; its answer comes on the returned channel.
    fn submit(
        &self,
        phc: String,
        password: String,
        place: OwnedSemaphorePermit,
    ) -> Result<oneshot::Receiver<bool>, PasswordError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                phc,
                password: Zeroizing::new(password),
                reply,
                _place: place,
            })
            .map_err(|_| PasswordError::Worker)?;
        Ok(answer)
    }

    /// Measures how many checks per second the workers sustain on this machine with these
    /// parameters, i.e. the most fresh password sign-ins a node can serve: every worker
    /// verifies without pause for at least `duration`, after one check each (their memory
    /// allocated). Blocks; not for use on an async runtime's thread.
    pub fn capacity_blocking(&self, duration: Duration) -> Result<Capacity, PasswordError> {
        let workers = self.buffers.len();
        let check = || {
            let place = self
                .queue
                .clone()
                .try_acquire_owned()
                .map_err(|_| PasswordError::Worker)?;
            self.submit(self.dummy.clone(), "capacity".to_string(), place)
        };
        let wait = |answer: oneshot::Receiver<bool>| {
            answer.blocking_recv().map_err(|_| PasswordError::Worker)
        };
        let warm: Vec<_> = (0..workers).map(|_| check()).collect::<Result<_, _>>()?;
        for answer in warm {
            wait(answer)?;
        }
        // Two checks queued per worker, so none waits for the next while another is answered.
        let start = std::time::Instant::now();
        let mut in_flight: std::collections::VecDeque<_> = (0..2 * workers)
            .map(|_| check())
            .collect::<Result<_, _>>()?;
        let mut checks = 0u64;
        while let Some(answer) = in_flight.pop_front() {
            wait(answer)?;
            checks += 1;
            if start.elapsed() < duration {
                in_flight.push_back(check()?);
            }
        }
        Ok(Capacity {
            workers,
            checks,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

/// What [`PasswordHasher::capacity_blocking`] measured.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Capacity {
    pub workers: usize,
    pub checks: u64,
    pub seconds: f64,
}

impl Capacity {
    pub fn per_second(&self) -> f64 {
        self.checks as f64 / self.seconds
    }

    /// Wall time of one check on one worker, in milliseconds.
    pub fn ms_per_check(&self) -> f64 {
        1000.0 * self.seconds * self.workers as f64 / self.checks as f64
    }
}

/// A worker: takes checks from the shared queue until the hasher is dropped. The one
/// waiting on the queue gives back idle memory when nothing has come for `idle`.
fn work(
    rx: &Mutex<std_mpsc::Receiver<Job>>,
    buffers: &[Mutex<Vec<Block>>],
    own: usize,
    idle: Option<Duration>,
) {
    loop {
        let job = {
            // One worker waits on the queue at a time; the others on the lock.
            let rx = lock(rx);
            loop {
                let next = match idle {
                    Some(idle) => rx.recv_timeout(idle),
                    None => rx
                        .recv()
                        .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
                };
                match next {
                    Ok(job) => break Some(job),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => release_idle(buffers),
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break None,
                }
            }
        };
        let Some(Job {
            phc,
            password,
            reply,
            _place,
        }) = job
        else {
            return;
        };
        let ok = {
            let mut memory = lock(&buffers[own]);
            let ok = verify_with(&mut memory, &phc, password.as_bytes());
            // Wipe this password's state before the next job or the release.
            memory.iter_mut().for_each(|b| *b = Block::default());
            ok
        };
        drop((password, _place));
        let _ = reply.send(ok);
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, PasswordError> {
    let salt_bytes = keys::random_token(16).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(salt_bytes.as_bytes())
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordConfig {
        PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: Some(2),
            ..PasswordConfig::default()
        }
    }

    #[tokio::test]
    async fn verify_right_wrong_and_unknown() {
        let h = PasswordHasher::new(&fast()).unwrap();
        let phc = h.hash_blocking("Correct-Horse-7!").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(h
            .verify(Some(phc.clone()), "Correct-Horse-7!".into())
            .await
            .unwrap());
        assert!(!h.verify(Some(phc), "wrong".into()).await.unwrap());
        assert!(!h.verify(None, "anything".into()).await.unwrap());
    }

    /// The capacity is the rate of real checks: all workers busy for the whole time.
    #[test]
    fn capacity_counts_checks_of_every_worker_for_the_time_asked() {
        let h = PasswordHasher::new(&fast()).unwrap();
        let c = h.capacity_blocking(Duration::from_millis(300)).unwrap();
        assert_eq!(c.workers, 2);
        assert!(c.seconds >= 0.3, "{c:?}");
        // The 64 KiB test parameters take well under a millisecond per check.
        assert!(c.checks > 100, "{c:?}");
        assert!((c.per_second() - c.checks as f64 / c.seconds).abs() < 1e-9);
        assert!(
            (c.ms_per_check() * c.per_second() - 2000.0).abs() < 1e-6,
            "two workers: each check takes 2 / rate seconds"
        );
        // Every place in the queue was given back.
        assert_eq!(h.queue.available_permits(), 2 * 64);
    }

    #[tokio::test]
    async fn hashes_of_other_parameters_still_verify() {
        let h = PasswordHasher::new(&fast()).unwrap();
        // A hash made with stronger parameters than the workers' memory was sized for.
        let stronger = Params::new(256, 2, 1, None).unwrap();
        let phc = hash_with(&stronger, "Old-Password-9?").unwrap();
        assert!(h
            .verify(Some(phc.clone()), "Old-Password-9?".into())
            .await
            .unwrap());
        assert!(!h.verify(Some(phc), "Old-Password-9!".into()).await.unwrap());
        for junk in [
            "",
            "$argon2id$",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$",
            "plain",
        ] {
            assert!(
                !h.verify(Some(junk.into()), "x".into()).await.unwrap(),
                "{junk:?}"
            );
        }
    }

    #[tokio::test]
    async fn idle_memory_is_wiped_given_back_and_taken_again() {
        let cfg = PasswordConfig {
            release_idle_secs: 1,
            ..fast()
        };
        let h = PasswordHasher::new(&cfg).unwrap();
        let phc = h.hash_blocking("Correct-Horse-7!").unwrap();
        assert_eq!(
            h.resident_buffers(),
            0,
            "nothing is allocated before a check"
        );
        assert!(h
            .verify(Some(phc.clone()), "Correct-Horse-7!".into())
            .await
            .unwrap());
        assert_eq!(h.resident_buffers(), 1);
        for buffer in h.buffers.iter() {
            let memory = lock(buffer);
            assert!(
                memory.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)),
                "a finished check leaves no argon2 state behind"
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while h.resident_buffers() > 0 {
            assert!(std::time::Instant::now() < deadline, "idle memory kept");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(h
            .verify(Some(phc.clone()), "Correct-Horse-7!".into())
            .await
            .unwrap());
        assert!(!h.verify(Some(phc), "wrong".into()).await.unwrap());
        assert!(h.resident_buffers() >= 1);
        // 0 keeps the memory.
        let keep = PasswordHasher::new(&PasswordConfig {
            release_idle_secs: 0,
            ..fast()
        })
        .unwrap();
        assert!(!keep.verify(None, "x".into()).await.unwrap());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(keep.resident_buffers(), 1);
    }

    #[tokio::test]
    async fn many_checks_at_once_all_answer() {
        let h = Arc::new(PasswordHasher::new(&fast()).unwrap());
        let phc = h.hash_blocking("Correct-Horse-7!").unwrap();
        let checks = (0..40).map(|i| {
            let (h, phc) = (h.clone(), phc.clone());
            tokio::spawn(async move {
                let pw = if i % 2 == 0 {
                    "Correct-Horse-7!"
                } else {
                    "nope"
                };
                h.verify(Some(phc), pw.into()).await.unwrap() == (i % 2 == 0)
            })
        });
        for c in checks {
            assert!(c.await.unwrap());
        }
    }
}
