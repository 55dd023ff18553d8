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
    /// Login transactions (each kept in the ephemeral store for `session.login_ttl_secs`)
    /// one IP address may start per `login_tx_window_secs`: every authorization request
    /// that needs the person at the login, second-factor or consent page starts one.
    pub login_tx_ip_max: u64,
    /// The window of `login_tx_ip_max` (seconds).
    pub login_tx_window_secs: u64,
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
            login_tx_ip_max: 300,
            login_tx_window_secs: 10 * 60,
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

/// The counter of an address's attempts in its window.
fn ip_key(ip: &str) -> String {
    format!("lockout:ip:{ip}")
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
    /// transaction or session it is bound to); the limit it exceeded, if any, and whether
    /// this is that limit's first refusal of the window (the one to audit). Both counters
    /// move on every start, so a flood from one address cannot hide behind fresh
    /// transactions, nor one transaction behind many addresses.
    pub async fn ceremony_start(
        &self,
        ip: &str,
        binding: &str,
    ) -> EphResult<Option<(CeremonyLimit, bool)>> {
        let window = Duration::from_secs(self.cfg.ceremony_window_secs);
        let by_ip = self
            .eph
            .incr(&format!("lockout:wa:ip:{ip}"), window)
            .await?;
        let by_binding = self
            .eph
            .incr(&format!("lockout:wa:binding:{binding}"), window)
            .await?;
        Ok(
            match (
                Attempt::of(by_ip, self.cfg.ceremony_ip_max),
                Attempt::of(by_binding, self.cfg.ceremony_binding_max),
            ) {
                (Attempt::Refused { first }, _) => Some((CeremonyLimit::Ip, first)),
                (_, Attempt::Refused { first }) => Some((CeremonyLimit::Binding, first)),
                _ => None,
            },
        )
    }

    /// Counts one attempt from `ip`; false once the IP has used up its window.
    pub async fn ip_attempt(&self, ip: &str) -> EphResult<bool> {
        Ok(self.ip_attempt_counted(ip).await? == Attempt::Allowed)
    }

    /// [`ip_attempt`](Self::ip_attempt), telling the first refusal of the window from the
    /// rest: a caller that audits refusals audits that one only, so a flood of refused
    /// requests writes nothing durable.
    pub async fn ip_attempt_counted(&self, ip: &str) -> EphResult<Attempt> {
        let n = self.eph.incr(&ip_key(ip), self.ip_window()).await?;
        Ok(Attempt::of(n, self.cfg.ip_max_attempts))
    }

    fn ip_window(&self) -> Duration {
        Duration::from_secs(self.cfg.ip_window_secs)
    }

    /// Counts a password attempt from `ip` ([`ip_attempt`](Self::ip_attempt)) and reads
    /// whether password sign-in to `account` (a blind index) is locked and whether it has
    /// failures to forget, in one round trip.
    pub async fn password_attempt(&self, ip: &str, account: &str) -> EphResult<PasswordAttempt> {
        let (n, found) = self
            .eph
            .incr_and_get(
                &ip_key(ip),
                self.ip_window(),
                &[&lock_key(account), &fail_key(account)],
            )
            .await?;
        let present = |i: usize| found.get(i).is_some_and(Option::is_some);
        Ok(PasswordAttempt {
            ip: Attempt::of(n, self.cfg.ip_max_attempts),
            locked: present(0),
            failures: present(1),
        })
    }

    /// Counts the start of a login transaction from `ip` and stores it (`value` under
    /// `key` for `ttl`) only within the address's limit, in one round trip.
    pub async fn start_login(
        &self,
        ip: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> EphResult<LoginStart> {
        let max = self.cfg.login_tx_ip_max;
        let window = Duration::from_secs(self.cfg.login_tx_window_secs);
        let n = self
            .eph
            .count_and_put(&format!("lockout:tx:ip:{ip}"), window, max, key, value, ttl)
            .await?;
        Ok(if n <= max {
            LoginStart::Stored
        } else {
            LoginStart::Throttled {
                first: n == max.saturating_add(1),
            }
        })
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

    /// Forgets the failures after a right password: those [`password_attempt`]
    /// (Self::password_attempt) found; none found, nothing to do (a failure counted since,
    /// by a concurrent attempt, is kept).
    pub async fn password_ok(&self, account: &str, attempt: &PasswordAttempt) -> EphResult<()> {
        if !attempt.failures {
            return Ok(());
        }
        self.eph.delete(&fail_key(account)).await
    }
}

/// What became of a login transaction's start ([`Throttle::start_login`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStart {
    Stored,
    /// Over the address's limit, nothing stored; `first`: the first start over it in this
    /// window (the one that is audited).
    Throttled {
        first: bool,
    },
}

/// An attempt counted against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    /// Over the limit; `first`: the first refusal of the window, the one to audit.
    Refused {
        first: bool,
    },
}

impl Attempt {
    /// The `n`-th attempt of a window against a limit of `max`.
    fn of(n: u64, max: u64) -> Self {
        if n <= max {
            Attempt::Allowed
        } else {
            Attempt::Refused {
                first: n == max.saturating_add(1),
            }
        }
    }
}

/// What [`Throttle::password_attempt`] found before the password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAttempt {
    /// The address's attempt, within its window's limit or not.
    pub ip: Attempt,
    /// Password sign-in to the account is locked.
    pub locked: bool,
    /// Wrong passwords are counted against the account.
    failures: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::ephemeral::MemoryEphemeral;

    /// An address may start `login_tx_ip_max` login transactions per window; beyond them
    /// nothing is stored, only the first refusal says it is the first, and another address
    /// or the next window starts afresh.
    #[tokio::test]
    async fn login_starts_are_limited_per_address() {
        let clock = FixedClock::new(chrono::Utc::now());
        let eph = MemoryEphemeral::new(std::sync::Arc::new(clock.clone()));
        let cfg = LockoutConfig {
            login_tx_ip_max: 3,
            ..LockoutConfig::default()
        };
        let t = Throttle {
            eph: &eph,
            cfg: &cfg,
        };
        let ttl = Duration::from_secs(900);
        let start = |ip: &'static str, key: &'static str| t.start_login(ip, key, b"tx", ttl);
        for key in ["tx:1", "tx:2", "tx:3"] {
            assert_eq!(start("192.0.2.1", key).await.unwrap(), LoginStart::Stored);
        }
        assert_eq!(
            start("192.0.2.1", "tx:4").await.unwrap(),
            LoginStart::Throttled { first: true }
        );
        assert_eq!(
            start("192.0.2.1", "tx:5").await.unwrap(),
            LoginStart::Throttled { first: false }
        );
        assert!(eph.get("tx:3").await.unwrap().is_some());
        assert_eq!(
            eph.get("tx:4").await.unwrap(),
            None,
            "nothing stored over the limit"
        );
        assert_eq!(
            start("192.0.2.2", "tx:6").await.unwrap(),
            LoginStart::Stored
        );
        clock.advance(chrono::Duration::seconds(
            cfg.login_tx_window_secs as i64 + 1,
        ));
        assert_eq!(
            start("192.0.2.1", "tx:7").await.unwrap(),
            LoginStart::Stored
        );
    }

    async fn locked(t: &Throttle<'_>, account: &str) -> bool {
        t.password_attempt("192.0.2.9", account)
            .await
            .unwrap()
            .locked
    }

    async fn allowed(t: &Throttle<'_>, ip: &str) -> bool {
        t.password_attempt(ip, "a").await.unwrap().ip == Attempt::Allowed
    }

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
        assert!(!locked(&t, "a").await);
        assert!(
            t.password_failed("a").await.unwrap(),
            "the third failure locks"
        );
        assert!(locked(&t, "a").await);
        assert!(!locked(&t, "b").await, "other accounts are not affected");
        clock.advance(chrono::Duration::seconds(15 * 60 + 1));
        assert!(!locked(&t, "a").await, "the lock ends by itself");
        // A right password forgets the failures its attempt found.
        t.password_failed("a").await.unwrap();
        t.password_failed("a").await.unwrap();
        let attempt = t.password_attempt("192.0.2.9", "a").await.unwrap();
        t.password_ok("a", &attempt).await.unwrap();
        assert!(!t.password_failed("a").await.unwrap());
        assert!(!t.password_failed("a").await.unwrap());
        assert!(t.password_failed("a").await.unwrap(), "counted from zero");
    }

    /// An attempt that found no failures forgets none: one counted meanwhile, by a
    /// concurrent wrong password, still counts.
    #[tokio::test]
    async fn a_failure_counted_during_a_right_password_stays() {
        let eph = MemoryEphemeral::new(std::sync::Arc::new(FixedClock::new(chrono::Utc::now())));
        let cfg = LockoutConfig::default();
        let t = Throttle {
            eph: &eph,
            cfg: &cfg,
        };
        let attempt = t.password_attempt("192.0.2.9", "a").await.unwrap();
        assert!(!attempt.locked);
        t.password_failed("a").await.unwrap();
        t.password_ok("a", &attempt).await.unwrap();
        assert!(!t.password_failed("a").await.unwrap());
        assert!(
            t.password_failed("a").await.unwrap(),
            "the third failure locks"
        );
    }

    #[tokio::test]
    async fn ip_window() {
        let clock = FixedClock::new(chrono::Utc::now());
        let eph = MemoryEphemeral::new(std::sync::Arc::new(clock.clone()));
        let cfg = LockoutConfig {
            ip_max_attempts: 3,
            ..LockoutConfig::default()
        };
        let t = Throttle {
            eph: &eph,
            cfg: &cfg,
        };
        assert!(t.ip_attempt("192.0.2.1").await.unwrap());
        // Password attempts count in the same window as every other attempt.
        assert!(allowed(&t, "192.0.2.1").await);
        assert!(t.ip_attempt("192.0.2.1").await.unwrap());
        // Only the window's first refusal says it is the first (the one audited).
        assert_eq!(
            t.password_attempt("192.0.2.1", "a").await.unwrap().ip,
            Attempt::Refused { first: true }
        );
        assert_eq!(
            t.ip_attempt_counted("192.0.2.1").await.unwrap(),
            Attempt::Refused { first: false }
        );
        assert!(!allowed(&t, "192.0.2.1").await);
        assert!(!t.ip_attempt("192.0.2.1").await.unwrap());
        assert!(t.ip_attempt("192.0.2.2").await.unwrap());
        clock.advance(chrono::Duration::seconds(601));
        assert!(allowed(&t, "192.0.2.1").await);
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
            Some((CeremonyLimit::Binding, true)),
            "one transaction from many addresses"
        );
        assert_eq!(
            t.ceremony_start("ip3", "a").await.unwrap(),
            Some((CeremonyLimit::Binding, false)),
            "only the first refusal is the first"
        );
        assert_eq!(t.ceremony_start("ip1", "b").await.unwrap(), None);
        assert_eq!(
            t.ceremony_start("ip1", "c").await.unwrap(),
            Some((CeremonyLimit::Ip, true)),
            "one address with fresh transactions"
        );
        assert_eq!(
            t.ceremony_start("ip1", "d").await.unwrap(),
            Some((CeremonyLimit::Ip, false))
        );
        clock.advance(chrono::Duration::seconds(601));
        assert_eq!(t.ceremony_start("ip1", "a").await.unwrap(), None);
    }
}
