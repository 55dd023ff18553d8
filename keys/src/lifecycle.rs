//! Signing-key lifecycle: `next -> current -> retired -> removed`.
//!
//! Rotation is a pure function ([`plan`]) of the key set, the time and a [`RotationPolicy`]:
//! it returns the steps to take, and the caller applies them (in one database transaction, so
//! several nodes cannot take the same step twice). Times are Unix seconds; this crate never
//! reads the clock.
//!
//! The rules, per algorithm:
//! * A key is generated as `next` and published in JWKS at least `publish_ahead_secs` (one
//!   JWKS cache period and more) before it signs anything, so relying parties that cache JWKS
//!   already know it when the first token signed with it arrives.
//! * A `next` key becomes `current` once it has been published for `publish_ahead_secs`, and
//!   the old current key `retired`. On schedule the next key is generated `publish_ahead_secs`
//!   before the current key has signed for `rotation_period_secs`, so it takes over then; an
//!   operator's rotation generates one at once, and it takes over a publish period later.
//! * A retired key stays in JWKS for `retire_keep_secs` (at least the longest lifetime of a
//!   token it signed), then it is `removed`: gone from JWKS, its private part deleted.
//! * With no `current` key at all for an algorithm (first start, or after an emergency
//!   removal) a key is made `current` at once: nothing signed with that algorithm yet, so
//!   there is nothing to protect by waiting.

use crate::Alg;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published in JWKS, not yet signing.
    Next,
    /// Signs new tokens (one per algorithm), published in JWKS.
    Current,
    /// No longer signs; stays in JWKS until the tokens it signed have expired.
    Retired,
    /// Out of JWKS; the private part is deleted.
    Removed,
}

impl KeyState {
    /// The stored name: `next`, `current`, `retired`, `removed`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<KeyState> {
        Some(match s {
            "next" => KeyState::Next,
            "current" => KeyState::Current,
            "retired" => KeyState::Retired,
            "removed" => KeyState::Removed,
            _ => return None,
        })
    }

    /// Whether a key in this state belongs in the JWKS document.
    pub fn is_published(self) -> bool {
        !matches!(self, KeyState::Removed)
    }
}

/// What the planner needs to know of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    pub kid: String,
    pub alg: Alg,
    pub state: KeyState,
    /// When the key was generated or imported (and so first published).
    pub created_at: i64,
    /// When it became `current`.
    pub activated_at: Option<i64>,
    /// When it became `retired`.
    pub retired_at: Option<i64>,
}

/// Periods of the rotation schedule, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Algorithms that always have a current key.
    pub algs: Vec<Alg>,
    /// How long a key signs before it is replaced.
    pub rotation_period_secs: i64,
    /// How long a new key is published before it signs.
    pub publish_ahead_secs: i64,
    /// How long a retired key stays published.
    pub retire_keep_secs: i64,
}

/// One change to the key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Generate a key of `alg` in `state` (`Next`, or `Current` when the algorithm has none).
    Generate { alg: Alg, state: KeyState },
    /// `kid` becomes current; the previous current key of its algorithm (if any) retires.
    Activate { kid: String, retire: Option<String> },
    /// `kid` is removed: out of JWKS, private part deleted.
    Remove { kid: String },
}

/// The steps that bring `keys` up to date at `now`. Applying them and calling `plan` again
/// at the same `now` gives no steps.
pub fn plan(keys: &[KeyMeta], now: i64, policy: &RotationPolicy) -> Vec<Step> {
    let mut steps = Vec::new();
    for &alg in &policy.algs {
        plan_alg(keys, alg, now, policy, &mut steps);
    }
    // Retired keys of any algorithm (also one no longer configured) expire on schedule.
    for k in keys.iter().filter(|k| k.state == KeyState::Retired) {
        let since = k.retired_at.unwrap_or(k.created_at);
        if now >= since.saturating_add(policy.retire_keep_secs) {
            steps.push(Step::Remove { kid: k.kid.clone() });
        }
    }
    steps
}

fn plan_alg(keys: &[KeyMeta], alg: Alg, now: i64, p: &RotationPolicy, steps: &mut Vec<Step>) {
    let of = |s: KeyState| {
        keys.iter()
            .filter(move |k| k.alg == alg && k.state == s)
            // The oldest first: a deterministic pick if a set ever holds two.
            .min_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
    };
    let current = of(KeyState::Current);
    let next = of(KeyState::Next);
    let Some(current) = current else {
        match next {
            Some(n) => steps.push(Step::Activate {
                kid: n.kid.clone(),
                retire: None,
            }),
            None => steps.push(Step::Generate {
                alg,
                state: KeyState::Current,
            }),
        }
        return;
    };
    let since = current.activated_at.unwrap_or(current.created_at);
    let due = since.saturating_add(p.rotation_period_secs);
    match next {
        None if now >= due.saturating_sub(p.publish_ahead_secs) => steps.push(Step::Generate {
            alg,
            state: KeyState::Next,
        }),
        Some(n) if now >= n.created_at.saturating_add(p.publish_ahead_secs) => {
            steps.push(Step::Activate {
                kid: n.kid.clone(),
                retire: Some(current.kid.clone()),
            })
        }
        _ => {}
    }
}

/// Applies `steps` to an in-memory copy of the set (for tests and for dry runs); generated
/// keys get the kids `gen-1`, `gen-2`, ...
pub fn apply(keys: &mut Vec<KeyMeta>, steps: &[Step], now: i64) {
    let mut generated = 0;
    for s in steps {
        match s {
            Step::Generate { alg, state } => {
                generated += 1;
                keys.push(KeyMeta {
                    kid: format!("gen-{}-{generated}", keys.len()),
                    alg: *alg,
                    state: *state,
                    created_at: now,
                    activated_at: (*state == KeyState::Current).then_some(now),
                    retired_at: None,
                });
            }
            Step::Activate { kid, retire } => {
                for k in keys.iter_mut() {
                    if &k.kid == kid {
                        k.state = KeyState::Current;
                        k.activated_at = Some(now);
                    } else if Some(&k.kid) == retire.as_ref() {
                        k.state = KeyState::Retired;
                        k.retired_at = Some(now);
                    }
                }
            }
            Step::Remove { kid } => {
                for k in keys.iter_mut().filter(|k| &k.kid == kid) {
                    k.state = KeyState::Removed;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            algs: vec![Alg::ES256],
            rotation_period_secs: 90 * DAY,
            publish_ahead_secs: 2 * DAY,
            retire_keep_secs: DAY,
        }
    }

    fn run(keys: &mut Vec<KeyMeta>, now: i64, p: &RotationPolicy) -> Vec<Step> {
        let steps = plan(keys, now, p);
        apply(keys, &steps, now);
        assert_eq!(plan(keys, now, p), vec![], "plan is idempotent at {now}");
        steps
    }

    fn states(keys: &[KeyMeta]) -> Vec<(&str, KeyState)> {
        keys.iter().map(|k| (k.kid.as_str(), k.state)).collect()
    }

    #[test]
    fn first_start_makes_a_current_key_per_alg() {
        let mut p = policy();
        p.algs = Alg::ALL.to_vec();
        let mut keys = Vec::new();
        let steps = run(&mut keys, 0, &p);
        assert_eq!(steps.len(), 3);
        assert!(keys.iter().all(|k| k.state == KeyState::Current));
    }

    #[test]
    fn a_full_cycle_respects_publish_ahead_and_retention() {
        let p = policy();
        let mut keys = Vec::new();
        run(&mut keys, 0, &p);
        let first = keys[0].kid.clone();
        // Nothing happens until publish_ahead before the rotation is due.
        assert_eq!(run(&mut keys, 88 * DAY - 1, &p), vec![]);
        let steps = run(&mut keys, 88 * DAY, &p);
        assert_eq!(
            steps,
            vec![Step::Generate {
                alg: Alg::ES256,
                state: KeyState::Next
            }]
        );
        let second = keys[1].kid.clone();
        // Published but not signing until the period ends.
        assert_eq!(run(&mut keys, 90 * DAY - 1, &p), vec![]);
        assert_eq!(
            run(&mut keys, 90 * DAY, &p),
            vec![Step::Activate {
                kid: second.clone(),
                retire: Some(first.clone())
            }]
        );
        assert_eq!(
            states(&keys),
            vec![
                (first.as_str(), KeyState::Retired),
                (second.as_str(), KeyState::Current)
            ]
        );
        // The retired key stays published for retire_keep, then goes.
        assert_eq!(run(&mut keys, 91 * DAY - 1, &p), vec![]);
        assert_eq!(
            run(&mut keys, 91 * DAY, &p),
            vec![Step::Remove { kid: first.clone() }]
        );
        assert!(!keys[0].state.is_published());
    }

    #[test]
    fn a_late_next_key_waits_for_its_publish_period() {
        // The node was down when the next key should have been made: the current key signs
        // on past its period rather than activate an unpublished key.
        let p = policy();
        let mut keys = Vec::new();
        run(&mut keys, 0, &p);
        run(&mut keys, 100 * DAY, &p);
        assert_eq!(keys[1].state, KeyState::Next);
        assert_eq!(run(&mut keys, 102 * DAY - 1, &p), vec![]);
        assert!(matches!(
            run(&mut keys, 102 * DAY, &p)[..],
            [Step::Activate { .. }]
        ));
    }

    #[test]
    fn a_manual_next_key_takes_over_after_its_publish_period() {
        let p = policy();
        let mut keys = Vec::new();
        run(&mut keys, 0, &p);
        apply(
            &mut keys,
            &[Step::Generate {
                alg: Alg::ES256,
                state: KeyState::Next,
            }],
            10 * DAY,
        );
        assert_eq!(run(&mut keys, 12 * DAY - 1, &p), vec![]);
        let steps = run(&mut keys, 12 * DAY, &p);
        assert!(
            matches!(
                steps[..],
                [Step::Activate {
                    retire: Some(_),
                    ..
                }]
            ),
            "{steps:?}"
        );
    }

    #[test]
    fn an_imported_next_key_activates_when_nothing_signs() {
        let p = policy();
        let mut keys = vec![KeyMeta {
            kid: "imported".into(),
            alg: Alg::ES256,
            state: KeyState::Next,
            created_at: 5,
            activated_at: None,
            retired_at: None,
        }];
        assert_eq!(
            run(&mut keys, 5, &p),
            vec![Step::Activate {
                kid: "imported".into(),
                retire: None
            }]
        );
    }

    #[test]
    fn retired_keys_of_unconfigured_algs_still_expire() {
        let p = policy();
        let mut keys = Vec::new();
        run(&mut keys, 0, &p);
        keys.push(KeyMeta {
            kid: "old-rsa".into(),
            alg: Alg::RS256,
            state: KeyState::Retired,
            created_at: 0,
            activated_at: Some(0),
            retired_at: Some(10),
        });
        assert_eq!(
            run(&mut keys, 10 + DAY, &p),
            vec![Step::Remove {
                kid: "old-rsa".into()
            }]
        );
    }

    #[test]
    fn states_round_trip() {
        for s in [
            KeyState::Next,
            KeyState::Current,
            KeyState::Retired,
            KeyState::Removed,
        ] {
            assert_eq!(KeyState::parse(s.as_str()), Some(s));
        }
        assert_eq!(KeyState::parse("active"), None);
    }
}
