//! Latency histogram, per-scenario counters and the report (text table and JSON).
//!
//! The histogram is log-linear (like HdrHistogram with two significant digits): values below
//! 128 µs are exact, larger ones fall into buckets 1/64 of their power of two wide, so a
//! reported percentile is within 1.6 % of the true value. It is a fixed array of counters:
//! recording allocates nothing, and virtual users merge theirs at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Values below this are counted exactly (one bucket per microsecond).
const EXACT: u64 = 128;
/// Buckets per power of two above `EXACT`.
const SUB: u64 = 64;
const SUB_BITS: u32 = 6;
/// 2^7 .. 2^63: 57 powers of two.
const BUCKETS: usize = (EXACT + 57 * SUB) as usize;

/// How many error samples (full messages) a scenario keeps.
const MAX_SAMPLES: usize = 5;

/// Latencies in microseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= 7
    let mant = (v >> (exp - SUB_BITS)) - SUB; // 0..64
    (EXACT + u64::from(exp - 7) * SUB + mant) as usize
}

/// Lowest value and width of bucket `i`.
fn bucket_of(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT {
        return (i, 1);
    }
    let j = i - EXACT;
    let exp = 7 + j / SUB;
    let mant = SUB + j % SUB;
    let shift = exp - u64::from(SUB_BITS);
    (mant << shift, 1 << shift)
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn record_us(&mut self, us: u64) {
        if let Some(c) = self.counts.get_mut(index_of(us)) {
            *c += 1;
        }
        self.total += 1;
        self.min = self.min.min(us);
        self.max = self.max.max(us);
        self.sum += u128::from(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max_us(&self) -> u64 {
        self.max
    }

    pub fn mean_us(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1) in microseconds: the smallest recorded value such
    /// that at least `q` of all values are at or below it (nearest rank), to bucket precision.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_of(i);
                let mid = low + width / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

/// What one virtual user (and, merged, one scenario) counted.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Latency of every successful iteration (request or whole flow).
    pub latency: Histogram,
    /// Successful iterations.
    pub ok: u64,
    /// HTTP requests sent, successful or not.
    pub requests: u64,
    /// Failed iterations by kind (`HTTP 400 invalid_grant`, `transport`, `malformed: ...`).
    pub errors: BTreeMap<String, u64>,
    /// The first few error messages in full.
    pub samples: Vec<String>,
    /// Times a virtual user had to obtain a new refresh token after its chain broke.
    pub reseeds: u64,
}

impl Counters {
    pub fn error(&mut self, kind: String, detail: impl FnOnce() -> String) {
        *self.errors.entry(kind).or_insert(0) += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(detail());
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, o: &Counters) {
        self.latency.merge(&o.latency);
        self.ok += o.ok;
        self.requests += o.requests;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        for s in &o.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s.clone());
            }
        }
        self.reseeds += o.reseeds;
    }
}

/// Latency summary in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// One scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub vus: usize,
    /// Measured wall time (after set-up and warm-up).
    pub seconds: f64,
    /// Successful iterations (requests, or whole flows for the flow scenarios).
    pub ok: u64,
    pub errors: u64,
    /// Successful iterations per second.
    pub throughput: f64,
    /// HTTP requests per second, successful or not.
    pub requests_per_s: f64,
    /// HTTP requests per iteration (4 for a fresh Propusk flow, 2 for an SSO flow).
    pub requests_per_iteration: f64,
    /// Latency of successful iterations.
    pub latency_ms: LatencyMs,
    pub error_kinds: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    pub reseeds: u64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl ScenarioReport {
    pub fn new(scenario: &str, vus: usize, elapsed: Duration, c: &Counters) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let errors = c.error_count();
        let iterations = c.ok + errors;
        ScenarioReport {
            scenario: scenario.to_string(),
            vus,
            seconds: elapsed.as_secs_f64(),
            ok: c.ok,
            errors,
            throughput: c.ok as f64 / secs,
            requests_per_s: c.requests as f64 / secs,
            requests_per_iteration: if iterations == 0 {
                0.0
            } else {
                c.requests as f64 / iterations as f64
            },
            latency_ms: LatencyMs {
                p50: ms(c.latency.quantile_us(0.50)),
                p90: ms(c.latency.quantile_us(0.90)),
                p99: ms(c.latency.quantile_us(0.99)),
                max: ms(c.latency.max_us()),
                mean: c.latency.mean_us() / 1000.0,
            },
            error_kinds: c.errors.clone(),
            error_samples: c.samples.clone(),
            reseeds: c.reseeds,
        }
    }
}

/// The whole run, as printed by `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub target: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_at: u64,
    pub vus: usize,
    /// Open-loop rate (iterations per second), when one was set.
    pub rate: Option<f64>,
    pub scenarios: Vec<ScenarioReport>,
}

impl RunReport {
    pub fn total_errors(&self) -> u64 {
        self.scenarios.iter().map(|s| s.errors).sum()
    }

    /// A fixed-width table, then every error kind with a sample message.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "target {}  virtual users {}{}",
            self.target,
            self.vus,
            self.rate
                .map(|r| format!("  open loop at {r}/s (latency from the scheduled start)"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "{:<19} {:>4} {:>6} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8}",
            "scenario",
            "vus",
            "secs",
            "ok",
            "ok/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "errors",
            "req/iter"
        );
        for s in &self.scenarios {
            let _ = writeln!(
                out,
                "{:<19} {:>4} {:>6.1} {:>9} {:>10.1} {:>8.3} {:>8.3} {:>8.3} {:>8.1} {:>7} {:>8.2}",
                s.scenario,
                s.vus,
                s.seconds,
                s.ok,
                s.throughput,
                s.latency_ms.p50,
                s.latency_ms.p90,
                s.latency_ms.p99,
                s.latency_ms.max,
                s.errors,
                s.requests_per_iteration
            );
        }
        for s in &self.scenarios {
            if s.errors == 0 && s.reseeds == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{}: {} errors, {} refresh-token reseeds",
                s.scenario, s.errors, s.reseeds
            );
            for (k, v) in &s.error_kinds {
                let _ = writeln!(out, "  {v:>8} x {k}");
            }
            for m in &s.error_samples {
                let _ = writeln!(out, "  e.g. {m}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 20, (1 << 40) + 12345, u64::MAX]) {
            let i = index_of(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(i >= last || v > 5000, "monotonic at {v}");
            last = i;
            let (low, width) = bucket_of(i);
            assert!(
                low <= v && v - low < width,
                "{v} not in bucket {i} = [{low}, +{width})"
            );
        }
    }

    #[test]
    fn exact_percentiles_for_small_values() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record_us(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_us(0.5), 50);
        assert_eq!(h.quantile_us(0.9), 90);
        assert_eq!(h.quantile_us(0.99), 99);
        assert_eq!(h.quantile_us(1.0), 100);
        assert_eq!(h.quantile_us(0.0), 1);
        assert_eq!(h.max_us(), 100);
        assert!((h.mean_us() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn large_values_within_two_percent() {
        let mut h = Histogram::new();
        // 1 ms .. 100 ms in 1 µs steps would be big; use 10 µs steps.
        let values: Vec<u64> = (100..10_000).map(|i| i * 10).collect();
        for v in &values {
            h.record_us(*v);
        }
        for q in [0.5, 0.9, 0.99] {
            let exact = values[((q * values.len() as f64).ceil() as usize) - 1] as f64;
            let got = h.quantile_us(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.02,
                "q={q}: got {got}, exact {exact}"
            );
        }
    }

    #[test]
    fn empty_and_single() {
        let h = Histogram::new();
        assert_eq!(h.quantile_us(0.99), 0);
        assert_eq!(h.mean_us(), 0.0);
        let mut h = Histogram::new();
        h.record(Duration::from_micros(12_345));
        assert_eq!(h.quantile_us(0.5), 12_345, "clamped to the only value");
        assert_eq!(h.quantile_us(0.99), 12_345);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 1..=50 {
            a.record_us(v);
        }
        for v in 51..=100 {
            b.record_us(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.quantile_us(0.5), 50);
        assert_eq!(a.quantile_us(0.99), 99);
        assert_eq!(a.max_us(), 100);
    }

    #[test]
    fn counters_and_report() {
        let mut c = Counters::default();
        for v in 1..=10 {
            c.latency.record_us(v * 1000);
            c.ok += 1;
            c.requests += 2;
        }
        let mut d = Counters::default();
        d.requests += 2;
        d.error("HTTP 400 invalid_grant".into(), || "first".into());
        for i in 0..10 {
            d.error("transport".into(), || format!("t{i}"));
        }
        c.merge(&d);
        assert_eq!(c.error_count(), 11);
        assert_eq!(c.samples.len(), MAX_SAMPLES, "samples are capped");
        let r = ScenarioReport::new("refresh", 4, Duration::from_secs(2), &c);
        assert_eq!(r.ok, 10);
        assert_eq!(r.errors, 11);
        assert!((r.throughput - 5.0).abs() < 1e-9);
        assert!((r.requests_per_s - 11.0).abs() < 1e-9);
        assert!((r.requests_per_iteration - 22.0 / 21.0).abs() < 1e-9);
        assert!((r.latency_ms.p50 - 5.0).abs() < 0.1);
        assert_eq!(r.error_kinds.get("transport"), Some(&10));
        let run = RunReport {
            target: "http://127.0.0.1:1".into(),
            started_at: 0,
            vus: 4,
            rate: None,
            scenarios: vec![r],
        };
        assert_eq!(run.total_errors(), 11);
        let text = run.render_text();
        assert!(text.contains("refresh"), "{text}");
        assert!(text.contains("10 x transport"), "{text}");
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["scenarios"][0]["errors"], 11);
        assert_eq!(
            json["scenarios"][0]["error_kinds"]["HTTP 400 invalid_grant"],
            1
        );
    }
}
