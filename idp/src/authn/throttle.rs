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
    /// WebAuthn ceremonies (each a challenge kept in the ephemeral store) one IP address
    /// may start per `ceremony_window_secs`.
    pub ceremony_ip_max: u64,
    /// WebAuthn ceremonies one login transaction or session may start per window.
    pub ceremony_binding_max: u64,
    /// The window of the ceremony limits (seconds).
    pub ceremony_window_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_password_failures: 3,
            lock_secs: 15 * 60,
            ip_max_attempts: 30,
            ip_window_secs: 10 * 60,
            ceremony_ip_max: 60,
            ceremony_binding_max: 20,
            ceremony_window_secs: 10 * 60,
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

/// Which limit a ceremony start ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyLimit {
    /// Too many from this IP address.
    Ip,
    /// Too many for this login transaction or session.
    Binding,
}

impl CeremonyLimit {
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyLimit::Ip => "ip",
            CeremonyLimit::Binding => "binding",
        }
    }
}

impl Throttle<'_> {
    /// Counts the start of a WebAuthn ceremony from `ip` for `binding` (a hash of the login
    /// transaction or session it is bound to); the limit it exceeded, if any. Both counters
    /// move on every start, so a flood from one address cannot hide behind fresh
    /// transactions, nor one transaction behind many addresses.
    pub async fn ceremony_start(
        &self,
        ip: &str,
        binding: &str,
    ) -> EphResult<Option<CeremonyLimit>> {
        let window = Duration::from_secs(self.cfg.ceremony_window_secs);
        let by_ip = self
            .eph
            .incr(&format!("lockout:wa:ip:{ip}"), window)
            .await?;
        let by_binding = self
            .eph
            .incr(&format!("lockout:wa:binding:{binding}"), window)
            .await?;
        Ok(if by_ip > self.cfg.ceremony_ip_max {
            Some(CeremonyLimit::Ip)
        } else if by_binding > self.cfg.ceremony_binding_max {
            Some(CeremonyLimit::Binding)
        } else {
            None
        })
    }

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

    #[tokio::test]
    async fn ceremony_starts_per_ip_and_per_binding() {
        let clock = FixedClock::new(chrono::Utc::now());
        let eph = MemoryEphemeral::new(std::sync::Arc::new(clock.clone()));
        let cfg = LockoutConfig {
            ceremony_ip_max: 3,
            ceremony_binding_max: 2,
            ..LockoutConfig::default()
        };
        let t = Throttle {
            eph: &eph,
            cfg: &cfg,
        };
        assert_eq!(t.ceremony_start("ip1", "a").await.unwrap(), None);
        assert_eq!(t.ceremony_start("ip1", "a").await.unwrap(), None);
        assert_eq!(
            t.ceremony_start("ip2", "a").await.unwrap(),
            Some(CeremonyLimit::Binding),
            "one transaction from many addresses"
        );
        assert_eq!(t.ceremony_start("ip1", "b").await.unwrap(), None);
        assert_eq!(
            t.ceremony_start("ip1", "c").await.unwrap(),
            Some(CeremonyLimit::Ip),
            "one address with fresh transactions"
        );
        clock.advance(chrono::Duration::seconds(601));
        assert_eq!(t.ceremony_start("ip1", "a").await.unwrap(), None);
    }
}
