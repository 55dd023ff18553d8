//! `loadgen`: drives a running OpenID provider with concurrent virtual users and prints,
//! per scenario, throughput, p50/p90/p99 latency and error counts (see `--help`).
//!
//! Exit status: 0 all iterations succeeded, 1 the run could not start, 3 errors were counted.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;
use conformance_tests::loadgen::{self, Args, Config};

fn main() -> ExitCode {
    let cfg = match Config::new(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    let threads = cfg.args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let log = |line: &str| eprintln!("{line}");
    let report = match rt.block_on(loadgen::run(&cfg, &log)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    let text = report.render_text();
    if cfg.args.json {
        eprint!("{text}");
        match serde_json::to_string_pretty(&report) {
            Ok(j) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{j}");
            }
            Err(e) => {
                eprintln!("loadgen: cannot serialise the report: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{text}");
    }
    if report.total_errors() > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
