//! Password hashing with argon2id on a few dedicated threads; equal time for unknown users.
//!
//! Each worker thread owns its argon2 memory (19 MiB at the OWASP parameters), allocated
//! once and reused: a sign-in allocates nothing, the resident size stays at
//! `max_concurrent` buffers instead of growing with every thread that ever hashed (glibc keeps
//! freed buffers in per-thread arenas), and password work can never occupy more than
//! `max_concurrent` cores, so it cannot starve token calls.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::config::PasswordConfig;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2: {0}")]
    Hash(String),
    #[error("password worker failed")]
    Worker,
}

/// One check for a worker; the password is wiped when the job is dropped.
struct Job {
    phc: String,
    password: Zeroizing<String>,
    reply: oneshot::Sender<bool>,
}

pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist.
    dummy: String,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher")
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
        // A short queue: waiting sign-ins wait here, not in memory-hungry threads.
        let (tx, rx) = mpsc::channel::<Job>(workers * 64);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    // Allocated at the first check, so an idle node stays small.
                    let mut memory: Vec<Block> = Vec::new();
                    loop {
                        // One worker waits on the queue at a time; the others on the lock.
                        let job = match rx.lock() {
                            Ok(mut r) => r.blocking_recv(),
                            Err(_) => None,
                        };
                        let Some(Job {
                            phc,
                            password,
                            reply,
                        }) = job
                        else {
                            break;
                        };
                        let ok = verify_with(&mut memory, &phc, password.as_bytes());
                        drop(password);
                        // Wipe this password's state before the next job.
                        memory.iter_mut().for_each(|b| *b = Block::default());
                        let _ = reply.send(ok);
                    }
                })
                .map_err(|_| PasswordError::Worker)?;
        }
        Ok(Self {
            params,
            dummy,
            jobs: tx,
        })
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
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                phc,
                password: Zeroizing::new(password),
                reply,
            })
            .await
            .map_err(|_| PasswordError::Worker)?;
        let ok = answer.await.map_err(|_| PasswordError::Worker)?;
        Ok(ok && known)
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
