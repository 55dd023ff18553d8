//! The only place that reads the wall clock. Everything else takes `now` from a [`Clock`].

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Moves a test clock forward; false for a clock that cannot be moved (the system's).
    fn advance_by(&self, _by: chrono::Duration) -> bool {
        false
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved; for tests.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<Mutex<DateTime<Utc>>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        match self.0.lock() {
            Ok(t) => *t,
            Err(p) => *p.into_inner(),
        }
    }

    fn advance_by(&self, by: chrono::Duration) -> bool {
        self.moved(by)
    }
}

impl FixedClock {
    /// The trait's name for [`FixedClock::advance`].
    fn moved(&self, by: chrono::Duration) -> bool {
        self.advance(by);
        true
    }
}

/// The system clock plus an offset that only grows: the server's clock under
/// `danger_test_clock` (dev mode only), so black-box tests can let minutes pass at once.
#[derive(Debug, Default)]
pub struct OffsetClock(Mutex<chrono::Duration>);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = match self.0.lock() {
            Ok(o) => *o,
            Err(p) => *p.into_inner(),
        };
        Utc::now() + offset
    }

    fn advance_by(&self, by: chrono::Duration) -> bool {
        if by <= chrono::Duration::zero() {
            return false;
        }
        match self.0.lock() {
            Ok(mut o) => *o += by,
            Err(p) => *p.into_inner() += by,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clocks_move_forward_only() {
        let c = OffsetClock::default();
        let before = c.now();
        assert!(c.advance_by(chrono::Duration::seconds(301)));
        assert!(c.now() - before >= chrono::Duration::seconds(301));
        assert!(!c.advance_by(chrono::Duration::seconds(-5)));
        assert!(!SystemClock.advance_by(chrono::Duration::seconds(1)));
        let f = FixedClock::new(before);
        assert!(Clock::advance_by(&f, chrono::Duration::seconds(2)));
        assert_eq!(f.now() - before, chrono::Duration::seconds(2));
    }
}
