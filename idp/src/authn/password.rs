//! Password hashing with argon2id on a bounded blocking pool; equal time for unknown users.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordConfig;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("argon2: {0}")]
    Hash(String),
    #[error("password worker failed")]
    Worker,
}

pub struct PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist.
    dummy: String,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher")
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
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
        Ok(Self {
            params,
            dummy,
            permits: Arc::new(Semaphore::new(cfg.max_concurrent.unwrap_or(cores).max(1))),
        })
    }

    /// Hashes synchronously (CLI use).
    pub fn hash_blocking(&self, password: &str) -> Result<String, PasswordError> {
        hash_with(&self.params, password)
    }

    /// Verifies on the blocking pool, at most `max_concurrent` at once. `None` as the stored
    /// hash (unknown account) costs the same as a real check and returns false.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Worker)?;
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.clone());
        let params = self.params.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return false;
            };
            argon(&params)
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .await
        .map_err(|_| PasswordError::Worker)?;
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
}
