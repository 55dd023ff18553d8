//! Load generator: N virtual users drive a running OpenID provider over HTTP, one scenario
//! after another, each for a fixed time or number of iterations; per scenario it reports
//! throughput, p50/p90/p99 latency and every error (a non-2xx or malformed answer, a
//! timeout, a broken flow), never hiding one.
//!
//! A virtual user is a tokio task with its own state (its refresh-token chain, its browser
//! session), its own keep-alive connection ([`conn`]) and its own counters; users merge
//! their histograms at the end. Set-up (flows that obtain tokens or a session) and warm-up are not
//! measured; a barrier starts the measured part of every user at once.
//!
//! ```sh
//! cargo run --release -p conformance-tests --bin loadgen -- --url http://127.0.0.1:8080 \
//!   --client-id ID --client-secret SECRET --login ivan@example.ru --password '...' \
//!   -s all -c 32 -d 10s [--json]
//! ```

pub mod args;
pub mod conn;
pub mod flow;
pub mod stats;
pub mod target;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

pub use args::{Args, Config, Scenario};
pub use conn::{Conn, Request};
pub use stats::{Counters, RunReport, ScenarioReport};
pub use target::{Failure, Target};

use flow::Jar;

/// What a virtual user carries from one iteration to the next.
enum VuState {
    None,
    /// The refresh token to use next (replaced by the rotated one after each success).
    Refresh(String),
    /// The user's browser, signed in.
    Session(Jar),
    /// The introspection request for an access token.
    Introspect(Request),
    /// The userinfo request with an access token.
    Userinfo(Request),
}

/// Material shared by all users of a run (one start-up flow, not measured).
#[derive(Default)]
struct Shared {
    access_token: Option<Arc<str>>,
}

struct Plan {
    scenario: Scenario,
    vus: usize,
    duration: Duration,
    warmup: Duration,
    /// Iterations left across all users, when --iterations was given.
    remaining: Option<Arc<AtomicI64>>,
    /// Open loop: each user starts an iteration every `interval` (from --rate).
    interval: Option<Duration>,
    /// A refresh token given on the command line.
    refresh_token: Option<String>,
    can_sign_in: bool,
}

/// Obtains the access token for introspect/userinfo: the flag, else one fresh flow.
async fn shared_access_token(cfg: &Config, t: &Target) -> Result<Arc<str>, Failure> {
    if let Some(at) = &cfg.args.access_token {
        return Ok(at.as_str().into());
    }
    let mut n = 0;
    let a = flow::fresh(t, &mut Conn::default(), &mut n).await?;
    Ok(a.access_token.into())
}

async fn setup(
    t: &Target,
    conn: &mut Conn,
    plan: &Plan,
    shared: &Shared,
) -> Result<VuState, Failure> {
    let mut n = 0;
    Ok(match plan.scenario {
        Scenario::Refresh => match &plan.refresh_token {
            Some(rt) => VuState::Refresh(rt.clone()),
            None => VuState::Refresh(seed_refresh(t, conn, &mut n).await?),
        },
        Scenario::FlowSso => {
            let mut jar = Jar::default();
            flow::fresh_keeping(t, conn, &mut jar, &mut n).await?;
            VuState::Session(jar)
        }
        Scenario::Introspect | Scenario::Userinfo => {
            let at = shared
                .access_token
                .clone()
                .ok_or_else(|| Failure::new("setup: no access token", "no access token"))?;
            if plan.scenario == Scenario::Introspect {
                VuState::Introspect(t.introspect_request(&at)?)
            } else {
                VuState::Userinfo(t.userinfo_request(&at)?)
            }
        }
        _ => VuState::None,
    })
}

/// A fresh flow that must yield a refresh token.
async fn seed_refresh(t: &Target, conn: &mut Conn, requests: &mut u64) -> Result<String, Failure> {
    flow::fresh(t, conn, requests)
        .await?
        .refresh_token
        .ok_or_else(|| {
            Failure::new(
                "setup: no refresh token",
                "the code exchange gave no refresh token (is the client allowed the refresh_token \
             grant and offline_access? does the provider need --fresh-prompt consent?)",
            )
        })
}

/// One iteration; HTTP requests are counted in `requests`.
async fn iteration(
    t: &Target,
    conn: &mut Conn,
    sc: Scenario,
    st: &mut VuState,
    requests: &mut u64,
) -> Result<(), Failure> {
    match (sc, st) {
        (Scenario::Discovery, _) => {
            *requests += 1;
            t.discovery(conn).await
        }
        (Scenario::Jwks, _) => {
            *requests += 1;
            t.jwks(conn).await
        }
        (Scenario::ClientCredentials, _) => {
            *requests += 1;
            t.client_credentials(conn).await
        }
        (Scenario::Refresh, VuState::Refresh(rt)) => {
            *requests += 1;
            let a = t.refresh(conn, rt).await?;
            if let Some(new) = a.refresh_token {
                *rt = new;
            }
            Ok(())
        }
        (Scenario::Introspect, VuState::Introspect(req)) => {
            *requests += 1;
            t.introspect(conn, req).await
        }
        (Scenario::Userinfo, VuState::Userinfo(req)) => {
            *requests += 1;
            t.userinfo(conn, req).await
        }
        (Scenario::FlowFresh, _) => flow::fresh(t, conn, requests).await.map(|_| ()),
        (Scenario::FlowSso, VuState::Session(jar)) => {
            flow::sso(t, conn, jar, requests).await.map(|_| ())
        }
        _ => Err(Failure::new("internal", "scenario without its state")),
    }
}

fn take_one(remaining: &Option<Arc<AtomicI64>>) -> bool {
    remaining
        .as_ref()
        .is_none_or(|r| r.fetch_sub(1, Ordering::Relaxed) > 0)
}

/// Runs iterations from `span.start` until `span.end` (or until the shared budget runs
/// out), recording into `c`.
///
/// Closed loop by default (next iteration when the last one ended). With an `interval` the
/// loop is open: iteration k is due at `span.start + k * interval` and its latency counts
/// from then, so a slow answer that delays the next ones shows up in their latency too.
async fn drive(
    t: &Target,
    conn: &mut Conn,
    plan: &Plan,
    st: &mut VuState,
    span: std::ops::Range<Instant>,
    remaining: &Option<Arc<AtomicI64>>,
    c: &mut Counters,
) {
    let (mut due, deadline) = (span.start, span.end);
    while Instant::now() < deadline && take_one(remaining) {
        let t0 = match plan.interval {
            Some(every) => {
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let t0 = due;
                due += every;
                t0
            }
            None => Instant::now(),
        };
        match iteration(t, conn, plan.scenario, st, &mut c.requests).await {
            Ok(()) => {
                c.latency.record(t0.elapsed());
                c.ok += 1;
            }
            Err(f) => {
                c.error(f.kind, || f.detail);
                // A broken refresh chain cannot recover by itself: start a new one (the
                // failure above stays counted), unless the token came from the command line.
                if plan.scenario == Scenario::Refresh
                    && plan.can_sign_in
                    && plan.refresh_token.is_none()
                {
                    let mut n = 0;
                    match seed_refresh(t, conn, &mut n).await {
                        Ok(rt) => {
                            *st = VuState::Refresh(rt);
                            c.reseeds += 1;
                        }
                        Err(f) => {
                            c.error(format!("reseed: {}", f.kind), || f.detail);
                            return;
                        }
                    }
                }
            }
        }
    }
}

async fn virtual_user(
    index: usize,
    t: Arc<Target>,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    barrier: Arc<Barrier>,
) -> Counters {
    // Open loop: users start staggered across one interval, not all at once.
    let offset = plan
        .interval
        .map(|every| every.mul_f64(index as f64 / plan.vus as f64))
        .unwrap_or_default();
    let mut c = Counters::default();
    // The user's own connection, for set-up, warm-up and the measured part alike.
    let mut conn = Conn::default();
    let st = setup(&t, &mut conn, &plan, &shared).await;
    let mut st = match st {
        Ok(mut st) => {
            if !plan.warmup.is_zero() {
                let mut w = Counters::default();
                let now = Instant::now();
                drive(
                    &t,
                    &mut conn,
                    &plan,
                    &mut st,
                    now + offset..now + plan.warmup,
                    &None,
                    &mut w,
                )
                .await;
            }
            Some(st)
        }
        Err(f) => {
            c.error(f.kind, || f.detail);
            None
        }
    };
    // Every user reaches the barrier exactly once, set up or not.
    barrier.wait().await;
    if let Some(st) = st.as_mut() {
        let now = Instant::now();
        let deadline = now + plan.duration;
        drive(
            &t,
            &mut conn,
            &plan,
            st,
            now + offset..deadline,
            &plan.remaining,
            &mut c,
        )
        .await;
    }
    c
}

/// Runs one scenario with all users; returns its report.
async fn run_scenario(
    cfg: &Config,
    t: &Arc<Target>,
    shared: &Arc<Shared>,
    scenario: Scenario,
) -> ScenarioReport {
    let a = &cfg.args;
    let plan = Arc::new(Plan {
        scenario,
        vus: a.vus,
        duration: if a.duration.is_zero() {
            // --iterations alone: bounded by the count, and by a day at most.
            Duration::from_secs(24 * 3600)
        } else {
            a.duration
        },
        warmup: a.warmup,
        remaining: a
            .iterations
            .map(|n| Arc::new(AtomicI64::new(i64::try_from(n).unwrap_or(i64::MAX)))),
        interval: a.rate.map(|r| Duration::from_secs_f64(a.vus as f64 / r)),
        refresh_token: a.refresh_token.clone(),
        can_sign_in: !a.login.is_empty() && !a.password.is_empty(),
    });
    let barrier = Arc::new(Barrier::new(plan.vus + 1));
    let mut tasks = Vec::with_capacity(plan.vus);
    for index in 0..plan.vus {
        tasks.push(tokio::spawn(virtual_user(
            index,
            t.clone(),
            plan.clone(),
            shared.clone(),
            barrier.clone(),
        )));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut total = Counters::default();
    for task in tasks {
        match task.await {
            Ok(c) => total.merge(&c),
            Err(e) => total.error("internal: a virtual user died".into(), || e.to_string()),
        }
    }
    ScenarioReport::new(scenario.name(), plan.vus, start.elapsed(), &total)
}

/// Runs every scenario of `cfg` in order; `log` receives progress lines.
pub async fn run(cfg: &Config, log: &(dyn Fn(&str) + Sync)) -> Result<RunReport, String> {
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = Arc::new(Target::connect(cfg).await?);
    log(&t.describe());
    let mut shared = Shared::default();
    if cfg
        .scenarios
        .iter()
        .any(|s| matches!(s, Scenario::Introspect | Scenario::Userinfo))
    {
        match shared_access_token(cfg, &t).await {
            Ok(at) => shared.access_token = Some(at),
            // Not fatal: each user of those scenarios reports the set-up failure.
            Err(f) => log(&format!("cannot obtain an access token: {}", f.detail)),
        }
    }
    let shared = Arc::new(shared);
    let mut reports = Vec::with_capacity(cfg.scenarios.len());
    for sc in &cfg.scenarios {
        log(&format!(
            "{}: {} virtual users{}, {}{}",
            sc.name(),
            cfg.args.vus,
            cfg.args
                .rate
                .map(|r| format!(" at {r}/s (open loop)"))
                .unwrap_or_default(),
            if cfg.args.duration.is_zero() {
                String::new()
            } else {
                format!("{:?}", cfg.args.duration)
            },
            cfg.args
                .iterations
                .map(|n| format!(" max {n} iterations"))
                .unwrap_or_default()
        ));
        let r = run_scenario(cfg, &t, &shared, *sc).await;
        log(&format!(
            "{}: {:.1}/s ok, p99 {:.2} ms, {} errors",
            r.scenario, r.throughput, r.latency_ms.p99, r.errors
        ));
        reports.push(r);
    }
    Ok(RunReport {
        target: cfg.base.to_string(),
        started_at,
        vus: cfg.args.vus,
        rate: cfg.args.rate,
        scenarios: reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iteration_budget_is_shared_and_exact() {
        let r = Some(Arc::new(AtomicI64::new(3)));
        assert!(take_one(&r));
        assert!(take_one(&r));
        assert!(take_one(&r));
        assert!(!take_one(&r));
        assert!(!take_one(&r), "stays exhausted");
        assert!(take_one(&None));
    }

    /// A user whose set-up fails is counted as an error and still releases the barrier.
    #[tokio::test]
    async fn setup_failures_are_counted_not_hidden() {
        let cfg = Config::from_args([
            "loadgen",
            "--url",
            "http://127.0.0.1:9", // discard port: nothing listens
            "-s",
            "userinfo",
            "-c",
            "3",
            "-d",
            "200ms",
            "--client-id",
            "x",
            "--access-token",
            "at",
            "--timeout",
            "1s",
        ])
        .unwrap();
        let t = Arc::new(Target::connect(&cfg).await.unwrap());
        // No shared token: every user fails its set-up.
        let shared = Arc::new(Shared::default());
        let r = run_scenario(&cfg, &t, &shared, Scenario::Userinfo).await;
        assert_eq!(r.ok, 0);
        assert_eq!(r.errors, 3);
        assert_eq!(r.error_kinds.get("setup: no access token"), Some(&3));
        // With a token, every request fails to connect and each is counted.
        let shared = Arc::new(Shared {
            access_token: Some("at".into()),
        });
        let r = run_scenario(&cfg, &t, &shared, Scenario::Userinfo).await;
        assert_eq!(r.ok, 0);
        assert!(r.errors >= 3, "{r:?}");
        assert_eq!(r.errors, r.error_kinds.values().sum::<u64>());
        assert!(
            r.error_kinds
                .keys()
                .all(|k| k == "connect" || k == "transport"),
            "{r:?}"
        );
    }
}
