//! Lockout and rate limits, counted in the ephemeral store so that they hold across nodes
//! (design §7): wrong passwords per account, sign-in attempts per IP address.
//!
//! The account counter is keyed by a blind index of the *typed* identifier, whether or not
//! an account has it, so a locked answer says nothing about which accounts exist.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ephemeral::{EphResult, Ephemeral};

/// `[lockout]`: how many failures lock what, for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Wrong passwords in a row that lock password sign-in to the account.
    pub max_password_failures: u64,
    /// How long the account stays locked, and how long failures are remembered (seconds).
    pub lock_secs: u64,
    /// Sign-in attempts (password or code) one IP address may make per window.
    pub ip_max_attempts: u64,
    /// The window of `ip_max_attempts` (seconds).
    pub ip_window_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_password_failures: 3,
            lock_secs: 15 * 60,
            ip_max_attempts: 30,
            ip_window_secs: 10 * 60,
        }
    }
}

/// The throttle of one node (state is in the ephemeral store).
pub struct Throttle<'a> {
    pub eph: &'a dyn Ephemeral,
    pub cfg: &'a LockoutConfig,
}

fn fail_key(account: &str) -> String {
    format!("lockout:fail:{account}")
}

fn lock_key(account: &str) -> String {
    format!("lockout:lock:{account}")
}

impl Throttle<'_> {
    /// Counts one attempt from `ip`; false once the IP has used up its window.
    pub async fn ip_attempt(&self, ip: &str) -> EphResult<bool> {
        let n = self
            .eph
            .incr(
                &format!("lockout:ip:{ip}"),
                Duration::from_secs(self.cfg.ip_window_secs),
            )
            .await?;
        Ok(n <= self.cfg.ip_max_attempts)
    }

    /// Whether password sign-in to `account` (a blind index) is locked.
    pub async fn locked(&self, account: &str) -> EphResult<bool> {
        Ok(self.eph.get(&lock_key(account)).await?.is_some())
    }

    /// Counts a wrong password; true when this failure locked the account.
    pub async fn password_failed(&self, account: &str) -> EphResult<bool> {
        let ttl = Duration::from_secs(self.cfg.lock_secs);
        let n = self.eph.incr(&fail_key(account), ttl).await?;
        if n < self.cfg.max_password_failures {
            return Ok(false);
        }
        self.eph.delete(&fail_key(account)).await?;
        // Only the request that set the lock reports it (and notifies the owner once).
        self.eph.put_if_absent(&lock_key(account), b"1", ttl).await
    }

    /// Forgets the failures after a right password.
    pub async fn password_ok(&self, account: &str) -> EphResult<()> {
        self.eph.delete(&fail_key(account)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::ephemeral::MemoryEphemeral;

    #[tokio::test]
    async fn three_failures_lock_until_the_period_ends() {
        let clock = FixedClock::new(chrono::Utc::now());
        let eph = MemoryEphemeral::new(std::sync::Arc::new(clock.clone()));
        let cfg = LockoutConfig::default();
        let t = Throttle {
            eph: &eph,
            cfg: &cfg,
        };
        assert!(!t.password_failed("a").await.unwrap());
        assert!(!t.password_failed("a").await.unwrap());
        assert!(!t.locked("a").await.unwrap());
        assert!(
            t.password_failed("a").await.unwrap(),
            "the third failure locks"
        );
        assert!(t.locked("a").await.unwrap());
        assert!(
            !t.locked("b").await.unwrap(),
            "other accounts are not affected"
        );
        clock.advance(chrono::Duration::seconds(15 * 60 + 1));
        assert!(!t.locked("a").await.unwrap(), "the lock ends by itself");
        // A right password forgets earlier failures.
        t.password_failed("a").await.unwrap();
        t.password_failed("a").await.unwrap();
        t.password_ok("a").await.unwrap();
        assert!(!t.password_failed("a").await.unwrap());
    }

    #[tokio::test]
    async fn ip_window() {
        let clock = FixedClock::new(chrono::Utc::now());
        let eph = MemoryEphemeral::new(std::sync::Arc::new(clock.clone()));
        let cfg = LockoutConfig {
            ip_max_attempts: 2,
            ..LockoutConfig::default()
        };
        let t = Throttle {
            eph: &eph,
            cfg: &cfg,
        };
        assert!(t.ip_attempt("192.0.2.1").await.unwrap());
        assert!(t.ip_attempt("192.0.2.1").await.unwrap());
        assert!(!t.ip_attempt("192.0.2.1").await.unwrap());
        assert!(t.ip_attempt("192.0.2.2").await.unwrap());
        clock.advance(chrono::Duration::seconds(601));
        assert!(t.ip_attempt("192.0.2.1").await.unwrap());
    }
}
